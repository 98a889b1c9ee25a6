#!/usr/bin/env bash
# audit-row.sh: write the deployment's audit row (whichever orchestrator delivered,
# success or not).
#
# Inputs (environment):
#   DEPLOYMENTS_TABLE   the DynamoDB table
#   SERVICE             the service
#   ENVIRONMENT         the environment
#   COMMIT              the commit deployed
#   RUN                 a link to (or id of) the run
#   OUTCOME_FILE        the file wait-healthy.sh appended the outcome to (may be missing),
#                       and gitops-record.sh the line recorded=true once GitOps held the
#                       digest
#   DEPLOY_STATUS       optional: the outcome when OUTCOME_FILE has none (default failed)
#   IMAGE_DIGEST        optional: the digest (none when the build failed)
#   IMAGE_TAG           optional: the tag
#   APPROVER            optional: who approved (none)
#   REPOSITORY_URL      optional: the repository's web address (the row's commit_url is
#                       <REPOSITORY_URL>/commit/<COMMIT>)
#   COMMIT_MESSAGE      optional: the commit's message (default: git log of COMMIT when
#                       the working directory is a checkout holding it, else none)
#   ISSUES              optional: issue keys (comma-separated) the row carries besides the
#                       message's: a manual rollback's commit is the rolled-back-to
#                       deployment's, which its build seldom holds (CodeBuild's NO_SOURCE,
#                       GitHub's rollback checks nothing out), so it passes the keys that
#                       deployment's row recorded (rollback-resolve.sh's ROLLBACK_ISSUES)
#   ROLLBACK_REASON     optional: set by a manual rollback (rollback.yml, or a deploy
#                       build started with this override): the row records trigger
#                       manual, the reason (before the wait's, if any) and ACTOR, and a
#                       rollback the wait found healthy is outcome rolled-back (one the
#                       wait saw aborted is failed)
#   ACTOR               optional: who started the manual rollback, as the orchestrator
#                       names it (github.triggering_actor; CodeBuild's CODEBUILD_INITIATOR),
#                       never a value the person starting it passes
# Outputs:
#   one new item in DEPLOYMENTS_TABLE, keyed stream=<environment>/<service> (each deploy
#   role may write only its environment's: dynamodb:LeadingKeys) and
#   deployment=<deployed_at>/<run> (two deploys in one second stay two rows); the put
#   never replaces a row (attribute_not_exists); commit_url, the issue keys the commit
#   message names (issues: JIRA-style ABC-123 and GitHub's #123, each once) and, from
#   OUTCOME_FILE's reason= line (wait-healthy.sh), why it rolled back or failed; recorded
#   (BOOL true) when GitOps held the digest (gitops-record.sh): rollback-resolve.sh and
#   security-review.sh count such a row as live unless the rollout failed or aborted
# Exit codes:
#   0  written
#   1  the put-item failed (or a row with this key exists already)
set -euo pipefail
outcome=""
# a deploy that failed before the wait wrote no outcome file: under pipefail a sed of a
# missing file would end this script before put-item (CodeBuild's finally block)
if [ -f "$OUTCOME_FILE" ]; then
  outcome="$(sed -n 's/^outcome=//p' "$OUTCOME_FILE" | tail -n 1)"
fi
outcome="${outcome:-${DEPLOY_STATUS:-failed}}"
reason=""
recorded=false
if [ -f "$OUTCOME_FILE" ]; then
  reason="$(sed -n 's/^reason=//p' "$OUTCOME_FILE" | tail -n 1)"
  if grep -qx 'recorded=true' "$OUTCOME_FILE"; then recorded=true; fi
fi
manual=""
if [ -n "${ROLLBACK_REASON:-}" ]; then
  manual="${ACTOR:-unknown}"
  reason="$ROLLBACK_REASON${reason:+; $reason}"
  case "$outcome" in
    succeeded) outcome=rolled-back ;;
    # the rollback's own rollout was aborted: the digest it meant to restore is not live
    # (rollback-resolve.sh reads a manual rolled-back row as live)
    rolled-back) outcome=failed ;;
  esac
fi
message="${COMMIT_MESSAGE:-}"
if [ -z "$message" ]; then
  message="$(git log -1 --format=%B "$COMMIT" 2>/dev/null || true)"
fi
# grep finds nothing in most messages: its exit 1 must not end the script; ISSUES' keys
# first (the row they come from listed them in its message's order), each key once
issues="$( { tr ',' '\n' <<<"${ISSUES:-}"
  grep -oE '(^|[^A-Za-z0-9_])([A-Z][A-Z0-9]+-[0-9]+|#[0-9]+)' <<<"$message" \
    | grep -oE '[A-Z][A-Z0-9]+-[0-9]+|#[0-9]+'; } \
  | grep -xE '[A-Z][A-Z0-9]+-[0-9]+|#[0-9]+' | awk '!seen[$0]++' || true)"
commit_url=""
# no commit (a rollback to a row that recorded none): no link to the repository's root
if [ -n "${REPOSITORY_URL:-}" ] && [ -n "$COMMIT" ]; then
  commit_url="${REPOSITORY_URL%/}/commit/$COMMIT"
fi
aws dynamodb put-item --table-name "$DEPLOYMENTS_TABLE" \
  --condition-expression 'attribute_not_exists(#k)' \
  --expression-attribute-names '{"#k":"deployment"}' --item "$(jq -nc \
  --arg s "$SERVICE" --arg e "$ENVIRONMENT" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg c "$COMMIT" --arg d "${IMAGE_DIGEST:-none}" --arg t "${IMAGE_TAG:-none}" \
  --arg a "${APPROVER:-none}" --arg o "$outcome" --arg r "$RUN" --arg u "$commit_url" \
  --arg why "$reason" --arg issues "$issues" --arg m "$manual" --argjson rec "$recorded" \
  '{stream: {S: ($e + "/" + $s)}, deployment: {S: ($at + "/" + $r)},
    service: {S: $s}, deployed_at: {S: $at}, environment: {S: $e}, commit: {S: $c},
    image_digest: {S: $d}, image_tag: {S: $t}, approver: {S: $a}, outcome: {S: $o},
    run: {S: $r}, issues: {L: [$issues | splits("\n") | select(. != "") | {S: .}]}}
   + (if $u == "" then {} else {commit_url: {S: $u}} end)
   + (if $why == "" then {} else {reason: {S: $why}} end)
   + (if $m == "" then {} else {trigger: {S: "manual"}, actor: {S: $m}} end)
   + (if $rec then {recorded: {BOOL: true}} else {} end)')"
echo "audit: $SERVICE $ENVIRONMENT $outcome (approved by ${APPROVER:-none})"
