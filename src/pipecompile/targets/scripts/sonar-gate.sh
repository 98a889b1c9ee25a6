#!/usr/bin/env bash
# sonar-gate.sh: fail on open SonarQube issues at or above the threshold.
#
# Inputs (environment):
#   SONAR_HOST_URL      the SonarQube server (a secret)
#   SONAR_TOKEN         a token that may browse the project (a secret)
#   SONAR_PROJECT_KEY   the project
#   SONAR_SEVERITIES    comma-separated severities that fail (BLOCKER,CRITICAL)
# Outputs:
#   a line with the count of open issues at those severities
# Exit codes:
#   0  no open issue at those severities
#   1  open issues; or the server did not answer, or its answer holds no count (each
#      with a line saying which)
#
# The count is api/issues/search's paging.total: SonarQube 9.8 deprecated the top-level
# total (SearchAction's changelog: "response fields 'total', 's', 'ps' have been
# deprecated, please use 'paging' object instead"), and its response example has only
# paging; an older server's top-level total is read when paging is absent.
set -euo pipefail
if ! answer="$(curl -fsS -u "$SONAR_TOKEN:" --get "$SONAR_HOST_URL/api/issues/search" \
  --data-urlencode "componentKeys=$SONAR_PROJECT_KEY" \
  --data-urlencode "severities=$SONAR_SEVERITIES" \
  --data-urlencode "resolved=false" --data-urlencode "ps=1" 2>&1)"; then
  echo "SonarQube did not answer the issue search for $SONAR_PROJECT_KEY: $answer" >&2
  exit 1
fi
total="$(jq -r '(.paging.total // .total) | numbers' <<<"$answer" 2>/dev/null || true)"
if ! [[ "$total" =~ ^[0-9]+$ ]]; then
  echo "SonarQube's answer for $SONAR_PROJECT_KEY holds no issue count (paging.total):" \
    "${answer:0:300}" >&2
  exit 1
fi
echo "open SonarQube issues at or above the threshold: $total"
test "$total" -eq 0
