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
  *"wait image-scan-complete"*) exit 0 ;;
  *describe-image-scan-findings*) printf '%s\\n' "$FAKE_COUNTS" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


@pytest.mark.parametrize(
    ("counts", "fail_on", "exit_code", "failures"),
    [
        ("null", "CRITICAL HIGH", 0, []),
        ('{"HIGH": 2, "LOW": 7}', "CRITICAL HIGH", 1, ["HIGH"]),
        ('{"HIGH": 2, "LOW": 7}', "CRITICAL", 0, []),
        ('{"CRITICAL": 1, "MEDIUM": 3}', "CRITICAL HIGH MEDIUM", 1, ["CRITICAL", "MEDIUM"]),
    ],
)
def test_ecr_scan_gate(
    tmp_path: Path, counts: str, fail_on: str, exit_code: int, failures: list[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(STUB)
    (bin_dir / "aws").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_COUNTS": counts,
        "ECR_REPOSITORY": "shop/web",
        "IMAGE_TAG": "abc123",
        "FAIL_SEVERITIES": fail_on,
    }
    res = subprocess.run(
        ["bash", "-c", ECR_SCAN_GATE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == exit_code, res.stderr
    report = xml.dom.minidom.parse(str(tmp_path / "reports/ecr-image-scan.xml"))
    cases = report.getElementsByTagName("testcase")
    assert len(cases) == 6
    failed = [c.getAttribute("name").split()[0] for c in cases if c.getElementsByTagName("failure")]
    assert failed == failures
