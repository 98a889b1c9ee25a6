"""``explain --rollback``: the printed commands run, with the real AWS CLI, against moto
holding the audit table as the generated Terraform declares it (issue 29, item 7)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.insight.rollback import rollback_commands
from pipecompile.targets.common import script_path
from tests.conftest import ROOT
from tests.harness.moto import audit_table, aws_env, moto_server

TOOLS = ROOT / ".venv-tools" / "bin"
REF = ROOT / "samples/ecommerce"
OLD, NEW = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def step(lines: list[str], title: str) -> str:
    """The shell lines of the step whose title starts with ``title``."""
    start = next(i for i, line in enumerate(lines) if title in line and line[:1].isdigit())
    body = []
    for line in lines[start + 1 :]:
        if not line:
            break
        body.append(line.removeprefix("   "))
    return "\n".join(body)


def run(script: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**env, **extra},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_the_printed_rollback_commands_work_against_the_generated_table(tmp_path: Path) -> None:
    ir = compile_bytes("pipeline.yaml", (REF / "pipeline.yaml").read_bytes())
    table = audit_table(REF)
    assert table["TableName"] == ir.deployments_table
    lines = rollback_commands(ir, "order-service", "production")
    with moto_server() as endpoint:
        env = {
            "PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            **aws_env(endpoint, ir.aws.region),
        }
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name=ir.aws.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ddb.create_table(**table)
        # two deploys as audit-row.sh writes them (the real script), and a failed one
        for n, (digest, outcome) in enumerate(
            [(OLD, "succeeded"), (NEW, "succeeded"), ("sha256:" + "3" * 64, "failed")]
        ):
            outcome_file = tmp_path / f"outcome-{n}"
            outcome_file.write_text(f"outcome={outcome}\n")
            res = run(
                f'bash "{script_path("audit-row.sh")}"',
                env,
                DEPLOYMENTS_TABLE=table["TableName"],
                SERVICE="order-service",
                ENVIRONMENT="production",
                COMMIT=f"c{n}",
                RUN=f"https://example.invalid/runs/{n}",
                OUTCOME_FILE=str(outcome_file),
                IMAGE_DIGEST=digest,
            )
            assert res.returncode == 0, res.stderr
        found = run(step(lines, "Find the digest"), env)
        assert found.returncode == 0, found.stderr
        assert OLD in found.stdout and NEW in found.stdout  # the succeeded ones
        assert "3" * 64 not in found.stdout  # not the failed one
        record = (
            step(lines, "Record it")
            .replace(
                "DIGEST='<the digest above>' REASON='<why>'",
                f"DIGEST='{OLD}' REASON='checkout errors after 1.4'",
            )
            .replace("TAG='<its tag>' COMMIT='<its commit>'", "TAG='none' COMMIT='c0'")
        )
        assert record != step(lines, "Record it")
        res = run(record, env)
        assert res.returncode == 0, res.stderr
        items = ddb.scan(TableName=table["TableName"])["Items"]
        (row,) = [i for i in items if i["outcome"]["S"] == "rolled-back"]
        assert row["stream"] == {"S": "production/order-service"}
        assert row["image_digest"] == {"S": OLD}
        assert row["reason"] == {"S": "checkout errors after 1.4"}
        assert row["deployment"]["S"].startswith(row["deployed_at"]["S"] + "/manual-")
        # as audit-row.sh records a rollback: the next "previous" walks on from it
        assert (row["trigger"], row["commit"]) == ({"S": "manual"}, {"S": "c0"})


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_the_audit_row_links_the_commit_and_names_its_issues(tmp_path: Path) -> None:
    repo = tmp_path / "app"
    repo.mkdir()
    ident = ["-c", "user.name=dev", "-c", "user.email=dev@example.com"]
    (repo / "f").write_text("x\n")
    message = "SHOP-12: retry payments (fixes #34, see SHOP-12 and ops-7)\n\nA2B-9 too"
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", message]):
        subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {
            "PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            **aws_env(endpoint, "us-east-1"),
        }
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ddb.create_table(**table)
        rolled = tmp_path / "outcome-rolled"
        rolled.write_text(
            "outcome=rolled-back\nreason=automatic: the rollout was aborted (analysis failed)\n"
        )
        base = {
            "DEPLOYMENTS_TABLE": table["TableName"],
            "SERVICE": "order-service",
            "ENVIRONMENT": "production",
            "COMMIT": sha,
            "IMAGE_DIGEST": OLD,
            "REPOSITORY_URL": "https://github.com/acme/shop",
        }
        for n, extra in enumerate(
            [
                {"OUTCOME_FILE": str(rolled)},  # the message read from the checkout
                {"OUTCOME_FILE": str(tmp_path / "none"), "COMMIT_MESSAGE": "no keys here"},
            ]
        ):
            script = f'cd "{repo}" && bash "{script_path("audit-row.sh")}"'
            res = run(script, env, **base, RUN=f"run-{n}", **extra)
            assert res.returncode == 0, res.stderr
        rows = {i["run"]["S"]: i for i in ddb.scan(TableName=table["TableName"])["Items"]}
    first, second = rows["run-0"], rows["run-1"]
    assert first["commit_url"] == {"S": f"https://github.com/acme/shop/commit/{sha}"}
    assert [i["S"] for i in first["issues"]["L"]] == ["SHOP-12", "#34", "A2B-9"]
    assert first["outcome"] == {"S": "rolled-back"}
    assert first["reason"] == {"S": "automatic: the rollout was aborted (analysis failed)"}
    assert second["issues"] == {"L": []} and "reason" not in second


def test_by_hand_the_rollback_uses_the_environment_s_repository_and_wait() -> None:
    """Each environment of samples/storefront has a GitOps repository of its own (issue 28)
    and production's health wait is 35 minutes: the by-hand commit goes to that
    repository and the wait is the deploy's own; production's sync window is named, with
    the manual sync it admits."""
    sample = ROOT / "samples/storefront"
    ir = compile_bytes("pipeline.yaml", (sample / "pipeline.yaml").read_bytes())
    lines = rollback_commands(ir, "web", "production")
    durable = step(lines, "Make the rollback durable")
    assert durable.splitlines()[0] == (
        "git clone git@github.com:example/storefront-gitops-production.git gitops && cd gitops"
    )
    dep = next(d for d in ir.services[0].deployments if d.environment == "production")
    assert f"argocd app wait web-production --health --timeout {dep.wait_minutes * 60}" in (durable)
    assert dep.wait_minutes * 60 != 900
    text = "\n".join(lines)
    assert "sync window closed" in text and "argocd app sync web-production" in text
    # development: its own repository, and no window
    dev = "\n".join(rollback_commands(ir, "web", "development"))
    assert "git clone git@github.com:example/storefront-gitops.git gitops" in dev
    assert "Sync window" not in dev


@pytest.mark.parametrize(
    ("sample", "service"), [("storefront", "web"), ("ecommerce", "product-service")]
)
def test_the_generated_rollback_says_only_the_image_file_changes(sample: str, service: str) -> None:
    """GitHub Actions delivery (storefront) and CodePipeline delivery (ecommerce) alike: a
    rollback restores a digest, never the chart or values of the branch it is started
    from (DeliveryPlan.rollback; the rehearsals test_rollback_github.py and
    test_rollback_codepipeline.py show it in GitOps)."""
    path = ROOT / "samples" / sample / "pipeline.yaml"
    ir = compile_bytes("pipeline.yaml", path.read_bytes())
    lines = rollback_commands(ir, service, "development")
    generated = "\n".join(lines[: lines.index("Or by hand, step by step:")])
    assert "no checkout: only the image file changes in GitOps" in generated
