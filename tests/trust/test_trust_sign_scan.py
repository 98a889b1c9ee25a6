"""Issue 28 trace, item 2: the ECR scan gate of a CodePipeline build runs in the build
session after the branch's code, which can fake its result (a stub ``aws`` in ``PATH``,
an edited buildspec).  So the sign project, whose buildspec is Terraform's and which runs
none of the branch's commands, reads the registry's findings for the digest it signs
itself and refuses to sign at or above the threshold.

The sign buildspec's build commands run here as CodeBuild runs them (buildspec version
0.2: one shell for the phase's commands, ``on-failure: ABORT`` stops at the first that
fails) against stub ``aws``, ``docker`` and ``cosign`` that log what they are asked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.iam_eval import Account

ECOMMERCE = ROOT / "samples/ecommerce"
DIGEST = "sha256:" + "ab" * 32

# the shapes are the AWS CLI's for these ECR calls (API Reference: DescribeImages,
# DescribeImageScanFindings, GetRegistryScanningConfiguration), after --query/--output text
AWS = """#!/usr/bin/env bash
echo "aws $*" >> "$CALLS"
case "$*" in
  *get-login-password*) echo token ;;
  *describe-images*) printf '%s\\n' "$FAKE_DIGEST" ;;
  *get-registry-scanning-configuration*) echo BASIC ;;
  *describe-image-scan-findings*imageScanStatus.status*) echo COMPLETE ;;
  *describe-image-scan-findings*"imageDigest=$FAKE_DIGEST"*) printf '%s\\n' "$FAKE_FINDINGS" ;;
  *describe-image-scan-findings*) echo "asked for another image: $*" >&2; exit 254 ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""
DOCKER = """#!/usr/bin/env bash
echo "docker $*" >> "$CALLS"
case "$1" in
  login) cat >/dev/null ;;
  run) echo '{}' ;;
esac
"""
# cosign: nothing is signed yet (verify fails), signing and attesting succeed
COSIGN = """#!/usr/bin/env bash
echo "cosign $*" >> "$CALLS"
case "$1" in verify|verify-attestation) exit 1 ;; esac
"""


def _sign(tmp_path: Path, findings: dict[str, int]) -> tuple[int, list[str]]:
    spec = yaml.safe_load((ECOMMERCE / "ci/codebuild/sign.yml").read_text())
    repo = tmp_path / "src"
    repo.mkdir()
    (repo / "app.py").write_text("print('hi')\n")
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", AWS), ("docker", DOCKER), ("cosign", COSIGN)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    env = {
        **os.environ,
        **{k: str(v) for k, v in spec["env"]["variables"].items()},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(calls),
        "VERIFIED_IMAGE": str(tmp_path / "verified-image"),
        "FAKE_DIGEST": DIGEST,
        "FAKE_FINDINGS": json.dumps({"imageScanFindings": {"findingSeverityCounts": findings}}),
        # the sign project's (Terraform) and the Sign action's values
        "SIGNING_KEY": "awskms:///alias/ecommerce-release-signing",
        "TAG_PREFIX": "rel",
        "IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecommerce/web-release",
        "SERVICE_PATH": ".",
        "IMAGE_EXCLUDES": '["deploy"]',
        "BUILDER_ID": "arn:aws:codebuild:us-east-1:123456789012:project/x",
        "BUILD_INVOCATION": "execution-1",
        "CODEBUILD_RESOLVED_SOURCE_VERSION": "0" * 40,
    }
    script = "".join(
        f'{command}\nrc=$?; [ "$rc" -eq 0 ] || exit "$rc"\n'
        for command in spec["phases"]["build"]["commands"]
    )
    assert spec["phases"]["build"]["on-failure"] == "ABORT"
    res = subprocess.run(
        ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    return res.returncode, calls.read_text().splitlines()


def test_the_sign_project_refuses_a_digest_with_findings_at_the_threshold(
    tmp_path: Path,
) -> None:
    """The build's gate said nothing (faked, or skipped): the sign project asks the
    registry for the findings of the digest it is about to sign, and does not sign."""
    code, calls = _sign(tmp_path, {"HIGH": 1, "LOW": 3})
    assert code != 0
    asked = [c for c in calls if "describe-image-scan-findings" in c]
    assert asked and all(f"imageDigest={DIGEST}" in c for c in asked), calls
    assert not any(c.startswith("cosign sign ") for c in calls), calls
    assert not any(c.startswith("cosign attest ") for c in calls), calls


@pytest.mark.parametrize("findings", [{}, {"MEDIUM": 4, "LOW": 2}])
def test_the_sign_project_signs_a_digest_below_the_threshold(
    tmp_path: Path, findings: dict[str, int]
) -> None:
    code, calls = _sign(tmp_path, findings)
    assert code == 0, calls
    scan = max(i for i, c in enumerate(calls) if "describe-image-scan-findings" in c)
    sign = next(i for i, c in enumerate(calls) if c.startswith("cosign sign "))
    assert scan < sign and calls[sign].endswith(f"@{DIGEST}")


def test_the_sign_roles_may_read_their_tiers_findings_only() -> None:
    acct = Account(ECOMMERCE / "infrastructure/terraform/cicd", "123456789012")
    region = "us-east-1"

    def repo(name: str) -> str:
        return f"arn:aws:ecr:{region}:123456789012:repository/{name}"

    for role, own, other in (
        ("codebuild_sign", "ecommerce/product-service", "ecommerce/product-service-release"),
        (
            "codebuild_sign_release",
            "ecommerce/product-service-release",
            "ecommerce/product-service",
        ),
    ):
        assert acct.can(role, "ecr:DescribeImageScanFindings", repo(own))
        assert not acct.can(role, "ecr:DescribeImageScanFindings", repo(other))
        assert acct.can(role, "ecr:GetRegistryScanningConfiguration", "*")


def test_the_build_session_runs_no_scan_gate_the_approver_reads_the_signs_report() -> None:
    """A gate in the build session proves nothing (the branch's code runs there first):
    with signing, the sign project is the only gate, and the approval text points at its
    report group (CodeBuild names it <project>-<report>)."""
    build = yaml.safe_load((ECOMMERCE / "ci/codebuild/build.yml").read_text())
    sign = yaml.safe_load((ECOMMERCE / "ci/codebuild/sign.yml").read_text())
    assert "describe-image-scan-findings" not in json.dumps(build["phases"])
    assert "reports" not in build
    assert sign["reports"]["ecr-image-scan"]["file-format"] == "JUNITXML"
    pipelines = (ECOMMERCE / "infrastructure/terraform/cicd/codepipeline.tf").read_text()
    assert "Build action's report" not in pipelines
    assert (
        "Sign action's report (CodeBuild report group ecommerce-sign-release-ecr-image-scan)"
        in (pipelines)
    )
