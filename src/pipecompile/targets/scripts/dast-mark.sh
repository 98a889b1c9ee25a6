#!/usr/bin/env bash
# dast-mark.sh: mark a digest that passed DAST (after dast-scan.sh passed).
#
# Adds the tag "dast-<env>-<image tag>" to the digest; an environment later in the
# promotion order deploys a digest only when that tag points at it (promotion-gate.sh).
#
# Inputs (environment):
#   DAST_ENVIRONMENT   the environment scanned (names the marker tag)
#   ECR_REPOSITORY     the repository name in ECR
#   IMAGE_TAG          the deployed image's tag
#   IMAGE_DIGEST       the deployed digest
# Outputs:
#   the ECR tag dast-<DAST_ENVIRONMENT>-<IMAGE_TAG> on IMAGE_DIGEST
# Exit codes:
#   0  the digest is marked (or was already)
#   1  the mark failed
set -euo pipefail
marker="dast-$DAST_ENVIRONMENT-$IMAGE_TAG"
manifest="$(aws ecr batch-get-image --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageDigest=$IMAGE_DIGEST" --query 'images[0].imageManifest' --output text)"
aws ecr put-image --repository-name "$ECR_REPOSITORY" --image-tag "$marker" \
  --image-manifest "$manifest" >/dev/null 2>&1 || true
passed="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageTag=$marker" --query 'imageDetails[0].imageDigest' --output text)"
test "$passed" = "$IMAGE_DIGEST"
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT (tag $marker)"
