"""Issue 28 trace, item 3: a DAST pass is recorded only for the digest the scanned
environment runs.  The mark (dast-mark.sh, CodePipeline's dast.yml and GitHub's zap.yml)
was given a digest and recorded it as passed, whether or not staging ever ran it: a DAST
action or job started with another digest (a superseded run's, a failed deploy's) put a
marker on an image the scan never saw.  Now it reads the newest audit row of
``<environment>/<service>`` (written by audit-row.sh, which only that environment's
deployer may write) and refuses unless it is a succeeded deploy of that digest.

Run as files with the real AWS CLI against moto, the tables as the generated Terraform
declares them; the IAM evaluated from the generated Terraform (tests/iam_eval.py)."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets.common import script_path
from tests.conftest import ROOT
from tests.iam_eval import Account

ECOMMERCE = ROOT / "samples/ecommerce"
STOREFRONT = ROOT / "samples/storefront"
TOOLS = ROOT / ".venv-tools" / "bin"
RAN, OTHER = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@cache
def ir_of(sample: Path) -> IR:
    p = sample / "pipeline.yaml"
    return compile_bytes(str(p), p.read_bytes())


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
@pytest.mark.parametrize("sample", [ECOMMERCE, STOREFRONT], ids=["ecommerce", "storefront"])
def test_no_pass_is_recorded_for_a_digest_the_environment_does_not_run(
    tmp_path: Path, sample: Path
) -> None:
    import boto3

    from tests.harness.moto import audit_table, aws_env, moto_server

    ir = ir_of(sample)
    dast = ir.security.dast
    assert dast is not None and ir.deployments_table
    svc = ir.services[0]
    tf = ir.output("terraform")
    deployments, promotions = (audit_table(sample, t, tf) for t in ("deployments", "promotions"))
    # the row's key begins with its time in whole seconds: a clock that moves one second
    # each time a script asks (no sleep), the real date(1) for anything else
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "date").write_text(
        "#!/bin/bash\n"
        'if [ "$*" = "-u +%Y-%m-%dT%H:%M:%SZ" ]; then\n'
        f"  clock={tmp_path}/clock\n"
        '  n=$(( $(cat "$clock" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$clock"\n'
        '  printf "2030-01-01T00:%02d:%02dZ\\n" $((n / 60)) $((n % 60)); exit 0\n'
        "fi\n"
        'exec /bin/date "$@"\n'
    )
    (shim / "date").chmod(0o755)
    with moto_server() as endpoint:
        env = {"PATH": f"{shim}:{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, ir.aws.region)}  # fmt: skip
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=ir.aws.region, **keys)
        client.create_table(**deployments)
        client.create_table(**promotions)
        values = {
            "DAST_ENVIRONMENT": dast.environment,
            "PROMOTIONS_TABLE": promotions["TableName"],
            "DEPLOYMENTS_TABLE": deployments["TableName"],
            "SERVICE": svc.name,
            "ECR_REPOSITORY": svc.release_image,
            "IMAGE_TAG": "rel-abc",
        }

        def run(script: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", str(script_path(script))], cwd=tmp_path,
                                  env={**env, **values, **extra}, capture_output=True,
                                  text=True, check=False)  # fmt: skip

        def deployed(digest: str, status: str, run_id: str) -> None:
            """A deploy of the environment writes its row as the deploy does."""
            row = run("audit-row.sh", ENVIRONMENT=dast.environment, COMMIT="0" * 40,
                      RUN=run_id, DEPLOY_STATUS=status, IMAGE_DIGEST=digest,
                      OUTCOME_FILE=str(tmp_path / "none"), COMMIT_MESSAGE="x")  # fmt: skip
            assert row.returncode == 0, row.stderr

        def mark(digest: str) -> subprocess.CompletedProcess[str]:
            return run("dast-mark.sh", IMAGE_DIGEST=digest)

        # staging ran nothing yet: no pass for any digest
        refused = mark(OTHER)
        assert refused.returncode == 1 and "refusing to mark" in refused.stderr
        deployed(RAN, "succeeded", "run-1")
        # the attack: a DAST started with a digest staging never ran
        refused = mark(OTHER)
        assert refused.returncode == 1, refused.stdout
        assert f"the newest deploy of {dast.environment}/{svc.name}" in refused.stderr
        assert f"is {RAN} (succeeded)" in refused.stderr
        # a failed deploy of a digest is no run of it
        deployed(OTHER, "failed", "run-2")
        assert mark(OTHER).returncode == 1
        assert mark(RAN).returncode == 1  # and what ran before is not known to run now
        items = client.scan(TableName=promotions["TableName"])["Items"]
        assert items == []
        deployed(RAN, "succeeded", "run-3")
        ok = mark(RAN)
        assert ok.returncode == 0, ok.stderr
        items = client.scan(TableName=promotions["TableName"])["Items"]
        assert [i["digest"]["S"] for i in items] == [RAN]
        # a blue-green paused at its preview for a person to promote: the new digest runs
        # there (DAST scanned the preview), so its pass is recorded
        deployed(OTHER, "waiting-for-promotion", "run-4")
        preview = mark(OTHER)
        assert preview.returncode == 0, preview.stderr
        assert (
            "(the newest deploy of" in preview.stdout and "waiting-for-promotion" in preview.stdout
        )
        items = client.scan(TableName=promotions["TableName"])["Items"]
        assert sorted(i["digest"]["S"] for i in items) == [RAN, OTHER]


@pytest.mark.parametrize(
    ("sample", "role"), [(ECOMMERCE, "codebuild_dast"), (STOREFRONT, "github_dast")]
)
def test_the_dast_role_reads_only_the_scanned_environments_rows(sample: Path, role: str) -> None:
    ir = ir_of(sample)
    dast = ir.security.dast
    assert dast is not None
    acct = Account(sample / ir.output("terraform"), ir.aws.account_id)
    table = acct.arn("aws_dynamodb_table.deployments")
    svc = ir.services[0].name
    mine = {"dynamodb:LeadingKeys": [f"{dast.environment}/{svc}"]}
    assert acct.can(role, "dynamodb:Query", table, **mine)
    assert not acct.can(
        role, "dynamodb:Query", table, **{"dynamodb:LeadingKeys": [f"production/{svc}"]}
    )
    # it cannot write the row it reads
    assert not acct.can(role, "dynamodb:PutItem", table, **mine)


def test_both_orchestrators_give_the_mark_the_table_and_the_service() -> None:
    dast = yaml.safe_load((ECOMMERCE / "ci/codebuild/dast.yml").read_text())
    assert dast["env"]["variables"]["DEPLOYMENTS_TABLE"] == ir_of(ECOMMERCE).deployments_table
    pipelines = (ECOMMERCE / "infrastructure/terraform/cicd/codepipeline.tf").read_text()
    assert '{ name = "SERVICE", value = "product-service", type = "PLAINTEXT" }' in pipelines
    zap = yaml.safe_load((STOREFRONT / ".github/workflows/zap.yml").read_text())
    (step,) = [s for s in zap["jobs"]["mark"]["steps"] if "run" in s]
    assert step["env"]["SERVICE"] == "${{ inputs.service }}"
    deploy = yaml.safe_load((STOREFRONT / ".github/workflows/deploy.yml").read_text())
    assert deploy["jobs"]["dast"]["with"]["service"] == "${{ inputs.service }}"
