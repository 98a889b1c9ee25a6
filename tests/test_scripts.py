"""The shell scripts the targets share, run for real against a stub AWS CLI."""

from __future__ import annotations

import os
import subprocess
import xml.dom.minidom
from pathlib import Path

import pytest

from pipecompile.targets.common import ECR_SCAN_GATE

STUB = """#!/usr/bin/env bash
case "$*" in
  *get-registry-scanning-configuration*) printf '%s\\n' "$FAKE_SCAN_TYPE" ;;
  *"describe-image-scan-findings"*"imageScanStatus.status"*) printf '%s\\n' "$FAKE_STATUS" ;;
  *describe-image-scan-findings*) printf '%s\\n' "$FAKE_FINDINGS" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


def gate(
    tmp_path: Path, findings: str, fail_on: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the scan gate against the stub AWS CLI."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "aws").write_text(STUB)
    (bin_dir / "aws").chmod(0o755)
    full = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_FINDINGS": findings,
        "FAKE_STATUS": "COMPLETE",
        "FAKE_SCAN_TYPE": "BASIC",
        "ECR_REPOSITORY": "shop/web",
        "IMAGE_TAG": "abc123",
        "FAIL_SEVERITIES": fail_on,
        "SCAN_TYPE": "auto",
        "SCAN_TIMEOUT_SECONDS": "1200",
        **env,
    }
    return subprocess.run(
        ["bash", "-c", ECR_SCAN_GATE],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )


def basic(counts: str) -> str:
    return f'{{"imageScanFindings": {{"findingSeverityCounts": {counts}}}}}'


def enhanced(*severities: str) -> str:
    items = ", ".join(
        f'{{"severity": "{s}", "title": "CVE-{i}"}}' for i, s in enumerate(severities)
    )
    return f'{{"imageScanFindings": {{"enhancedFindings": [{items}]}}}}'


@pytest.mark.parametrize(
    ("findings", "fail_on", "scan_type", "exit_code", "failures"),
    [
        (basic("null"), "CRITICAL HIGH", "BASIC", 0, []),
        (basic('{"HIGH": 2, "LOW": 7}'), "CRITICAL HIGH", "BASIC", 1, ["HIGH"]),
        (basic('{"HIGH": 2, "LOW": 7}'), "CRITICAL", "BASIC", 0, []),
        (
            basic('{"CRITICAL": 1, "MEDIUM": 3}'),
            "CRITICAL HIGH MEDIUM",
            "BASIC",
            1,
            ["CRITICAL", "MEDIUM"],
        ),
        # enhanced scanning (Amazon Inspector): status ACTIVE, findings listed one by one
        (enhanced("HIGH", "HIGH", "LOW"), "CRITICAL HIGH", "ENHANCED", 1, ["HIGH"]),
        (enhanced("LOW"), "CRITICAL HIGH", "ENHANCED", 0, []),
        (enhanced(), "CRITICAL HIGH", "ENHANCED", 0, []),
    ],
)
def test_ecr_scan_gate(
    tmp_path: Path,
    findings: str,
    fail_on: str,
    scan_type: str,
    exit_code: int,
    failures: list[str],
) -> None:
    status = "ACTIVE" if scan_type == "ENHANCED" else "COMPLETE"
    res = gate(tmp_path, findings, fail_on, FAKE_SCAN_TYPE=scan_type, FAKE_STATUS=status)
    assert res.returncode == exit_code, res.stderr
    assert f"registry scanning: {scan_type.lower()}" in res.stdout
    report = xml.dom.minidom.parse(str(tmp_path / "reports/ecr-image-scan.xml"))
    cases = report.getElementsByTagName("testcase")
    assert len(cases) == 6
    failed = [c.getAttribute("name").split()[0] for c in cases if c.getElementsByTagName("failure")]
    assert failed == failures


def test_the_scan_gate_wait_is_bounded(tmp_path: Path) -> None:
    # basic scanning would hang on ACTIVE forever (what `aws ecr wait` did); the gate
    # gives up at the deadline with the status it saw
    res = gate(
        tmp_path,
        basic("null"),
        "HIGH",
        SCAN_TYPE="basic",
        FAKE_STATUS="ACTIVE",
        SCAN_TIMEOUT_SECONDS="0",
    )
    assert res.returncode == 1
    assert "did not finish within 0 s (basic scanning, last status: ACTIVE)" in res.stderr
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("status", ["FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE"])
def test_a_failed_scan_fails_the_gate(tmp_path: Path, status: str) -> None:
    res = gate(tmp_path, basic("null"), "HIGH", SCAN_TYPE="enhanced", FAKE_STATUS=status)
    assert res.returncode == 1
    assert f"image scan of shop/web:abc123 ended as {status}" in res.stderr


def test_a_configured_scan_type_does_not_ask_the_registry(tmp_path: Path) -> None:
    res = gate(
        tmp_path,
        enhanced("HIGH"),
        "HIGH",
        SCAN_TYPE="enhanced",
        FAKE_STATUS="ACTIVE",
        FAKE_SCAN_TYPE="",
    )
    assert res.returncode == 1 and "registry scanning: enhanced" in res.stdout
