#!/usr/bin/env bash
# require-secrets.sh: end a deploy at its start when a secret it reads is empty.
#
# An environment's secret reaches a called workflow's job only when the caller maps it
# (`secrets:`), and an environment that does not hold it gives "" as well: the GitOps
# commit or the health wait would then fail minutes later, with a message that names
# neither the secret nor the environment. The values never reach this step: only
# whether each is set (the expression `secrets.<NAME> != ''`).
#
# Inputs (environment):
#   REQUIRED_SECRETS   the secrets' names, separated by spaces
#   SET_<NAME>         "true" when secret <NAME> is set, for each name
#   ENVIRONMENT        the environment deployed to (for the message)
# Outputs:
#   a line naming the secrets that are set, or an error naming each missing one
# Exit codes:
#   0  every secret is set
#   1  one or more is empty: each is named
set -euo pipefail
missing=()
for name in $REQUIRED_SECRETS; do
  var="SET_$name"
  if [ "${!var:-}" != true ]; then
    missing+=("$name")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "::error::secrets missing in environment '$ENVIRONMENT': ${missing[*]} (set them in the GitHub environment, and map each in the caller's secrets:)" >&2
  exit 1
fi
echo "secrets set: $REQUIRED_SECRETS"
