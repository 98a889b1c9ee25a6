#!/usr/bin/env bash
# rollback-resolve.sh: the digest a manual rollback returns SERVICE in ENVIRONMENT to.
#
# It redeploys only a digest the audit table shows ran in this environment for this
# service (stream <environment>/<service>), never an arbitrary one. "previous" undoes one
# step: the rows that put a digest live, oldest first, make a stack (a deploy pushes its
# digest; a manual rollback returns the stack to where that digest was last); the top
# runs now, "previous" is the entry below it (deploys A, B, C: a rollback goes to B, the
# next to A). Rows that put a digest live (the same rule in security-review.sh and the
# README's "Manual rollback"): a succeeded deploy, a manual rollback that did not fail,
# and a row recorded in GitOps that ended neither failed nor aborted (cancelled,
# timed-out, waiting-for-promotion, paused-inconclusive: Argo CD syncs what GitOps holds).
#
# Inputs (environment):
#   DEPLOYMENTS_TABLE   the audit table
#   SERVICE             the service
#   ENVIRONMENT         the environment
#   DIGEST              "previous", or a sha256:... digest the table lists as succeeded
#                       (a deploy the wait saw healthy: a named digest must have run well)
#   IMAGE_ENV           optional: a file to append the outputs to (default GITHUB_OUTPUT)
# Outputs:
#   IMAGE_TAG, IMAGE_DIGEST, ROLLBACK_COMMIT (the commit that digest was built from,
#   as its row records it: the rollback's audit row records it too) and ROLLBACK_ISSUES
#   (that row's issue keys, comma-separated: audit-row.sh's ISSUES) lines in IMAGE_ENV
#   (or GITHUB_OUTPUT); a line on stdout
# Exit codes:
#   0  resolved
#   1  no such digest among the succeeded deploys (or none before the current one), or
#      the query failed
set -euo pipefail
values="$(jq -nc --arg p "$ENVIRONMENT/$SERVICE" \
  '{":p": {S: $p}, ":o": {S: "succeeded"}, ":r": {S: "rolled-back"}, ":m": {S: "manual"},
    ":f": {S: "failed"}, ":y": {BOOL: true}}')"
live='#o = :o OR (#o = :r AND #t = :m) OR (#rec = :y AND #o <> :f AND (#o <> :r OR #t = :m))'
# every row that put a digest live, newest first; the CLI follows every page itself
rows="$(aws dynamodb query --table-name "$DEPLOYMENTS_TABLE" \
  --key-condition-expression '#p = :p' \
  --filter-expression "$live" \
  --expression-attribute-names '{"#p": "stream", "#o": "outcome", "#t": "trigger",
    "#rec": "recorded"}' \
  --expression-attribute-values "$values" --no-scan-index-forward --output json \
  | jq -c '[.Items[] | {digest: .image_digest.S, tag: (.image_tag.S // "none"),
      commit: (.commit.S // ""), at: .deployed_at.S, ok: (.outcome.S == "succeeded"),
      rollback: (.trigger.S == "manual"), issues: ([.issues.L[]?.S] | join(","))}]')"
if [ "$DIGEST" = previous ]; then
  chosen="$(jq -c 'reverse | reduce .[] as $r ([];
      (map(.digest) | rindex($r.digest)) as $i
      | if $r.rollback and $i != null then .[:$i + 1]
        elif length > 0 and .[-1].digest == $r.digest then .
        else . + [$r] end)
    | if length > 1 then .[-2] else empty end' <<<"$rows")"
  if [ -z "$chosen" ]; then
    echo "no succeeded deploy of $SERVICE in $ENVIRONMENT before the current digest" >&2
    exit 1
  fi
else
  chosen="$(jq -c --arg d "$DIGEST" \
    'first(.[] | select(.digest == $d and .ok and (.rollback | not)))? // empty' <<<"$rows")"
  if [ -z "$chosen" ]; then
    echo "$DIGEST never deployed successfully to $ENVIRONMENT ($SERVICE): the audit table" \
      "lists only these: $(jq -r 'map(.digest) | unique | join(", ")' <<<"$rows")" >&2
    exit 1
  fi
fi
# the values land in a file CodeBuild's buildspec sources: each must be what it claims
if ! jq -e '(.tag | test("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))
    and (.digest | test("^sha256:[0-9a-f]{64}$")) and (.commit | test("^[0-9a-f]{0,40}$"))
    and (.issues | test("^(([A-Z][A-Z0-9]+-[0-9]+|#[0-9]+)(,|$))*$"))' \
  <<<"$chosen" >/dev/null; then
  echo "refusing the audit row $chosen: its tag, digest, commit or issue keys are malformed" >&2
  exit 1
fi
out="${IMAGE_ENV:-${GITHUB_OUTPUT:?neither IMAGE_ENV nor GITHUB_OUTPUT is set}}"
# a # inside a word starts no comment when the file is sourced
jq -r '"IMAGE_TAG=\(.tag)", "IMAGE_DIGEST=\(.digest)", "ROLLBACK_COMMIT=\(.commit)",
  "ROLLBACK_ISSUES=\(.issues)"' <<<"$chosen" >>"$out"
echo "rollback of $SERVICE in $ENVIRONMENT to $(jq -r '"\(.digest) (\(.tag), commit \(.commit), deployed \(.at))"' <<<"$chosen")"
