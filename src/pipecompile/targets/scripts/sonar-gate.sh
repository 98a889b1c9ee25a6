#!/usr/bin/env bash
# sonar-gate.sh: fail on open SonarQube issues at or above the threshold.
#
# Inputs (environment):
#   SONAR_HOST_URL      the SonarQube server (a secret)
#   SONAR_TOKEN         a token that may browse the project (a secret)
#   SONAR_PROJECT_KEY   the project
#   SONAR_SEVERITIES    comma-separated severities that fail (BLOCKER,CRITICAL)
# Outputs:
#   none
# Exit codes:
#   0  no open issue at those severities
#   1  open issues, or the server did not answer
set -euo pipefail
total="$(curl -fsS -u "$SONAR_TOKEN:" --get "$SONAR_HOST_URL/api/issues/search" \
  --data-urlencode "componentKeys=$SONAR_PROJECT_KEY" \
  --data-urlencode "severities=$SONAR_SEVERITIES" \
  --data-urlencode "resolved=false" --data-urlencode "ps=1" | jq -r '.total')"
echo "open SonarQube issues at or above the threshold: $total"
test "$total" -eq 0
