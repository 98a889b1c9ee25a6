"""deploy.yml's contract with its callers: what every caller passes is required, and a
secret the deploy reads is checked at the job's start (issue 25's trace: a caller that
forgot GITOPS_DEPLOY_KEY or the service passed actionlint and failed minutes later)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / "samples/storefront/.github/workflows"
SCRIPT = ROOT / "src/pipecompile/targets/scripts/require-secrets.sh"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def _require(**env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "ENVIRONMENT": "staging"}
    return subprocess.run(
        ["bash", str(SCRIPT)], env={**base, **env}, capture_output=True, text=True, check=False
    )


def test_require_secrets_names_each_empty_one() -> None:
    names = "ARGOCD_SERVER ARGOCD_AUTH_TOKEN GITOPS_DEPLOY_KEY"
    res = _require(REQUIRED_SECRETS=names, SET_ARGOCD_SERVER="true", SET_ARGOCD_AUTH_TOKEN="false")
    assert res.returncode == 1
    assert (
        "secrets missing in environment 'staging': ARGOCD_AUTH_TOKEN GITOPS_DEPLOY_KEY"
        in res.stderr
    )
    every = {f"SET_{n}": "true" for n in names.split()}
    ok = _require(REQUIRED_SECRETS=names, **every)
    assert ok.returncode == 0, ok.stderr


def test_the_deploy_checks_the_plans_secrets_first_without_reading_them() -> None:
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    first = deploy["jobs"]["deploy"]["steps"][0]
    names = first["env"]["REQUIRED_SECRETS"].split()
    assert names == ["ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN", "GITOPS_DEPLOY_KEY"]
    # only whether each is set: the step's environment holds no secret's value
    sets = {k: v for k, v in first["env"].items() if k.startswith("SET_")}
    assert sets == {f"SET_{n}": f"${{{{ secrets.{n} != '' }}}}" for n in names}
    declared = deploy["on"]["workflow_call"]["secrets"]
    assert set(names) <= set(declared)


def test_every_input_each_caller_passes_is_required() -> None:
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    inputs = deploy["on"]["workflow_call"]["inputs"]
    callers = [
        job
        for path in WORKFLOWS.glob("deliver-*.yml")
        for job in yaml.safe_load(path.read_text())["jobs"].values()
        if job.get("uses", "").endswith("/deploy.yml")
    ]
    assert callers
    always = set.intersection(*(set(job["with"]) for job in callers))
    assert {"service", "ecr_repository", "wait_seconds"} <= always
    for name in always:
        assert inputs[name].get("required") is True, name


def test_actionlint_refuses_a_caller_that_omits_the_service(tmp_path: Path) -> None:
    if not ACTIONLINT.exists():
        assert shutil.which("actionlint"), "actionlint comes with the test extras"
    lint = str(ACTIONLINT if ACTIONLINT.exists() else shutil.which("actionlint"))
    wf = tmp_path / ".github/workflows"
    shutil.copytree(WORKFLOWS, wf)
    text = (wf / "deliver-web.yml").read_text()
    assert "      service: web\n" in text
    (wf / "deliver-web.yml").write_text(text.replace("      service: web\n", ""))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # actionlint's root
    res = subprocess.run(
        [lint, "-shellcheck=", "-pyflakes=", ".github/workflows/deliver-web.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1
    # the generated form as is: actionlint (kjanat >= 1.9) resolves GitHub's $/ calls
    assert 'input "service" is required by "$/.github/workflows/deploy.yml"' in res.stdout
