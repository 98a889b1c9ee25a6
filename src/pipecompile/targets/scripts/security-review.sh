#!/usr/bin/env bash
# security-review.sh: the monthly security review of what runs in each environment.
#
# The monthly security review (issue 29, item 4): for each environment x service, the
# digest the audit table last recorded as live (rollback-resolve.sh's rule: a succeeded
# deploy, a manual rollback, or a row that recorded its digest in GitOps and then did not
# fail or abort, e.g. cancelled, timed-out, waiting-for-promotion), re-scanned in
# ECR (basic scanning: a new scan, at most one a day per image; enhanced scanning:
# Amazon Inspector rescans on its own, its findings are read), and its findings at or
# above the threshold listed; then zizmor audits the workflows. review-report.sh
# records the outcome and tells the channel.
#
# Inputs (environment):
#   DEPLOYMENTS_TABLE      the audit table
#   IMAGES                 <environment>/<service>=<ECR repository>, space-separated
#   FAIL_SEVERITIES        space-separated severities listed ("CRITICAL HIGH")
#   SCAN_TYPE              auto | basic | enhanced (auto asks the registry)
#   SCAN_TIMEOUT_SECONDS   how long to wait for one image's scan
#   OUTCOME_FILE           where to write outcome=clean|findings|error
#   SUMMARY_FILE           where to write the findings, one line each
#   WORKFLOWS_DIR          optional: the workflows zizmor audits
#   POLL_SECONDS           optional: between two looks at a scan (default 10)
#   GITHUB_OUTPUT          optional (GitHub Actions): outcome=... for later jobs
# Outputs:
#   OUTCOME_FILE, SUMMARY_FILE; reports/security-review.json (every finding listed)
# Exit codes:
#   0  nothing at or above the threshold, no workflow finding
#   1  findings, or a scan or an audit that could not run (both listed in the summary)
set -euo pipefail
outcome=error
summary="$SUMMARY_FILE"
: > "$summary"
mkdir -p reports
listed='[]'
finish() {
  jq . <<<"$listed" > reports/security-review.json
  echo "outcome=$outcome" > "$OUTCOME_FILE"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "outcome=$outcome" >> "$GITHUB_OUTPUT"; fi
}
trap finish EXIT
# shellcheck disable=SC2153  # SCAN_TYPE is an input, scan_type what it resolves to
scan_type="$SCAN_TYPE"
if [ "$scan_type" = auto ]; then
  scan_type="$(aws ecr get-registry-scanning-configuration \
    --query 'scanningConfiguration.scanType' --output text | tr '[:upper:]' '[:lower:]')"
fi
# the rows that put a digest live (rollback-resolve.sh's rule); one line: DynamoDB
live='#o = :ok OR (#o = :r AND #t = :m) OR (#rec = :y AND #o <> :f AND (#o <> :r OR #t = :m))'
findings=0
problems=0
note() { echo "$*" | tee -a "$summary"; }
errors="$(mktemp)"
for image in $IMAGES; do
  stream="${image%%=*}"
  repository="${image#*=}"
  values="$(jq -nc --arg s "$stream" \
    '{":s": {S: $s}, ":ok": {S: "succeeded"}, ":r": {S: "rolled-back"}, ":m": {S: "manual"},
      ":f": {S: "failed"}, ":y": {BOOL: true}}')"
  # newest first; the CLI pages on until one row passes the filter: the newest row that
  # put a digest live, a deploy or a manual rollback (rollback-resolve.sh reads them so)
  row="$(aws dynamodb query --table-name "$DEPLOYMENTS_TABLE" \
    --key-condition-expression '#s = :s' \
    --filter-expression "$live" \
    --expression-attribute-names '{"#s":"stream","#o":"outcome","#t":"trigger","#rec":"recorded"}' \
    --expression-attribute-values "$values" --no-scan-index-forward --max-items 1 \
    --output json | jq -c '.Items[0] // empty')"
  digest="$(jq -r '.image_digest.S // empty' <<<"${row:-null}")"
  if [[ "$digest" != sha256:* ]]; then
    echo "$stream: nothing deployed yet"
    continue
  fi
  id="imageDigest=$digest"
  if [ "$scan_type" = basic ] && ! aws ecr start-image-scan --repository-name "$repository" \
    --image-id "$id" >/dev/null 2>"$errors"; then
    # a scan of this image today already: its result is as fresh as a new one
    if ! grep -q LimitExceededException "$errors"; then
      note "$stream $digest: cannot re-scan ($(tr '\n' ' ' <"$errors"))"
      problems=$((problems + 1))
      continue
    fi
  fi
  deadline=$((SECONDS + SCAN_TIMEOUT_SECONDS))
  status=""
  while :; do
    if ! status="$(aws ecr describe-image-scan-findings --repository-name "$repository" \
      --image-id "$id" --query 'imageScanStatus.status' --output text 2>"$errors")"; then
      if ! grep -q ScanNotFoundException "$errors"; then
        status="unreadable: $(tr '\n' ' ' <"$errors")"
        break
      fi
      status=PENDING
    fi
    case "$status" in
      COMPLETE) break ;;
      ACTIVE) [ "$scan_type" = enhanced ] && break ;;
      FAILED | UNSUPPORTED_IMAGE | FINDINGS_UNAVAILABLE | SCAN_ELIGIBILITY_EXPIRED) break ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      status="no result within $SCAN_TIMEOUT_SECONDS s (last: $status)"
      break
    fi
    sleep "${POLL_SECONDS:-10}"
  done
  if [ "$status" != COMPLETE ] && [ "$status" != ACTIVE ]; then
    # SCAN_ELIGIBILITY_EXPIRED: Inspector stopped rescanning an image this old
    note "$stream $repository@$digest: no scan result ($status)"
    problems=$((problems + 1))
    continue
  fi
  # basic scanning lists findings, enhanced scanning Inspector's (with a vulnerability id)
  found="$(aws ecr describe-image-scan-findings --repository-name "$repository" \
    --image-id "$id" --output json | jq -c --arg fail "$FAIL_SEVERITIES" \
    --arg stream "$stream" --arg image "$repository@$digest" '($fail | split(" ")) as $f
    | [(.imageScanFindings.findings // [])[] | {severity, name}]
      + [(.imageScanFindings.enhancedFindings // [])[]
         | {severity, name: (.packageVulnerabilityDetails.vulnerabilityId // .title)}]
    | map(select(.severity as $s | $f | index($s)) + {stream: $stream, image: $image})')"
  n="$(jq length <<<"$found")"
  listed="$(jq -c --argjson more "$found" '. + $more' <<<"$listed")"
  if [ "$n" -gt 0 ]; then
    findings=$((findings + n))
    note "$stream $repository@$digest: $n at or above ${FAIL_SEVERITIES// /, }:" \
      "$(jq -r 'map("\(.severity) \(.name)") | unique | join(", ")' <<<"$found")"
  else
    echo "$stream $repository@$digest: nothing at or above the threshold"
  fi
done
if [ -n "${WORKFLOWS_DIR:-}" ]; then
  audit=0
  zizmor --offline --no-progress --persona auditor --format json "$WORKFLOWS_DIR" \
    > reports/zizmor.json 2>"$errors" || audit=$?
  if [ "$audit" = 0 ] || [ "$audit" -ge 10 ]; then  # 10 and up: findings, by severity
    n="$(jq length reports/zizmor.json)"
    if [ "$n" -gt 0 ]; then
      findings=$((findings + n))
      note "workflows: $n zizmor finding(s):" \
        "$(jq -r 'map(.ident) | unique | join(", ")' reports/zizmor.json)"
    else
      echo "workflows: no zizmor finding"
    fi
  else
    note "workflows: zizmor could not audit $WORKFLOWS_DIR ($(tr '\n' ' ' <"$errors"))"
    problems=$((problems + 1))
  fi
fi
if [ "$problems" -gt 0 ]; then
  outcome=error
elif [ "$findings" -gt 0 ]; then
  outcome=findings
else
  outcome=clean
  note "nothing at or above ${FAIL_SEVERITIES// /, } in what runs; no workflow finding"
fi
[ "$outcome" = clean ]
