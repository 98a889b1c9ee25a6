"""Pieces the GitHub Actions and CodeBuild targets share, so both do the same thing.

Scripts here never contain a value from pipeline.yaml: they read everything
from environment variables that the target sets, so no user string can ever
become shell code (the injection rule of the hostile-input issue).
"""

from __future__ import annotations

import re

from ..ir import IR, Environment, Security

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
chart=""
if [ -n "${CHART_SOURCE:-}" ]; then
  chart="$PWD/$CHART_SOURCE"  # the generated chart and this service's values, in this checkout
  values="$PWD/$VALUES_SOURCE/values-$ENVIRONMENT.yaml"
  test -f "$chart/Chart.yaml" && test -f "$values"
fi
workdir="$(mktemp -d)"
if [ "$GITOPS_REVISION" = "HEAD" ]; then
  git clone --depth 1 "$GITOPS_REPOSITORY" "$workdir"
else
  git clone --depth 1 --branch "$GITOPS_REVISION" "$GITOPS_REPOSITORY" "$workdir"
fi
cd "$workdir"
if [ -n "$chart" ]; then  # the chart and values this deploy was approved with
  rm -rf "$GITOPS_DIR"
  mkdir -p "$GITOPS_DIR"
  cp -R "$chart/." "$GITOPS_DIR/"
  cp "$values" "$GITOPS_DIR/"
fi
file="$GITOPS_DIR/image-$ENVIRONMENT.yaml"
mkdir -p "$GITOPS_DIR"
printf '# Written by the deploy pipeline, not by pipecompile.\\nimage:\\n' > "$file"
printf '  repository: "%s"\\n  tag: "%s"\\n  digest: "%s"\\n' \\
  "$IMAGE_URI" "$IMAGE_TAG" "$IMAGE_DIGEST" >> "$file"
git add -A "$GITOPS_DIR"
if git diff --cached --quiet; then
  echo "$SERVICE in $ENVIRONMENT already records $IMAGE_DIGEST"
  exit 0
fi
git -c user.name="pipecompile deploy" -c user.email="deploy@pipecompile.invalid" \\
  commit -q -m "Deploy $SERVICE $IMAGE_TAG ($IMAGE_DIGEST) to $ENVIRONMENT"
branch="$(git rev-parse --abbrev-ref HEAD)"
for attempt in 1 2 3 4 5; do
  if git push -q origin "HEAD:$branch"; then
    echo "recorded $SERVICE $IMAGE_DIGEST for $ENVIRONMENT in $file"
    exit 0
  fi
  sleep $((attempt * 3))
  git pull -q --rebase origin "$branch"
done
echo "could not push the new image digest after 5 attempts" >&2
exit 1
"""


def record_image_tag_script(auth: str) -> str:
    """Bash that writes a deployment into the GitOps repository: the chart and its values
    (copied from CHART_SOURCE and VALUES_SOURCE of this checkout, when set) and
    ``image-<env>.yaml``
    (repository, tag, digest), all in GITOPS_DIR, in one commit.

    Reads GITOPS_REPOSITORY, GITOPS_REVISION, GITOPS_DIR, CHART_SOURCE, VALUES_SOURCE, SERVICE,
    ENVIRONMENT, IMAGE_URI, IMAGE_TAG, IMAGE_DIGEST and the credential
    (GITOPS_DEPLOY_KEY or GITOPS_TOKEN).
    """
    setup = _HTTPS_SETUP if auth == "https" else _SSH_SETUP
    return "set -euo pipefail\n" + setup + _RECORD


# -- build once, promote by digest --------------------------------------------------------
#
# An image is keyed by the git tree of its service folder (the whole tree for a
# service at '.'): tag "src-<tree hash>".  A later environment whose source tree is
# the same (a release branch merged into main with no other change) finds that tag
# and deploys the very digest that passed the earlier ones; a re-run of a build
# whose push succeeded reuses it instead of failing on the immutable tag.
# The image tag prefix of each build tier (see "Who can deploy" in the README): release
# builds (approval environments' branches) never reuse a dev build's image.
RELEASE_TAG_PREFIX = "rel"
DEV_TAG_PREFIX = "src"

BUILD_ONCE = """\
set -euo pipefail
if [ "$SERVICE_PATH" = . ]; then
  tree="$(git rev-parse 'HEAD^{tree}')"
else
  tree="$(git rev-parse "HEAD:$SERVICE_PATH")"
fi
tag="${TAG_PREFIX:-src}-$tree"  # rel- for release-tier builds: never a dev build's image
lookup() {
  aws ecr describe-images --repository-name "$ECR_REPOSITORY" --image-ids "imageTag=$tag" \\
    --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true
}
digest="$(lookup)"
if [[ "$digest" == sha256:* ]]; then
  echo "$ECR_REPOSITORY:$tag exists ($digest): this source tree was built before; reusing it"
else
  aws ecr get-login-password | docker login --username AWS --password-stdin "$ECR_REGISTRY"
  docker build --file "$DOCKERFILE" --tag "$IMAGE_URI:$tag" "$SERVICE_PATH"
  # tags are immutable: when a concurrent build of the same tree pushed first, ours
  # is refused and the lookup below finds theirs
  docker push "$IMAGE_URI:$tag" || echo "push refused; looking for $tag in the registry"
  digest="$(lookup)"
  if [[ "$digest" != sha256:* ]]; then
    echo "$IMAGE_URI:$tag was neither pushed nor found in $ECR_REPOSITORY" >&2
    exit 1
  fi
fi
printf 'IMAGE_TAG=%s\\nIMAGE_DIGEST=%s\\n' "$tag" "$digest" >> "$IMAGE_ENV"
"""

# cosign flags checked against the pinned cosign (v3.0.6, the installer's bootstrap):
# cmd/cosign/cli/options/sign.go (--yes, --key, --tlog-upload, --use-signing-config:
# true by default, and signcommon/common.go refuses --tlog-upload=false with it) and
# options/verify.go (--insecure-ignore-tlog).  The KMS client calls kms:DescribeKey,
# kms:GetPublicKey and kms:Sign (tests/test_delivery.py checks the IAM grants them).
COSIGN_VERIFY = 'cosign verify --insecure-ignore-tlog=true --key "{key}" "$IMAGE_URI@$IMAGE_DIGEST"'
SIGN_ONCE = f"""\
set -euo pipefail
if {COSIGN_VERIFY.format(key="$SIGNING_KEY")} >/dev/null 2>&1; then
  echo "$IMAGE_URI@$IMAGE_DIGEST is already signed with $SIGNING_KEY"
else
  cosign sign --yes --use-signing-config=false --tlog-upload=false --key "$SIGNING_KEY" \\
    "$IMAGE_URI@$IMAGE_DIGEST"
fi
"""
# SIGNING_KEYS: the keys whose signature this environment accepts (an approval
# environment: the release key alone)
VERIFY_SIGNATURE = f"""\
set -euo pipefail
for key in $SIGNING_KEYS; do
  if {COSIGN_VERIFY.format(key="$key")} >/dev/null 2>&1; then
    echo "$IMAGE_URI@$IMAGE_DIGEST: signature verified with $key"
    exit 0
  fi
done
echo "$IMAGE_URI@$IMAGE_DIGEST carries no signature this environment accepts ($SIGNING_KEYS)" >&2
exit 1
"""

# CodeBuild's cosign: the pinned release, checked against the pinned sha256.
COSIGN_INSTALL = (
    'curl -fsSL -o /usr/local/bin/cosign "https://github.com/sigstore/cosign/releases/'
    'download/${COSIGN_VERSION}/cosign-linux-amd64"',
    'echo "$COSIGN_SHA256  /usr/local/bin/cosign" | sha256sum -c -',
    "chmod +x /usr/local/bin/cosign",
)

# -- DAST gates promotion -----------------------------------------------------------------
#
# After a deploy to the DAST environment is healthy, ZAP's baseline scan runs against
# its URL; alerts at or above ZAP_MIN_RISK fail it.  A pass adds the tag
# "dast-<env>-<image tag>" to the digest; an environment later in the promotion
# order deploys a digest only when that tag points at it.
DAST_SCAN = """\
set -euo pipefail
mkdir -p reports
chmod 777 reports
status=0
docker run --rm -v "$PWD/reports:/zap/wrk:rw" "$ZAP_IMAGE" zap-baseline.py \\
  -t "$DAST_URL" -J zap-report.json -r zap-report.html -I || status=$?
if [ "$status" -gt 2 ] || [ ! -s reports/zap-report.json ]; then
  echo "the ZAP scan of $DAST_URL did not complete (exit $status)" >&2
  exit 1
fi
blocking="$(jq --argjson min "$ZAP_MIN_RISK" \\
  '[.site[]?.alerts[]? | select((.riskcode | tonumber) >= $min)] | length' reports/zap-report.json)"
echo "ZAP alerts at or above the threshold: $blocking"
if [ "$blocking" -gt 0 ]; then
  jq -r --argjson min "$ZAP_MIN_RISK" '.site[]?.alerts[]?
    | select((.riskcode | tonumber) >= $min) | "  \\(.riskdesc): \\(.name)"' \\
    reports/zap-report.json >&2
  exit 1
fi
if [ -z "${IMAGE_DIGEST:-}" ]; then
  exit 0  # a scheduled scan: nothing to mark
fi
marker="dast-$DAST_ENVIRONMENT-$IMAGE_TAG"
manifest="$(aws ecr batch-get-image --repository-name "$ECR_REPOSITORY" \\
  --image-ids "imageDigest=$IMAGE_DIGEST" --query 'images[0].imageManifest' --output text)"
aws ecr put-image --repository-name "$ECR_REPOSITORY" --image-tag "$marker" \\
  --image-manifest "$manifest" >/dev/null 2>&1 || true
passed="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \\
  --image-ids "imageTag=$marker" --query 'imageDetails[0].imageDigest' --output text)"
test "$passed" = "$IMAGE_DIGEST"
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT (tag $marker)"
"""

PROMOTION_GATE = """\
set -euo pipefail
marker="dast-$DAST_ENVIRONMENT-$IMAGE_TAG"
passed="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \\
  --image-ids "imageTag=$marker" --query 'imageDetails[0].imageDigest' --output text \\
  2>/dev/null || true)"
if [ "$passed" != "$IMAGE_DIGEST" ]; then
  echo "$IMAGE_URI@$IMAGE_DIGEST has not passed DAST in $DAST_ENVIRONMENT" \\
    "(no tag $marker): deploy this source tree to $DAST_ENVIRONMENT first" >&2
  exit 1
fi
echo "$IMAGE_DIGEST passed DAST in $DAST_ENVIRONMENT"
"""

# -- truthful outcomes --------------------------------------------------------------------
#
# A deploy is done when Argo CD reports the Application Synced and Healthy with the
# new digest among its live images: Degraded means Argo Rollouts aborted the rollout
# (the analysis failed) and the stable version serves again.  The outcome goes to
# OUTCOME_FILE (and to GITHUB_OUTPUT on GitHub) for the audit row and notifications.
WAIT_HEALTHY = """\
set -euo pipefail
deadline=$((SECONDS + WAIT_SECONDS))
outcome=timed-out
state="no answer yet"
while [ "$SECONDS" -lt "$deadline" ]; do
  app="$(curl -fsS -H "Authorization: Bearer $ARGOCD_AUTH_TOKEN" \\
    "$ARGOCD_SERVER/api/v1/applications/$ARGOCD_APP?refresh=normal" || echo '{}')"
  sync="$(jq -r '.status.sync.status // "Unknown"' <<<"$app")"
  health="$(jq -r '.status.health.status // "Unknown"' <<<"$app")"
  live="$(jq -r --arg d "$IMAGE_DIGEST" \\
    '[.status.summary.images[]? | select(endswith("@" + $d))] | length' <<<"$app")"
  state="sync $sync, health $health, new digest live: $live"
  echo "$ARGOCD_APP: $state"
  if [ "$live" -gt 0 ] && [ "$sync" = Synced ] && [ "$health" = Healthy ]; then
    outcome=succeeded
    break
  fi
  if [ "$live" -gt 0 ] && [ "$health" = Degraded ]; then
    outcome=rolled-back
    break
  fi
  sleep 20
done
echo "outcome=$outcome" >> "$OUTCOME_FILE"
if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "outcome=$outcome" >> "$GITHUB_OUTPUT"; fi
case "$outcome" in
  succeeded) echo "$SERVICE is healthy in $ENVIRONMENT at $IMAGE_DIGEST" ;;
  rolled-back)
    echo "the rollout of $SERVICE to $ENVIRONMENT was aborted and rolled back ($state)" >&2
    exit 1 ;;
  *)
    echo "$SERVICE was not healthy in $ENVIRONMENT within $WAIT_SECONDS s ($state)" >&2
    exit 1 ;;
esac
"""

# The audit row: whichever orchestrator delivered writes it, success or not.
AUDIT_ROW = """\
set -euo pipefail
outcome="$(sed -n 's/^outcome=//p' "$OUTCOME_FILE" 2>/dev/null | tail -n 1)"
outcome="${outcome:-${DEPLOY_STATUS:-failed}}"
aws dynamodb put-item --table-name "$DEPLOYMENTS_TABLE" --item "$(jq -nc \\
  --arg s "$SERVICE" --arg e "$ENVIRONMENT" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \\
  --arg c "$COMMIT" --arg d "${IMAGE_DIGEST:-none}" --arg t "${IMAGE_TAG:-none}" \\
  --arg a "${APPROVER:-none}" --arg o "$outcome" --arg r "$RUN" \\
  '{service: {S: $s}, deployed_at: {S: $at}, environment: {S: $e}, commit: {S: $c},
    image_digest: {S: $d}, image_tag: {S: $t}, approver: {S: $a}, outcome: {S: $o},
    run: {S: $r}}')"
echo "audit: $SERVICE $ENVIRONMENT $outcome (approved by ${APPROVER:-none})"
"""

# -- CI gates: the same checks in both orchestrators ---------------------------------------
SONAR_GATE = """\
set -euo pipefail
total="$(curl -fsS -u "$SONAR_TOKEN:" --get "$SONAR_HOST_URL/api/issues/search" \\
  --data-urlencode "componentKeys=$SONAR_PROJECT_KEY" \\
  --data-urlencode "severities=$SONAR_SEVERITIES" \\
  --data-urlencode "resolved=false" --data-urlencode "ps=1" | jq -r '.total')"
echo "open SonarQube issues at or above the threshold: $total"
test "$total" -eq 0
"""

# OWASP dependency check in its container, each option its own argument (the
# Dependency-Check_Action pinned before passed `others` as one argument, so
# "--failOnCVSS 7.0" arrived as an unknown option).  NVD_API_KEY is optional
# but makes the database update fast.
DEPENDENCY_CHECK = """\
set -euo pipefail
mkdir -p reports "$HOME/.dependency-check"
key=()
if [ -n "${NVD_API_KEY:-}" ]; then key=(--nvdApiKey "$NVD_API_KEY"); fi
docker run --rm -v "$PWD:/src:ro" -v "$PWD/reports:/report:rw" \\
  -v "$HOME/.dependency-check:/usr/share/dependency-check/data:rw" \\
  "$DEPENDENCY_CHECK_IMAGE" --project "$DC_PROJECT" --scan "/src/$SERVICE_PATH" \\
  --format ALL --out /report --failOnCVSS "$FAIL_CVSS" "${key[@]}"
"""


def accepted_keys(ir: IR, env: Environment) -> str:
    """An approval environment accepts only release-tier images; the others either tier."""
    release = f"awskms:///{ir.aws.release_key_alias}"
    if env.approval:
        return release
    dev = f"awskms:///{ir.aws.signing_key_alias}"
    return f"{release} {dev}" if ir.release_branches else dev
