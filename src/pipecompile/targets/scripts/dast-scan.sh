#!/usr/bin/env bash
# dast-scan.sh: OWASP ZAP's baseline scan of the DAST environment (no AWS access needed).
#
# After a deploy to the DAST environment is healthy (and on the schedule of the
# production scan), ZAP's baseline scan runs against its URL; alerts at or above
# ZAP_MIN_RISK fail it.  A pass lets dast-mark.sh mark the digest.
#
# Inputs (environment):
#   DAST_URL           the URL to scan
#   ZAP_IMAGE          the pinned ZAP container image
#   ZAP_MIN_RISK       0-3: alerts at or above this risk code fail the scan
# Outputs:
#   reports/zap-report.json and reports/zap-report.html
# Exit codes:
#   0  no alert at or above the threshold
#   1  alerts at or above the threshold, or the scan did not complete
set -euo pipefail
if [ -z "${DAST_URL:-}" ]; then
  # a caller that passed no URL would scan nothing and mark the digest as passed
  echo "DAST_URL is empty: nothing to scan (the deploy passes the service's URL)" >&2
  exit 1
fi
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
