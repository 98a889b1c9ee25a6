"""GitHub delivery's workflows that work from the audit table (github_actions/operations.py,
issue 29 items 1 and 7): daily-summary.yml's script run as its step runs it, against moto
holding the table audit.tf declares, rows written by audit-row.sh; its role and
environment; rollback.yml's shape (tests/rehearsal/test_rollback_github.py runs it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipecompile.targets.common import script_path
from tests.conftest import ROOT, terraform_blocks
from tests.harness.moto import audit_table, aws_env, moto_server
from tests.iam_eval import github_subject

TOOLS = ROOT / ".venv-tools" / "bin"
GHA = ROOT / "samples/storefront"
WORKFLOWS = GHA / ".github/workflows"
TF = "infrastructure/terraform"


def _workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _run(path: Path, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(path)], env={**env, **extra}, capture_output=True,
                          text=True, check=False)  # fmt: skip


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_the_daily_summary_workflow_posts_the_day_of_the_audit_table(tmp_path: Path) -> None:
    wf = _workflow("daily-summary.yml")
    job = wf["jobs"]["summary"]
    (step,) = [s for s in job["steps"] if s.get("id") == "summary"]
    script = tmp_path / "step.sh"
    script.write_text(step["run"])  # the step's script, as the runner writes it to a file
    table = audit_table(GHA, tf=TF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "eu-central-1")}  # fmt: skip
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-central-1",
                              aws_access_key_id="testing",
                              aws_secret_access_key="testing")  # fmt: skip
        client.create_table(**table)
        for n, (svc, environment, outcome) in enumerate(
            [("web", "production", "succeeded"), ("payments", "staging", "failed")]
        ):
            (tmp_path / f"o{n}").write_text(f"outcome={outcome}\n")
            res = _run(script_path("audit-row.sh"), env, DEPLOYMENTS_TABLE=table["TableName"],
                       SERVICE=svc, ENVIRONMENT=environment, COMMIT="c", RUN=f"r{n}",
                       OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST="sha256:" + "a" * 64,
                       IMAGE_TAG=f"rel-{n}")  # fmt: skip
            assert res.returncode == 0, res.stderr
        output = tmp_path / "github_output"
        res = _run(script, env, **step["env"], GITHUB_OUTPUT=str(output))
        assert res.returncode == 0, res.stderr
    (line,) = output.read_text().splitlines()
    assert line.startswith("payload=")
    payload = json.loads(line.removeprefix("payload="))
    assert set(payload) == {"text"}  # no channel: the webhook's own
    text = payload["text"]
    title, *lines = text.splitlines()
    assert title.startswith("*storefront: 2 deployment(s) since ") and title.endswith("*")
    assert sorted(x.split(" ", 1)[1] for x in lines) == [
        "payments -> staging: failed (rel-1)",
        "web -> production: succeeded (rel-0)",
    ]
    # the notifications job posts that payload, and only it holds the webhook
    assert job["outputs"] == {"payload": "${{ steps.summary.outputs.payload }}"}
    notify = wf["jobs"]["notify"]
    assert notify["environment"] == "notifications" and notify["permissions"] == {}
    assert notify["steps"][0]["with"]["payload"] == "${{ needs.summary.outputs.payload }}"
    assert "secrets." not in json.dumps(job)
    assert wf["on"]["schedule"] == [{"cron": "0 17 * * *"}]


def _policy(name: str) -> list[dict[str, Any]]:
    blocks = terraform_blocks(GHA, TF)
    (body,) = [
        b
        for block in blocks["data"]
        for label, b in block.get("aws_iam_policy_document", {}).items()
        if label == name
    ]
    statements: list[dict[str, Any]] = body["statement"]
    return statements


def test_the_daily_summary_role_only_queries_the_audit_table_from_its_environment() -> None:
    allowed = [s for s in _policy("github_daily_summary") if s.get("effect") == "Allow"]
    assert sorted(a for s in allowed for a in s["actions"]) == ["dynamodb:Query", "kms:Decrypt"]
    (trust,) = _policy("github_daily_summary_assume")
    subjects = [c["values"] for c in trust["condition"] if c["variable"].endswith(":sub")]
    assert subjects == [  # daily-summary.yml's job in its environment, on main only
        [
            github_subject(
                "example/storefront", "daily-summary.yml", "main", "daily-summary", called_at="*"
            )
        ]
    ]
    job = _workflow("daily-summary.yml")["jobs"]["summary"]
    assert job["environment"] == "daily-summary"
    role = job["steps"][0]["with"]["role-to-assume"]
    assert role.endswith(":role/storefront-github-daily-summary")


def test_rollback_runs_the_deploy_path_in_the_target_environment() -> None:
    wf = _workflow("rollback.yml")
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert inputs["service"]["options"] == ["web", "payments"]
    assert inputs["environment"]["options"] == ["development", "staging", "production"]
    assert inputs["reason"]["required"] is True
    assert inputs["digest"]["default"] == "previous"
    job = wf["jobs"]["rollback"]
    assert job["uses"].endswith("/deploy.yml")  # the one deploy path (its environment)
    assert job["with"]["environment"] == "${{ inputs.environment }}"
    assert job["with"]["rollback_reason"] == "${{ inputs.reason }}"
    assert wf["permissions"] == {}
    deploy = _workflow("deploy.yml")["jobs"]["deploy"]
    assert deploy["environment"] == "${{ inputs.environment }}"
    names = [s.get("id") for s in deploy["steps"]]
    # the digest is resolved before the signature check and every step after it
    assert names.index("rollback") < [s.get("name") for s in deploy["steps"]].index(
        "Verify the image signature"
    )


def test_a_rollback_in_a_closed_sync_window_says_so() -> None:
    """deploy.yml hands its own classification out (sync-window.sh's outside-sync-window,
    else the wait's); rollback.yml's message names a closed window instead of a bare
    failure, whichever window step ran."""
    deploy = _workflow("deploy.yml")
    assert deploy["on"]["workflow_call"]["outputs"] == {
        "outcome": {"value": "${{ jobs.deploy.outputs.outcome }}"}
    }
    ids = {s.get("id") for s in deploy["jobs"]["deploy"]["steps"]}
    assert {"window", "wait"} <= ids
    assert deploy["jobs"]["deploy"]["outputs"] == {
        "outcome": "${{ steps.window.outputs.outcome || steps.wait.outputs.outcome }}"
    }
    payload = _workflow("rollback.yml")["jobs"]["notify"]["steps"][0]["with"]["payload"]
    assert "needs.rollback.outputs.outcome == 'outside-sync-window'" in payload
    assert "sync window closed" in payload


def test_a_rollback_tells_the_channel_a_deploy_there_would() -> None:
    """The release tier's webhook for an approval environment, the feature tier's for the
    others (a development rollback is dispatched from a feature branch, which the release
    tier's notifications environment does not admit)."""
    env = _workflow("rollback.yml")["jobs"]["notify"]["environment"]
    assert env == (
        "${{ (inputs.environment == 'staging' || inputs.environment == 'production') "
        "&& 'notifications' || 'notifications-dev' }}"
    )


def test_each_deploy_role_reads_only_its_environments_rollback_history() -> None:
    for env in ("development", "staging", "production"):
        (st,) = [s for s in _policy(f"github_deploy_{env}") if s.get("sid") == "RollbackHistory"]
        assert st["actions"] == ["dynamodb:Query"]
        (cond,) = st["condition"]
        assert (cond["variable"], cond["values"]) == ("dynamodb:LeadingKeys", [f"{env}/*"])
