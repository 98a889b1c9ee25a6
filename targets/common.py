"""Pieces the GitHub Actions and CodeBuild targets share, so both do the same thing.

Scripts here never contain a value from pipeline.yaml: they read everything
from environment variables that the target sets, so no user string can ever
become shell code (the injection rule of the hostile-input issue).
"""

from __future__ import annotations

import re

from ..ir import Environment, Security

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


def severities_at_or_above(level: str) -> str:
    """``"high"`` -> ``"CRITICAL HIGH"`` (ECR finding severities that fail the gate)."""
    upper = level.upper()
    return " ".join(SEVERITIES[: SEVERITIES.index(upper) + 1])


# OWASP dependency-check --failOnCVSS thresholds by severity (CVSS v3 bands).
CVSS = {"critical": "9.0", "high": "7.0", "medium": "4.0", "low": "0.1"}
# SonarQube issue severities that count as at or above our severity.
SONAR = {
    "critical": "BLOCKER",
    "high": "BLOCKER,CRITICAL",
    "medium": "BLOCKER,CRITICAL,MAJOR",
    "low": "BLOCKER,CRITICAL,MAJOR,MINOR",
}


def scan_gate_env(sec: Security) -> dict[str, str]:
    """The variables :data:`ECR_SCAN_GATE` reads (besides the repository and tag)."""
    assert sec.image_scan_fail_on is not None
    return {
        "FAIL_SEVERITIES": severities_at_or_above(sec.image_scan_fail_on),
        "SCAN_TYPE": sec.image_scanning,
        "SCAN_TIMEOUT_SECONDS": str(sec.image_scan_timeout_minutes * 60),
    }


def glob_to_regex(glob: str) -> str:
    """Translate a GitHub branch filter glob into a POSIX ERE matching the whole name.

    ``*`` matches within one path segment, ``**`` across segments, ``?`` and
    ``+`` quantify the preceding character and ``[...]`` is a character class,
    as in GitHub's filter pattern cheat sheet.
    """
    out = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c in "?+":
            out.append(c if out else re.escape(c))
        elif c == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(r"\[")
            else:
                out.append("[" + glob[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        elif c in ".^$(){}|\\":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def branch_regexes(env: Environment) -> tuple[str, str]:
    """(include, exclude) anchored EREs for an environment's branch patterns."""
    inc = [glob_to_regex(b) for b in env.includes]
    exc = [glob_to_regex(b) for b in env.excludes]
    return ("^(" + "|".join(inc) + ")$", "^(" + "|".join(exc) + ")$" if exc else "")


# jq program turning ECR's severity counts into a JUnit report, one test case per
# severity, failing the ones at or above the threshold (CodeBuild publishes it).
_SCAN_JUNIT = r"""
  ($fail | split(" ")) as $blocking
  | ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"] as $all
  | "<testsuite name=\"ECR image scan\" tests=\"\($all | length)\">",
    ($all[] as $s | ((. // {})[$s] // 0) as $n
      | "  <testcase classname=\"\($image)\" name=\"\($s) findings: \($n)\">"
        + (if ($blocking | index($s)) != null and $n > 0
           then "<failure message=\"\($n) \($s) finding(s)\"/>" else "" end)
        + "</testcase>"),
    "</testsuite>"
"""

# The scan gate works with the registry's basic scanning (ECR) and with enhanced
# scanning (Amazon Inspector), whose status never reaches COMPLETE: it ends in
# ACTIVE (scanned, and watched from then on), so `aws ecr wait image-scan-complete`
# would hang there.  SCAN_TYPE (auto | basic | enhanced) comes from
# security.image_scan.scanning; auto asks the registry.  The wait is bounded by
# SCAN_TIMEOUT_SECONDS and fails with the last status it saw.
ECR_SCAN_GATE = (
    """\
set -euo pipefail
scan_type="$SCAN_TYPE"
if [ "$scan_type" = "auto" ]; then
  scan_type="$(aws ecr get-registry-scanning-configuration \\
    --query 'scanningConfiguration.scanType' --output text | tr '[:upper:]' '[:lower:]')"
fi
echo "registry scanning: $scan_type"
deadline=$((SECONDS + SCAN_TIMEOUT_SECONDS))
status=""
while :; do
  status="$(aws ecr describe-image-scan-findings --repository-name "$ECR_REPOSITORY" \\
    --image-id "imageTag=$IMAGE_TAG" --query 'imageScanStatus.status' --output text \\
    2>/dev/null || echo PENDING)"
  case "$status" in
    COMPLETE) break ;;
    ACTIVE) [ "$scan_type" = "enhanced" ] && break ;;
    FAILED|UNSUPPORTED_IMAGE|FINDINGS_UNAVAILABLE|SCAN_ELIGIBILITY_EXPIRED)
      echo "image scan of $ECR_REPOSITORY:$IMAGE_TAG ended as $status" >&2
      exit 1 ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "image scan of $ECR_REPOSITORY:$IMAGE_TAG did not finish within" \\
      "$SCAN_TIMEOUT_SECONDS s ($scan_type scanning, last status: $status);" \\
      "check the registry's scanning configuration" >&2
    exit 1
  fi
  sleep 10
done
# basic scanning counts findings by severity; enhanced scanning lists Inspector findings
counts="$(aws ecr describe-image-scan-findings --repository-name "$ECR_REPOSITORY" \\
  --image-id "imageTag=$IMAGE_TAG" --output json \\
  | jq -c '.imageScanFindings | .findingSeverityCounts // ((.enhancedFindings // [])
      | group_by(.severity) | map({(.[0].severity): length}) | add) // {}')"
echo "ECR scan findings for $ECR_REPOSITORY:$IMAGE_TAG: $counts"
mkdir -p reports
printf '%s' "$counts" | jq -r --arg fail "$FAIL_SEVERITIES" \\
  --arg image "$ECR_REPOSITORY:$IMAGE_TAG" '"""
    + _SCAN_JUNIT.strip("\n")
    + """' > reports/ecr-image-scan.xml
blocking=0
for severity in $FAIL_SEVERITIES; do
  n="$(printf '%s' "$counts" | jq -r --arg s "$severity" '.[$s] // 0')"
  blocking=$((blocking + n))
done
if [ "$blocking" -gt 0 ]; then
  echo "image scan: $blocking finding(s) at or above the threshold ($FAIL_SEVERITIES)" >&2
  exit 1
fi
"""
)

_SSH_SETUP = """\
mkdir -p "$HOME/.ssh"
chmod 700 "$HOME/.ssh"
printf '%s\\n' "$GITOPS_DEPLOY_KEY" > "$HOME/.ssh/gitops_deploy_key"
chmod 600 "$HOME/.ssh/gitops_deploy_key"
export GIT_SSH_COMMAND="ssh -i $HOME/.ssh/gitops_deploy_key -o IdentitiesOnly=yes \
-o StrictHostKeyChecking=accept-new"
"""

_HTTPS_SETUP = """\
auth="$(printf 'x-access-token:%s' "$GITOPS_TOKEN" | base64 | tr -d '\\n')"
git config --global "http.extraheader" "Authorization: Basic $auth"
"""

_RECORD = """\
workdir="$(mktemp -d)"
if [ "$GITOPS_REVISION" = "HEAD" ]; then
  git clone --depth 1 "$GITOPS_REPOSITORY" "$workdir"
else
  git clone --depth 1 --branch "$GITOPS_REVISION" "$GITOPS_REPOSITORY" "$workdir"
fi
cd "$workdir"
file="$GITOPS_PATH/$SERVICE/image-$ENVIRONMENT.yaml"
mkdir -p "$(dirname "$file")"
printf '# Written by the deploy pipeline, not by pipecompile.\\nimage:\\n  tag: "%s"\\n' \\
  "$IMAGE_TAG" > "$file"
git add "$file"
if git diff --cached --quiet; then
  echo "$SERVICE in $ENVIRONMENT already runs $IMAGE_TAG"
  exit 0
fi
git -c user.name="pipecompile deploy" -c user.email="deploy@pipecompile.invalid" \\
  commit -q -m "Deploy $SERVICE $IMAGE_TAG to $ENVIRONMENT"
branch="$(git rev-parse --abbrev-ref HEAD)"
for attempt in 1 2 3 4 5; do
  if git push -q origin "HEAD:$branch"; then
    echo "recorded $SERVICE $IMAGE_TAG for $ENVIRONMENT in $file"
    exit 0
  fi
  sleep $((attempt * 3))
  git pull -q --rebase origin "$branch"
done
echo "could not push the new image tag after 5 attempts" >&2
exit 1
"""


def record_image_tag_script(auth: str) -> str:
    """Bash that writes ``image-<env>.yaml`` with the new tag into the GitOps repository.

    Reads GITOPS_REPOSITORY, GITOPS_REVISION, GITOPS_PATH, SERVICE, ENVIRONMENT,
    IMAGE_TAG and the credential (GITOPS_DEPLOY_KEY or GITOPS_TOKEN).
    """
    setup = _HTTPS_SETUP if auth == "https" else _SSH_SETUP
    return "set -euo pipefail\n" + setup + _RECORD
