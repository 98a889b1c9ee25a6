#!/usr/bin/env bash
# dast-scan.sh: OWASP ZAP's baseline scan of the DAST environment; a pass marks the digest.
#
# After a deploy to the DAST environment is healthy, ZAP's baseline scan runs against
# its URL; alerts at or above ZAP_MIN_RISK fail it.  A pass adds the tag
# "dast-<env>-<image tag>" to the digest; an environment later in the promotion order
# deploys a digest only when that tag points at it (promotion-gate.sh).
#
# Inputs (environment):
#   DAST_URL           the URL to scan
#   ZAP_IMAGE          the pinned ZAP container image
#   ZAP_MIN_RISK       0-3: alerts at or above this risk code fail the scan
#   DAST_ENVIRONMENT   the environment scanned (names the marker tag)
#   ECR_REPOSITORY     the repository name in ECR (when IMAGE_DIGEST is set)
#   IMAGE_TAG          the deployed image's tag (when IMAGE_DIGEST is set)
#   IMAGE_DIGEST       optional: the deployed digest; empty for a scheduled scan
# Outputs:
#   reports/zap-report.json and reports/zap-report.html; the ECR tag
#   dast-<DAST_ENVIRONMENT>-<IMAGE_TAG> on IMAGE_DIGEST when it passes
# Exit codes:
#   0  no alert at or above the threshold (and the digest marked)
#   1  alerts at or above the threshold, the scan did not complete, or the mark failed
set -euo pipefail
mkdir -p reports
chmod 777 reports
status=0
docker run --rm -v "$PWD/reports:/zap/wrk:rw" "$ZAP_IMAGE" zap-baseline.py \
  -t "$DAST_URL" -J zap-report.json -r zap-report.html -I || status=$?
if [ "$status" -gt 2 ] || [ ! -s reports/zap-report.json ]; then
  echo "the ZAP scan of $DAST_URL did not complete (exit $status)" >&2
  exit 1
fi
blocking="$(jq --argjson min "$ZAP_MIN_RISK" \
  '[.site[]?.alerts[]? | select((.riskcode | tonumber) >= $min)] | length' reports/zap-report.json)"
echo "ZAP alerts at or above the threshold: $blocking"
if [ "$blocking" -gt 0 ]; then
  jq -r --argjson min "$ZAP_MIN_RISK" '.site[]?.alerts[]?
    | select((.riskcode | tonumber) >= $min) | "  \(.riskdesc): \(.name)"' \
    reports/zap-report.json >&2
  exit 1
fi
if [ -z "${IMAGE_DIGEST:-}" ]; then
  exit 0  # a scheduled scan: nothing to mark
fi
marker="dast-$DAST_ENVIRONMENT-$IMAGE_TAG"
manifest="$(aws ecr batch-get-image --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageDigest=$IMAGE_DIGEST" --query 'images[0].imageManifest' --output text)"
aws ecr put-image --repository-name "$ECR_REPOSITORY" --image-tag "$marker" \
  --image-manifest "$manifest" >/dev/null 2>&1 || true
passed="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageTag=$marker" --query 'imageDetails[0].imageDigest' --output text)"
test "$passed" = "$IMAGE_DIGEST"
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT (tag $marker)"
