#!/usr/bin/env bash
# dependency-check.sh: OWASP dependency-check of the service's folder, in its container.
#
# Each option is its own argument (the Dependency-Check_Action pinned before passed
# `others` as one argument, so "--failOnCVSS 7.0" arrived as an unknown option).
# NVD_API_KEY is optional but makes the database update fast.
#
# Inputs (environment):
#   DEPENDENCY_CHECK_IMAGE   the pinned dependency-check image
#   DC_PROJECT               the project name in the report
#   SERVICE_PATH             the folder to scan, relative to the current directory
#   FAIL_CVSS                fail at or above this CVSS score
#   NVD_API_KEY              optional: an NVD API key (a secret)
#   HOME                     the database cache lives in $HOME/.dependency-check
# Outputs:
#   reports/ (every format dependency-check writes)
# Exit codes:
#   0  nothing at or above FAIL_CVSS
#   non-zero  dependency-check's exit: vulnerabilities at or above FAIL_CVSS, or an error
set -euo pipefail
mkdir -p reports "$HOME/.dependency-check"
key=()
if [ -n "${NVD_API_KEY:-}" ]; then key=(--nvdApiKey "$NVD_API_KEY"); fi
# The image runs as its own user, uid 1000 (owasp/dependency-check's Dockerfile: USER
# ${UID}, UID=1000); the runner made reports/ and the NVD folder as itself (uid 1001 on
# GitHub-hosted runners, root on CodeBuild), mode 755.  Run the container as the runner's
# user, as the project's own docker script does (-u $(id -u):$(id -g)): the mounts are
# then writable, and what the scan writes belongs to the runner.
docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/src:ro" -v "$PWD/reports:/report:rw" \
  -v "$HOME/.dependency-check:/usr/share/dependency-check/data:rw" \
  "$DEPENDENCY_CHECK_IMAGE" --project "$DC_PROJECT" --scan "/src/$SERVICE_PATH" \
  --format ALL --out /report --failOnCVSS "$FAIL_CVSS" "${key[@]}"
