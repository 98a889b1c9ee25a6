"""graph, explain, init, pins / pipecompile.lock and lint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipecompile.compiler import compile_file
from pipecompile.insight.graph import dot, mermaid
from tests.conftest import ROOT, SAMPLES, TextFile, build_sample

EXE = [sys.executable, "-m", "pipecompile"]


def pc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph(sample: str, fmt: str, snapshot) -> None:  # type: ignore[no-untyped-def]
    res = pc("graph", "--format", fmt, "-f", f"samples/{sample}/pipeline.yaml", cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout == snapshot(extension_class=TextFile)


def test_readme_embeds_the_reference_graph() -> None:
    ir = compile_file(ROOT / "samples/ecommerce/pipeline.yaml")
    readme = (ROOT / "README.md").read_text("utf-8")
    block = re.search(
        r"<!-- graph:start -->\n```mermaid\n(.*?)```\n<!-- graph:end -->", readme, re.S
    )
    assert block, "README lacks the generated graph block"
    assert block.group(1) == mermaid(ir), "regenerate: pipecompile graph (see README)"
    assert dot(ir).startswith("digraph pipeline {")


@pytest.mark.parametrize(
    ("event", "ref", "expected", "absent"),
    [
        (
            "push",
            "release/1.2",
            [
                "environment staging",
                "gate: manual approval",
                "CodePipeline ecommerce-product-service-staging",
            ],
            ["environment production"],
        ),
        (
            "push",
            "main",
            ["environment production", "canary (ALB traffic) 5% ⏸ 10m → 20%", "5xx rate > 0.05"],
            ["environment staging"],
        ),
        (
            "push",
            "feature/a/b",
            ["no environment deploys from this branch"],
            ["environment development"],
        ),
        (
            "pull_request",
            "main",
            [
                "ci-order-service.yml validates order-service when files "
                "under services/order/ change",
                "pull requests never deploy",
            ],
            [],
        ),
        (
            "push",
            "hotfix/1.2.1",
            [
                "hotfix: built in the release tier and verified in staging",
                "as long as the merge leaves the files each image is built from as the hotfix",
                "which must pass staging first",
            ],
            [],
        ),
        (
            "schedule",
            "",
            ["OWASP ZAP against product-service at https://shop.example.com, order-service"],
            [],
        ),
    ],
)
def test_explain_events(event: str, ref: str, expected: list[str], absent: list[str]) -> None:
    args = ["explain", "-f", "samples/ecommerce/pipeline.yaml", "--event", event]
    res = pc(*args, *(["--ref", ref] if ref else []), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    for text in expected:
        assert text in res.stdout
    for text in absent:
        assert text not in res.stdout


def test_explain_checklist_is_derived_from_the_pipeline() -> None:
    full = pc("explain", "-f", "samples/ecommerce/pipeline.yaml", cwd=ROOT).stdout
    minimal = pc("explain", "-f", "samples/minimal/pipeline.yaml", cwd=ROOT).stdout
    github = pc("explain", "-f", "samples/storefront/pipeline.yaml", cwd=ROOT).stdout
    # delivered by CodePipeline: scanners' secrets in GitHub, deploy secrets in AWS
    assert (
        "GitHub environment 'ci' (feature tier: the CI job): any branch; SONAR_TOKEN, "
        "SONAR_HOST_URL"
    ) in full
    assert "'ci-release'" not in full  # CodeBuild runs the release tier's CI
    assert "ecommerce/production/gitops-credential" in full and "GITOPS_DEPLOY_KEY" not in full
    assert "CodeStar connection 'ecommerce-github'" in full and "AWS Chatbot" in full
    assert "SONAR_TOKEN" not in minimal and "shop/production/gitops-credential" in minimal
    # delivered by GitHub Actions: every secret in the environment of the jobs that read it
    assert (
        "GitHub environment 'production': required reviewers; deployment branches main; "
        "secrets GITOPS_DEPLOY_KEY, ARGOCD_SERVER, ARGOCD_AUTH_TOKEN, SLACK_WEBHOOK_URL; "
        "only its jobs of deploy.yml assume IAM role storefront-deploy-production"
    ) in github
    assert (
        "GitHub environment 'notifications' (release tier: Slack messages of release runs, "
        "approval requests and the scheduled reviews): deployment branches release/*, "
        "hotfix/*, main only; SLACK_WEBHOOK_URL"
    ) in github
    assert "GitHub environment 'notifications-dev' (feature tier" in github
    assert "GitHub environment 'ci-release' (release tier" in github


def test_explain_push_needs_a_ref() -> None:
    res = pc("explain", "-f", "samples/ecommerce/pipeline.yaml", "--event", "push", cwd=ROOT)
    assert res.returncode == 2 and "needs --ref" in res.stderr


def test_init_writes_a_starter_that_compiles_and_never_overwrites(tmp_path: Path) -> None:
    res = pc("init", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "pipeline.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert pc("build", cwd=tmp_path).returncode == 0
    assert pc("check", cwd=tmp_path).returncode == 0
    again = pc("init", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (tmp_path / "pipeline.yaml").read_text() == text


NEW_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_lock_overrides_flow_into_outputs_and_check_keeps_them(tmp_path: Path) -> None:
    root = build_sample("ecommerce", tmp_path)
    lock = {
        "actions": {"actions/checkout": {"version": "v7.9.9", "sha": NEW_SHA}},
        "terraform_aws_provider": ">= 6.0.0, < 7.0.0",
    }
    (root / "pipecompile.lock").write_text(json.dumps(lock))
    res = pc("check", cwd=root)  # outputs do not carry the new pins yet
    assert res.returncode == 1
    # the pinned actions of CI are ci.yml's (every ci-<svc>.yml calls it)
    assert ".github/workflows/ci.yml: pins changed (pipecompile.lock)" in res.stdout
    assert pc("build", cwd=root).returncode == 0
    wf = (root / ".github/workflows/ci.yml").read_text()
    assert f"uses: actions/checkout@{NEW_SHA} # v7.9.9" in wf
    versions = (root / "infrastructure/terraform/cicd/versions.tf").read_text()
    assert '">= 6.0.0, < 7.0.0"' in versions
    assert pc("check", cwd=root).returncode == 0  # and check never reverts the update
    pins = pc("pins", cwd=root).stdout
    assert re.search(rf"actions/checkout\s+v7.9.9\s+{NEW_SHA}\s+pipecompile.lock\s+2 files", pins)
    assert re.search(r"terraform_aws_provider\s+>= 6.0.0, < 7.0.0\s+pipecompile.lock", pins)
    assert re.search(
        r"zap_image\s+ghcr.io/zaproxy/zaproxy:2.17.0@sha256:[0-9a-f]{64}\s+default\s+2 files", pins
    )


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        (
            '{"actions": {"actions/checkout": {"version": "v1", "sha": "abc"}}}',
            "pipecompile.lock:1:52: PC108 actions.actions/checkout.sha: must be a full "
            "40-character",
        ),
        (
            '{"actions": {"actions/checkuot": {}}}',
            "does not use the action 'actions/checkuot' (did you mean 'actions/checkout'?)",
        ),
        ('{"zap_imag": "x"}', "unknown key 'zap_imag' (did you mean 'zap_image'?)"),
        (
            '{"zap_image": "ghcr.io/zaproxy/zaproxy:stable"}',
            "zap_image: 'ghcr.io/zaproxy/zaproxy:stable' must name the image by digest",
        ),
        ('{"actions": ', "pipecompile.lock:1:13: PC108 invalid JSON"),
    ],
)
def test_invalid_lock_is_a_located_error(tmp_path: Path, lock: str, message: str) -> None:
    root = build_sample("minimal", tmp_path)
    (root / "pipecompile.lock").write_text(lock)
    res = pc("build", cwd=root)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_lint_maps_findings_to_pipeline_lines(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_bytes((ROOT / "tests/lint/pipeline.yaml").read_bytes())
    res = pc("lint", "--zizmor-persona", "auditor", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    out = res.stdout
    # actionlint (shellcheck) inside a user's block script: line 26 is "python -m pytest ..."
    assert re.search(
        r"^pipeline.yaml:26:\d+: PC401 ci.steps\[1\].run: actionlint: shellcheck "
        r"reported issue in this script: SC2086",
        out,
        re.M,
    ), out
    # zizmor's auditor persona finds nothing: the SonarQube secrets are read in the CI
    # job's own GitHub environment and every permission says why it is there
    assert "zizmor" not in out, out
    # a rule broken once in pipeline.yaml is one line, with every place it shows up in
    lines = out.splitlines()
    assert len(lines) == len(set(line.split(" (in ")[0] for line in lines))
    clean = pc("lint", "-f", str(ROOT / "samples/ecommerce/pipeline.yaml"), cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout == (
        "lint: 6 workflows checked with actionlint and zizmor (regular persona): no findings\n"
    )


def test_lint_never_passes_having_checked_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.commands import cli
    from pipecompile.insight import lint

    monkeypatch.setattr(lint, "_tool", lambda name: None)  # neither checker installed
    shutil.copy(ROOT / "samples/minimal/pipeline.yaml", tmp_path / "pipeline.yaml")
    assert cli.main(["lint", "-f", str(tmp_path / "pipeline.yaml")]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (
        "error: PC403 actionlint and zizmor are not installed, so lint would check nothing; "
        "install them with: pip install 'pipecompile[lint]'\n"
    )


def test_machine_output_for_check_validate_and_lint(tmp_path: Path) -> None:
    root = build_sample("minimal", tmp_path)
    clean = pc("check", "--format", "json", cwd=root)
    assert clean.returncode == 0 and json.loads(clean.stdout) == {
        "version": 1,
        "command": "check",
        "ok": True,
        "diagnostics": [],
        "changes": [],
    }
    (root / ".github/workflows/ci-web.yml").write_text("edited\n")
    drift = pc("check", "--format", "json", cwd=root)
    doc = json.loads(drift.stdout)
    assert drift.returncode == 1 and doc["ok"] is False
    assert doc["changes"] == [
        {
            "file": ".github/workflows/ci-web.yml",
            "kind": "conflict",
            "reason": "exists and was not generated by pipecompile (use --force to overwrite)",
        }
    ]
    assert doc["diagnostics"] == [  # the drift is a finding with its code, as in SARIF
        {
            "file": ".github/workflows/ci-web.yml",
            "line": 1,
            "column": 1,
            "path": "",
            "message": "conflict: exists and was not generated by pipecompile (use --force to "
            "overwrite)",
            "severity": "error",
            "code": "PC501",
        }
    ]
    text = pc("check", cwd=root)
    assert text.stdout.startswith("PC501 conflict: .github/workflows/ci-web.yml: exists and")
    (root / "pipeline.yaml").write_text("version: 1\nproject: Shop\n")
    bad = pc("validate", "--format", "json", cwd=root)
    doc = json.loads(bad.stdout)  # errors go to stdout as the same document
    assert bad.returncode == 2 and bad.stderr == "" and doc["ok"] is False
    assert {d["path"] for d in doc["diagnostics"]} == {"aws", "services", "source", "project"}
    first = next(d for d in doc["diagnostics"] if d["path"] == "project")
    assert (first["file"], first["line"], first["column"], first["severity"]) == (
        "pipeline.yaml",
        2,
        10,
        "error",
    )


def test_lint_writes_sarif_for_code_scanning(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_bytes((ROOT / "tests/lint/pipeline.yaml").read_bytes())
    res = pc("lint", "--format", "sarif", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    log = json.loads(res.stdout)
    assert log["version"] == "2.1.0"
    # the pipeline's own warnings come too, as text lint prints them (PC208, PC310)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["PC401", "PC208", "PC310"]
    (result,) = [r for r in log["runs"][0]["results"] if r["ruleId"] == "PC401"]
    # the code is the rule (tracked and suppressed by it); the checker's own in properties
    assert result["ruleId"] == "PC401"
    assert result["properties"] == {"tool": "actionlint", "toolRule": "SC2086"}
    region = result["locations"][0]["physicalLocation"]
    assert region["artifactLocation"]["uri"] == "pipeline.yaml"
    assert region["region"]["startLine"] == 26
    related = result["relatedLocations"][0]["physicalLocation"]
    # the service's step runs in ci.yml (ci-api.yml calls it)
    assert related["artifactLocation"]["uri"] == ".github/workflows/ci.yml"
    rules = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert rules == {"PC208", "PC310", "PC401"}
    as_json = json.loads(pc("lint", "--format", "json", cwd=tmp_path).stdout)
    assert [d.get("tool") for d in as_json["diagnostics"]] == ["actionlint", None, None]
