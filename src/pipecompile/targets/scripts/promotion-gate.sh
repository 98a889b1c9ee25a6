#!/usr/bin/env bash
# promotion-gate.sh: deploy a digest only when it passed DAST in the DAST environment.
#
# Inputs (environment):
#   ECR_REPOSITORY     the repository name in ECR
#   IMAGE_URI          registry/repository, without tag (for the message)
#   IMAGE_TAG          the image's tag
#   IMAGE_DIGEST       the digest to deploy
#   DAST_ENVIRONMENT   the environment whose DAST pass is required
# Outputs:
#   none
# Exit codes:
#   0  the tag dast-<DAST_ENVIRONMENT>-<IMAGE_TAG> points at IMAGE_DIGEST
#   1  it does not (deploy this source tree to the DAST environment first)
set -euo pipefail
marker="dast-$DAST_ENVIRONMENT-$IMAGE_TAG"
passed="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageTag=$marker" --query 'imageDetails[0].imageDigest' --output text \
  2>/dev/null || true)"
if [ "$passed" != "$IMAGE_DIGEST" ]; then
  echo "$IMAGE_URI@$IMAGE_DIGEST has not passed DAST in $DAST_ENVIRONMENT" \
    "(no tag $marker): deploy this source tree to $DAST_ENVIRONMENT first" >&2
  exit 1
fi
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT"
