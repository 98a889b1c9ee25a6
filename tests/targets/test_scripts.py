"""The shell scripts the targets share, run for real against a stub AWS CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.dom.minidom
from pathlib import Path

import pytest

from pipecompile.targets.common import (
    packaged_scripts,
    script_body,
    script_path,
    script_text,
)

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
        ["bash", str(script_path("ecr-scan-gate.sh"))],
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


@pytest.mark.parametrize(
    "status",
    [
        "FAILED",
        "UNSUPPORTED_IMAGE",
        "FINDINGS_UNAVAILABLE",
        "SCAN_ELIGIBILITY_EXPIRED",
        "LIMIT_EXCEEDED",  # ImageScanStatus values (ECR API reference) it waited out before
        "IMAGE_ARCHIVED",
    ],
)
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


# -- every packaged script: a file with a header, shellcheck-clean ---------------------------

SCRIPTS = packaged_scripts()
# the local development loop's scripts (targets/local): packaged files too, held to the
# same header; the generated copies put pipecompile's header and the values first
LOCAL_DIR = script_path("build-once.sh").parents[1] / "local"
LOCAL = sorted(p.name for p in LOCAL_DIR.glob("*.sh"))
EVERY = SCRIPTS + LOCAL
# variables a script may read without declaring them: set by bash or by the runner
AMBIENT = {"PWD", "SECONDS", "BASH_SOURCE", "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"}


def text_of(name: str) -> str:
    """A packaged script's whole text (targets/scripts: as the targets render it)."""
    return (LOCAL_DIR / name).read_text() if name in LOCAL else script_text(name)


def body_of(name: str) -> str:
    """Its commands, from the first line that is not a comment."""
    if name not in LOCAL:
        return script_body(name)
    lines = text_of(name).splitlines(keepends=True)
    return "".join(lines[next(i for i, line in enumerate(lines) if not line.startswith("#")) :])


def header(name: str) -> str:
    return text_of(name).removesuffix(body_of(name))


def path_of(name: str) -> Path:
    return LOCAL_DIR / name if name in LOCAL else script_path(name)


def test_the_package_ships_the_scripts() -> None:
    assert len(SCRIPTS) >= 15
    assert {"build-once.sh", "gitops-record.sh", "route.sh", "wait-healthy.sh"} <= set(SCRIPTS)
    assert LOCAL == ["intercept.sh", "kubeconfig.sh"]
    assert not set(SCRIPTS) & set(LOCAL)  # one name, one file


@pytest.mark.parametrize("name", EVERY)
def test_each_script_has_a_header_with_inputs_outputs_and_exit_codes(name: str) -> None:
    text = header(name)
    assert text.startswith(f"#!/usr/bin/env bash\n# {name}: ")
    for section in ("# Inputs (environment):\n", "# Outputs:\n", "# Exit codes:\n"):
        assert section in text, (name, section)
    assert body_of(name).startswith("set -")


@pytest.mark.parametrize("name", EVERY)
def test_each_header_opens_with_its_interface(name: str) -> None:
    """Inputs, Outputs and Exit codes come right after the script's summary (within its
    first 20 lines), before any longer notes: a reviewer reads the interface at the top."""
    lines = header(name).splitlines()
    assert lines.index("# Inputs (environment):") < 20, name
    interface = lines[lines.index("# Inputs (environment):") :]
    end = interface.index("#") if "#" in interface else len(interface)
    sections = [line for line in interface[:end] if not line.startswith("#  ")]
    assert sections[:3] == ["# Inputs (environment):", "# Outputs:", "# Exit codes:"], name


def undeclared(name: str) -> list[str]:
    """Upper-case variables the script reads that it neither sets nor lists in its header."""
    body = body_of(name)
    assigned = set(re.findall(r"(?:^|[\s;(])(?:export )?([A-Z][A-Z0-9_]*)=", body, re.M))
    read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", body)) - AMBIENT - assigned
    declared = set(re.findall(r"\b([A-Z][A-Z0-9_]*)\b", header(name)))
    return sorted(read - declared)


@pytest.mark.parametrize("name", EVERY)
def test_each_script_declares_every_variable_it_reads(name: str) -> None:
    assert undeclared(name) == [], f"{name}: not listed under Inputs"


def test_an_undeclared_input_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    text = script_text("sonar-gate.sh") + 'echo "$SOMETHING_NEW"\n'
    monkeypatch.setattr(f"{__name__}.script_text", lambda name: text)
    monkeypatch.setattr(f"{__name__}.script_body", lambda name: text.split("\nset ", 1)[1])
    assert undeclared("sonar-gate.sh") == ["SOMETHING_NEW"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_every_script_is_shellcheck_clean() -> None:
    paths = [str(path_of(name)) for name in EVERY]
    res = subprocess.run(
        # no --shell: each file names its shell in its shebang (SC2148 without one)
        ["shellcheck", "--severity=style", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize(
    "name", [n for n in SCRIPTS if script_text(n) != script_path(n).read_text()]
)
def test_a_script_with_a_file_inlined_is_shellcheck_clean(name: str) -> None:
    """What the targets render from a script that sources another (tree-key.sh): the
    sourced file's body in its place, checked as the text the buildspec or step holds."""
    assert not [line for line in script_body(name).splitlines() if line.startswith(". ")]
    res = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", "-"],
        input=script_text(name),
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout


# -- route.sh: which environments a push deploys to --------------------------------------------


def route(tmp_path: Path, branch: str) -> dict[str, str]:
    out = tmp_path / "out"
    out.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "BRANCH": branch,
        "ENVIRONMENTS": "development pre-prod production",
        "RELEASE_ENVIRONMENTS": "production",
        "INCLUDE_DEVELOPMENT": "^(feature/[^/]*|develop)$",
        "EXCLUDE_DEVELOPMENT": "^(feature/skip-[^/]*)$",
        "INCLUDE_PRE_PROD": "^(release/[^/]*)$",
        "EXCLUDE_PRE_PROD": "",
        "INCLUDE_PRODUCTION": "^(main)$",
        "EXCLUDE_PRODUCTION": "",
        "GITHUB_OUTPUT": str(out),
    }
    res = subprocess.run(
        ["bash", str(script_path("route.sh"))], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("feature/x", {"development": "true", "any": "true", "release": "false"}),
        ("feature/skip-me", {"any": "false", "release": "false"}),
        ("feature/a/b", {"any": "false"}),  # * stays within one segment
        ("release/1.2", {"pre-prod": "true", "any": "true", "release": "false"}),
        ("main", {"production": "true", "any": "true", "release": "true"}),
        ("other", {"development": "false", "pre-prod": "false", "any": "false"}),
    ],
)
def test_the_router_matches_each_environment(
    tmp_path: Path, branch: str, expected: dict[str, str]
) -> None:
    outputs = route(tmp_path, branch)
    assert set(outputs) == {"development", "pre-prod", "production", "any", "release"}
    for key, value in expected.items():
        assert outputs[key] == value, (branch, key)
    everything = {k: v for k, v in outputs.items() if k not in ("any", "release")}
    assert (outputs["any"] == "true") == ("true" in everything.values())


def test_a_changed_script_changes_the_code_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # check's fast path trusts the outputs while pipecompile's code is unchanged: the
    # scripts are code (a fix to one must make check regenerate what uses it)
    from pipecompile.output import header

    fake = tmp_path / "pipecompile"
    (fake / "output").mkdir(parents=True)
    (fake / "targets/scripts").mkdir(parents=True)
    script = fake / "targets/scripts/x.sh"
    script.write_text("set -eu\n")
    monkeypatch.setattr(header, "__file__", str(fake / "output/header.py"))
    before = header.code_fingerprint()
    script.write_text("set -euo pipefail\n")
    assert header.code_fingerprint() != before


def test_the_scan_gate_summarises_the_findings_for_the_approver(tmp_path: Path) -> None:
    # on GitHub Actions the job summary is on the run's page, where the deploy's
    # environment reviewer approves (GITHUB_STEP_SUMMARY: a file the runner shows)
    summary = tmp_path / "summary.md"
    findings = (
        '{"imageScanFindings": {"findingSeverityCounts": {"HIGH": 1, "LOW": 1}, "findings": ['
        '{"name": "CVE-2026-1", "severity": "HIGH", "uri": "https://nvd.example/CVE-2026-1"},'
        '{"name": "CVE-2026-2", "severity": "LOW"}]}}'
    )
    res = gate(tmp_path, findings, "CRITICAL HIGH", GITHUB_STEP_SUMMARY=str(summary))
    assert res.returncode == 1
    text = summary.read_text()
    assert "### Image scan of `shop/web:abc123`" in text
    assert "| HIGH | 1 | yes |" in text and "| LOW | 1 |  |" in text
    assert "- HIGH CVE-2026-1 (https://nvd.example/CVE-2026-1)" in text
    assert "CVE-2026-2" not in text  # below the threshold: counted, not listed
    res = gate(
        tmp_path,
        enhanced("LOW"),
        "CRITICAL HIGH",
        FAKE_SCAN_TYPE="ENHANCED",
        FAKE_STATUS="ACTIVE",
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert res.returncode == 0, res.stderr
    assert "Nothing at or above the threshold (CRITICAL HIGH)." in summary.read_text()
