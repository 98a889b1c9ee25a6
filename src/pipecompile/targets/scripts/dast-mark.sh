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
# Outputs:
#   the item in PROMOTIONS_TABLE
# Exit codes:
#   0  the digest is recorded (or was already)
#   1  the record failed
set -euo pipefail
case "$IMAGE_DIGEST" in
  sha256:*) ;;
  *) echo "refusing to mark '$IMAGE_DIGEST': not a sha256 digest" >&2; exit 1 ;;
esac
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
