#!/usr/bin/env bash
# dast-mark.sh: record a digest that passed DAST (after dast-scan.sh passed).
#
# Writes the item (gate "<DAST_ENVIRONMENT>/<ECR_REPOSITORY>", digest IMAGE_DIGEST) to the
# promotions table; an environment later in the promotion order deploys a digest only when
# that item exists (promotion-gate.sh). Only the DAST role may write the table (its IAM
# policy, dynamodb:LeadingKeys): a marker in ECR (a tag) could be written by the release
# build too, which pushes to the same repository and which IAM cannot limit by tag.
#
# Inputs (environment):
#   DAST_ENVIRONMENT   the environment scanned
#   PROMOTIONS_TABLE   the DynamoDB table of DAST passes
#   ECR_REPOSITORY     the repository name in ECR
#   IMAGE_TAG          the deployed image's tag (recorded with the pass)
#   IMAGE_DIGEST       the deployed digest
#   DEPLOYMENTS_TABLE  optional: the audit table; then SERVICE too, and the newest row of
#   SERVICE            <DAST_ENVIRONMENT>/<SERVICE> must be a succeeded deploy of
#                      IMAGE_DIGEST (or one waiting-for-promotion: a blue-green a
#                      person promotes, scanned at its preview, where that digest
#                      runs): a pass is never recorded for a digest the
#                      environment does not run (a scan of what runs there is no pass
#                      of another digest, whoever started the scan with which values)
# Outputs:
#   the item in PROMOTIONS_TABLE
# Exit codes:
#   0  the digest is recorded (or was already)
#   1  the record failed, or the environment does not run that digest
set -euo pipefail
if ! [[ "$IMAGE_DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "refusing to mark '$IMAGE_DIGEST': not a sha256 digest" >&2
  exit 1
fi
if [ -n "${DEPLOYMENTS_TABLE:-}" ]; then
  : "${SERVICE:?the service scanned is needed to read its deployments}"
  stream="$DAST_ENVIRONMENT/$SERVICE"
  # the newest row of the stream (its sort key begins with the deploy's time)
  newest="$(aws dynamodb query --table-name "$DEPLOYMENTS_TABLE" \
    --key-condition-expression '#p = :p' --expression-attribute-names '{"#p": "stream"}' \
    --expression-attribute-values "$(jq -nc --arg p "$stream" '{":p": {S: $p}}')" \
    --no-scan-index-forward --limit 1 --output json \
    | jq -r '.Items[0] // {} | "\(.outcome.S // "none") \(.image_digest.S // "none")"')"
  read -r outcome running <<<"$newest"
  case "$outcome" in succeeded | waiting-for-promotion) live=true ;; *) live=false ;; esac
  if [ "$live" != true ] || [ "$running" != "$IMAGE_DIGEST" ]; then
    echo "refusing to mark $IMAGE_DIGEST: the newest deploy of $stream in" \
      "$DEPLOYMENTS_TABLE is $running ($outcome), so $DAST_ENVIRONMENT did not run this" \
      "digest when it was scanned" >&2
    exit 1
  fi
  echo "$DAST_ENVIRONMENT runs $IMAGE_DIGEST (the newest deploy of $stream, $outcome)"
fi
gate="$DAST_ENVIRONMENT/$ECR_REPOSITORY"
item="$(jq -cn --arg g "$gate" --arg d "$IMAGE_DIGEST" --arg t "$IMAGE_TAG" \
  --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{gate: {S: $g}, digest: {S: $d}, tag: {S: $t}, passed_at: {S: $at}}')"
# a new item only: a re-run of the same pass finds it there, nothing is replaced
if ! err="$(aws dynamodb put-item --table-name "$PROMOTIONS_TABLE" --item "$item" \
  --condition-expression 'attribute_not_exists(gate)' 2>&1 >/dev/null)"; then
  case "$err" in
    *ConditionalCheckFailed*) echo "$IMAGE_DIGEST was recorded as passed already" ;;
    *) echo "cannot record the DAST pass of $IMAGE_DIGEST: $err" >&2; exit 1 ;;
  esac
fi
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT (recorded in $PROMOTIONS_TABLE)"
