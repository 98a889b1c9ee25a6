#!/usr/bin/env bash
# route.sh: match the pushed branch against each environment's branch patterns
# (GitHub Actions' delivery: which deploy jobs run, and the build's tier).
#
# Inputs (environment):
#   BRANCH                 the pushed branch (github.ref_name)
#   ENVIRONMENTS           space-separated environment names, in promotion order
#   INCLUDE_<KEY>          per environment (KEY: its name upper-cased, '-' -> '_'):
#                          an anchored ERE of the branches it deploys
#   EXCLUDE_<KEY>          an anchored ERE of the branches it excludes (may be empty)
#   RELEASE_ENVIRONMENTS   space-separated approval environments: a match makes the
#                          build release-tier
#   GITHUB_OUTPUT          the step's outputs file
# Outputs:
#   <environment>=true|false for each environment, any=true|false and
#   release=true|false, appended to $GITHUB_OUTPUT
# Exit codes:
#   0  always (no environment matching is any=false, not an error)
set -euo pipefail
matches() {
  [[ "$BRANCH" =~ $1 ]] && { [ -z "$2" ] || ! [[ "$BRANCH" =~ $2 ]]; }
}
any=false
release=false
for env in $ENVIRONMENTS; do
  key="${env^^}"
  key="${key//-/_}"
  include="INCLUDE_$key"
  exclude="EXCLUDE_$key"
  if matches "${!include}" "${!exclude}"; then
    echo "$env=true" >> "$GITHUB_OUTPUT"
    any=true
    case " $RELEASE_ENVIRONMENTS " in
      *" $env "*) release=true ;;  # an approval environment: a release-tier build
    esac
  else
    echo "$env=false" >> "$GITHUB_OUTPUT"
  fi
done
echo "any=$any" >> "$GITHUB_OUTPUT"
echo "release=$release" >> "$GITHUB_OUTPUT"
