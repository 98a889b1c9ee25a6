#!/usr/bin/env bash
# approver-github.sh: who approved this run's deployment to ENVIRONMENT (GitHub Actions).
#
# Inputs (environment):
#   GITHUB_TOKEN        a token that may read the run's approvals (actions: read)
#   GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID   set by the runner
#   ENVIRONMENT         the GitHub environment
#   GITHUB_OUTPUT       the step's outputs file
# Outputs:
#   approver=<login> (or none) appended to $GITHUB_OUTPUT
# Exit codes:
#   0  looked up
#   22 the API refused (curl --fail: HTTP 401 for a bad token, 404 for an unknown run);
#      curl's other codes when it did not answer (7: no connection)
set -euo pipefail
approver="$(curl -fsS -H "Authorization: Bearer $GITHUB_TOKEN" \
  "$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/approvals" \
  | jq -r --arg e "$ENVIRONMENT" \
    '[.[] | select(any(.environments[]; .name == $e)) | .user.login] | last // "none"')"
echo "approver=$approver" >> "$GITHUB_OUTPUT"
