#!/usr/bin/env bash
# rollback-resolve.sh: the digest a manual rollback returns SERVICE in ENVIRONMENT to.
#
# The manual rollback (specification 8.2, issue 29 item 7) redeploys a digest that ran
# before: only one the audit table recorded as succeeded in this environment for this
# service (stream <environment>/<service>, as audit-row.sh writes it), never an
# arbitrary digest. "previous" is the newest succeeded digest other than the newest
# succeeded one (what runs now, unless a later deploy failed).
#
# Inputs (environment):
#   DEPLOYMENTS_TABLE   the audit table
#   SERVICE             the service
#   ENVIRONMENT         the environment
#   DIGEST              "previous", or a sha256:... digest the table lists as succeeded
#   IMAGE_ENV           optional: a file to append IMAGE_TAG=... and IMAGE_DIGEST=... to
#                       (default GITHUB_OUTPUT)
# Outputs:
#   IMAGE_TAG and IMAGE_DIGEST lines in IMAGE_ENV (or GITHUB_OUTPUT); a line on stdout
# Exit codes:
#   0  resolved
#   1  no such digest among the succeeded deploys (or none before the current one), or
#      the query failed
set -euo pipefail
values="$(jq -nc --arg p "$ENVIRONMENT/$SERVICE" '{":p": {S: $p}, ":o": {S: "succeeded"}}')"
# newest first; the CLI follows every page itself
rows="$(aws dynamodb query --table-name "$DEPLOYMENTS_TABLE" \
  --key-condition-expression '#p = :p' --filter-expression '#o = :o' \
  --expression-attribute-names '{"#p": "stream", "#o": "outcome"}' \
  --expression-attribute-values "$values" --no-scan-index-forward --output json \
  | jq -c '[.Items[] | {digest: .image_digest.S, tag: (.image_tag.S // "none"),
      at: .deployed_at.S}]')"
if [ "$DIGEST" = previous ]; then
  chosen="$(jq -c 'first(.[] | select(.digest != $rows[0].digest))? // empty' \
    --argjson rows "$rows" <<<"$rows")"
  if [ -z "$chosen" ]; then
    echo "no succeeded deploy of $SERVICE in $ENVIRONMENT before the current digest" >&2
    exit 1
  fi
else
  chosen="$(jq -c --arg d "$DIGEST" 'first(.[] | select(.digest == $d))? // empty' <<<"$rows")"
  if [ -z "$chosen" ]; then
    echo "$DIGEST never deployed successfully to $ENVIRONMENT ($SERVICE): the audit table" \
      "lists only these: $(jq -r 'map(.digest) | unique | join(", ")' <<<"$rows")" >&2
    exit 1
  fi
fi
out="${IMAGE_ENV:-${GITHUB_OUTPUT:?neither IMAGE_ENV nor GITHUB_OUTPUT is set}}"
jq -r '"IMAGE_TAG=\(.tag)", "IMAGE_DIGEST=\(.digest)"' <<<"$chosen" >>"$out"
echo "rollback of $SERVICE in $ENVIRONMENT to $(jq -r '"\(.digest) (\(.tag), deployed \(.at))"' <<<"$chosen")"
