#!/usr/bin/env bash
# promotion-gate.sh: deploy a digest only when it passed DAST in the DAST environment.
#
# Reads the item dast-mark.sh wrote (gate "<DAST_ENVIRONMENT>/<ECR_REPOSITORY>", digest
# IMAGE_DIGEST) from the promotions table, which only the DAST role may write; an ECR tag
# is never a pass (the release build can push any tag to the repository).
#
# Inputs (environment):
#   PROMOTIONS_TABLE   the DynamoDB table of DAST passes
#   ECR_REPOSITORY     the repository name in ECR
#   IMAGE_URI          registry/repository, without tag (for the message)
#   IMAGE_TAG          the image's tag (unused: the pass is the digest's)
#   IMAGE_DIGEST       the digest to deploy
#   DAST_ENVIRONMENT   the environment whose DAST pass is required
# Outputs:
#   none
# Exit codes:
#   0  the digest passed DAST in DAST_ENVIRONMENT
#   1  it did not, or the table cannot be read (deploy this source tree there first)
set -euo pipefail
key="$(jq -cn --arg g "$DAST_ENVIRONMENT/$ECR_REPOSITORY" --arg d "$IMAGE_DIGEST" \
  '{gate: {S: $g}, digest: {S: $d}}')"
passed="$(aws dynamodb get-item --table-name "$PROMOTIONS_TABLE" --key "$key" \
  --consistent-read --query 'Item.digest.S' --output text 2>/dev/null || true)"
if [ "$passed" != "$IMAGE_DIGEST" ]; then
  echo "$IMAGE_URI@$IMAGE_DIGEST has not passed DAST in $DAST_ENVIRONMENT" \
    "(no record in $PROMOTIONS_TABLE): deploy this source tree to $DAST_ENVIRONMENT first" >&2
  exit 1
fi
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT"
