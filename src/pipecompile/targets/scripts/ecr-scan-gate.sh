#!/usr/bin/env bash
# ecr-scan-gate.sh: wait for the registry's scan of the image, write a JUnit report,
# and fail on findings at or above the threshold.
#
# Works with basic scanning (ECR) and with enhanced scanning (Amazon Inspector), whose
# status never reaches COMPLETE: it ends in ACTIVE (scanned, and watched from then
# on), so `aws ecr wait image-scan-complete` would hang there.  The wait is bounded by
# SCAN_TIMEOUT_SECONDS and fails with the last status it saw.
#
# Inputs (environment):
#   ECR_REPOSITORY         the repository name in ECR
#   IMAGE_TAG              the tag the build pushed
#   IMAGE_DIGEST           optional: the digest to judge (the sign project's, which it
#                          read from the registry itself); the findings are then read for
#                          that digest, not for whatever the tag names
#   FAIL_SEVERITIES        space-separated severities that fail ("CRITICAL HIGH")
#   SCAN_TYPE              auto | basic | enhanced (auto asks the registry)
#   SCAN_TIMEOUT_SECONDS   how long to wait for the scan
#   GITHUB_STEP_SUMMARY    optional (GitHub Actions sets it): the file of the job's summary
# Outputs:
#   reports/ecr-image-scan.xml (JUnit: one test case per severity)
#   with GITHUB_STEP_SUMMARY: a Markdown summary of the findings (counts per severity,
#   the first 20 at or above the threshold), on the run's page where the approver of
#   the deploy decides
# Exit codes:
#   0  scanned, nothing at or above the threshold
#   1  findings at or above the threshold, a failed scan, or no result in time
set -euo pipefail
# shellcheck disable=SC2153  # SCAN_TYPE is an input, scan_type what it resolves to
scan_type="$SCAN_TYPE"
: "${IMAGE_TAG:?the build step recorded no image tag}"
image_id="imageTag=$IMAGE_TAG"
if [ -n "${IMAGE_DIGEST:-}" ]; then
  if ! [[ "$IMAGE_DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "'$IMAGE_DIGEST' is not a sha256 digest" >&2
    exit 1
  fi
  image_id="imageDigest=$IMAGE_DIGEST"
fi
errors="$(mktemp)"
if [ "$scan_type" = "auto" ]; then
  scan_type="$(aws ecr get-registry-scanning-configuration \
    --query 'scanningConfiguration.scanType' --output text | tr '[:upper:]' '[:lower:]')"
fi
echo "registry scanning: $scan_type"
deadline=$((SECONDS + SCAN_TIMEOUT_SECONDS))
status=""
while :; do
  # only "no scan yet" is worth waiting for: any other error (no such tag, no access)
  # fails now, with the CLI's own message
  if ! status="$(aws ecr describe-image-scan-findings --repository-name "$ECR_REPOSITORY" \
    --image-id "$image_id" --query 'imageScanStatus.status' --output text \
    2>"$errors")"; then
    if grep -q ScanNotFoundException "$errors"; then
      status=PENDING
    else
      cat "$errors" >&2
      echo "cannot read the scan of $ECR_REPOSITORY:$IMAGE_TAG" >&2
      exit 1
    fi
  fi
  # ImageScanStatus (ECR API reference): only a scan under way is waited for; any other
  # state (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE, SCAN_ELIGIBILITY_EXPIRED,
  # LIMIT_EXCEEDED, IMAGE_ARCHIVED, or one added later) ends the gate at once
  case "$status" in
    COMPLETE) break ;;
    ACTIVE) [ "$scan_type" = "enhanced" ] && break ;;
    IN_PROGRESS|PENDING) ;;
    *)
      echo "image scan of $ECR_REPOSITORY:$IMAGE_TAG ended as $status" >&2
      exit 1 ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "image scan of $ECR_REPOSITORY:$IMAGE_TAG did not finish within" \
      "$SCAN_TIMEOUT_SECONDS s ($scan_type scanning, last status: $status);" \
      "check the registry's scanning configuration" >&2
    exit 1
  fi
  sleep 10
done
# basic scanning counts findings by severity; enhanced scanning lists Inspector findings
found="$(aws ecr describe-image-scan-findings --repository-name "$ECR_REPOSITORY" \
  --image-id "$image_id" --output json)"
counts="$(jq -c '.imageScanFindings | .findingSeverityCounts // ((.enhancedFindings // [])
      | group_by(.severity) | map({(.[0].severity): length}) | add) // {}' <<<"$found")"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  jq -r --arg fail "$FAIL_SEVERITIES" --arg image "$ECR_REPOSITORY:$IMAGE_TAG" \
    --argjson counts "$counts" '($fail | split(" ")) as $blocking
    | ((.imageScanFindings.findings // [])
       + [(.imageScanFindings.enhancedFindings // [])[]
          | {name: (.packageVulnerabilityDetails.vulnerabilityId // .title),
             severity, uri: (.packageVulnerabilityDetails.sourceUrl // "")}])
      | map(select(.severity as $s | $blocking | index($s))) as $over
    | "### Image scan of `\($image)`", "",
      "| severity | findings | blocks |", "| --- | --- | --- |",
      (["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"][] as $s
        | "| \($s) | \($counts[$s] // 0) | \(if $blocking | index($s) then "yes" else "" end) |"),
      "",
      (if ($over | length) == 0 then "Nothing at or above the threshold (\($fail))."
       else "At or above the threshold (\($fail)):", "",
         ($over[:20][] | "- \(.severity) \(.name)\(if .uri != "" then " (\(.uri))" else "" end)")
       end)' <<<"$found" >>"$GITHUB_STEP_SUMMARY"
fi
echo "ECR scan findings for $ECR_REPOSITORY:$IMAGE_TAG: $counts"
mkdir -p reports
printf '%s' "$counts" | jq -r --arg fail "$FAIL_SEVERITIES" \
  --arg image "$ECR_REPOSITORY:$IMAGE_TAG" '($fail | split(" ")) as $blocking
  | ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"] as $all
  | "<testsuite name=\"ECR image scan\" tests=\"\($all | length)\">",
    ($all[] as $s | ((. // {})[$s] // 0) as $n
      | "  <testcase classname=\"\($image)\" name=\"\($s) findings: \($n)\">"
        + (if ($blocking | index($s)) != null and $n > 0
           then "<failure message=\"\($n) \($s) finding(s)\"/>" else "" end)
        + "</testcase>"),
    "</testsuite>"' > reports/ecr-image-scan.xml
blocking=0
for severity in $FAIL_SEVERITIES; do
  n="$(printf '%s' "$counts" | jq -r --arg s "$severity" '.[$s] // 0')"
  blocking=$((blocking + n))
done
if [ "$blocking" -gt 0 ]; then
  echo "image scan: $blocking finding(s) at or above the threshold ($FAIL_SEVERITIES)" >&2
  exit 1
fi
