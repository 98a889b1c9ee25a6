"""Day-2 readiness of the AWS side (issue 19): state, existing accounts, housekeeping,
a scan gate that fits the account, deployments queued per service x environment."""

from __future__ import annotations

import json
from typing import Any

import hcl2
import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.insight.explain import checklist
from pipecompile.jobs import expected
from tests.conftest import ROOT, as_github_delivered, hcl_norm
from tests.harness.reusable import expand_rendered

REFERENCE = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
SHARED = (ROOT / "samples/shared-account/pipeline.yaml").read_text()
TF = "infrastructure/terraform/cicd"


def render(text: str) -> dict[str, str]:
    ir = compile_bytes("pipeline.yaml", text.encode())
    return {p: t for p, (_, t) in expected(ir).items()}


def tf(files: dict[str, str], name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = hcl_norm(hcl2.loads(files[f"{TF}/{name}"]))
    return parsed


def resources(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for block in doc.get("resource", []) for k, v in block.get(kind, {}).items()}


def with_backend(backend: str) -> str:
    return REFERENCE.replace("\nservices:", f"\nterraform:\n  backend:\n{backend}\nservices:", 1)


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    return render(REFERENCE)


@pytest.fixture(scope="module")
def shared() -> dict[str, str]:
    return render(SHARED)


# -- 1. state backend ----------------------------------------------------------------------


def test_the_reference_keeps_local_state_explicitly(reference: dict[str, str]) -> None:
    block = tf(reference, "versions.tf")["terraform"][0]
    assert list(block["backend"][0]) == ["local"]
    assert block["required_version"] == ">= 1.6.0"


def test_s3_state_with_native_locking(shared: dict[str, str]) -> None:
    block = tf(shared, "versions.tf")["terraform"][0]
    s3 = block["backend"][0]["s3"]
    assert s3 == {
        "bucket": "example-terraform-state",
        "key": "ledger/cicd.tfstate",
        "region": "us-east-1",
        "encrypt": True,
        "use_lockfile": True,
    }
    assert block["required_version"] == ">= 1.10.0"  # use_lockfile arrived in 1.10


def test_s3_state_with_a_dynamodb_lock_table() -> None:
    text = with_backend(
        "    type: s3\n    bucket: shop-state\n    lock: dynamodb\n    dynamodb_table: shop-locks"
    )
    files = render(text)
    s3 = tf(files, "versions.tf")["terraform"][0]["backend"][0]["s3"]
    assert s3["dynamodb_table"] == "shop-locks" and "use_lockfile" not in s3
    assert s3["key"] == "ecommerce/cicd.tfstate" and s3["region"] == "us-east-1"
    lines = checklist(compile_bytes("pipeline.yaml", text.encode()))
    assert "  DynamoDB table shop-locks with the string partition key LockID (state locking)" in (
        lines
    )


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("    type: s3", "terraform.backend.type: an S3 backend needs 'bucket'"),
        (
            "    type: s3\n    bucket: shop-state\n    lock: dynamodb",
            "terraform.backend.lock: 'lock: dynamodb' needs 'dynamodb_table'",
        ),
        ("    bucket: shop-state", "terraform.backend.bucket: 'bucket' applies only to 'type: s3'"),
    ],
)
def test_backend_mistakes_are_located(backend: str, message: str) -> None:
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", with_backend(backend).encode())
    lines = [str(d) for d in info.value.diagnostics]
    field = message.split(":")[0].rsplit(".", 1)[1]
    line = with_backend(backend).split("\n").index("  backend:") + 1
    line += [x.split(":")[0].strip() for x in backend.split("\n")].index(field) + 1
    assert any(f"pipeline.yaml:{line}:" in s and message in s for s in lines), lines


# -- 2. the GitHub OIDC provider -----------------------------------------------------------


def _trust_principals(files: dict[str, str]) -> list[str]:
    """The federated principals of every GitHub role's trust policy (build and deploys)."""
    doc = tf(files, "iam.tf")
    found = set()
    for block in doc["data"]:
        for label, body in block.get("aws_iam_policy_document", {}).items():
            if label.startswith("github_") and label.endswith("_assume"):
                st = body["statement"][0]
                found |= {i for p in st["principals"] for i in p["identifiers"]}
    assert found, "no GitHub trust policy"
    return sorted(found)


def test_codepipeline_delivery_gives_github_no_aws_role(reference: dict[str, str]) -> None:
    doc = tf(reference, "iam.tf")  # GitHub Actions runs CI only: it never calls AWS
    assert resources(doc, "aws_iam_openid_connect_provider") == {}
    assert not [r for r in resources(doc, "aws_iam_role") if r.startswith("github")]


def test_the_oidc_provider_is_created_by_default() -> None:
    files = render(as_github_delivered(REFERENCE))
    assert "github" in resources(tf(files, "iam.tf"), "aws_iam_openid_connect_provider")
    assert _trust_principals(files) == ["${aws_iam_openid_connect_provider.github.arn}"]


def test_an_existing_oidc_provider_is_read_not_created() -> None:
    shared = render(as_github_delivered(SHARED))
    doc = tf(shared, "iam.tf")
    assert resources(doc, "aws_iam_openid_connect_provider") == {}
    data = [b for b in doc["data"] if "aws_iam_openid_connect_provider" in b]
    assert data[0]["aws_iam_openid_connect_provider"]["github"]["url"] == (
        "https://token.actions.githubusercontent.com"
    )
    assert _trust_principals(shared) == ["${data.aws_iam_openid_connect_provider.github.arn}"]


# -- 3. housekeeping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "keep", "signed"), [("reference", 200, True), ("shared", 50, False)]
)
def test_every_repository_has_a_lifecycle_policy(
    sample: str, keep: int, signed: bool, request: pytest.FixtureRequest
) -> None:
    files: dict[str, str] = request.getfixturevalue(sample)
    doc = tf(files, "ecr.tf")
    repos = resources(doc, "aws_ecr_repository")
    policies = resources(doc, "aws_ecr_lifecycle_policy")
    assert sorted(policies) == sorted(repos) and repos
    for name, policy in policies.items():
        assert policy["repository"] == f"${{aws_ecr_repository.{name}.name}}"
        rules = json.loads(json.loads(f'"{policy["policy"]}"'))["rules"]  # HCL-escaped JSON
        if signed:
            # cosign v3 stores signatures and attestations as untagged OCI referrers
            # (foundation._ecr_lifecycle cites its source): no rule selects untagged
            # manifests, so signatures never expire
            assert not any(r["selection"]["tagStatus"] != "tagged" for r in rules)
        else:  # nothing signs: untagged images go after a day
            assert rules.pop(0)["selection"] == {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            }
        assert [r["rulePriority"] for r in rules] == ([1, 2] if signed else [2, 3])
        # each build tier counted apart (feature churn never expires a release image)
        assert [r["selection"] for r in rules] == [
            {
                "tagStatus": "tagged",
                "tagPrefixList": [f"{tier}-"],
                "countType": "imageCountMoreThan",
                "countNumber": keep,
            }
            for tier in ("rel", "src")
        ]
        assert all(r["action"] == {"type": "expire"} for r in rules)


@pytest.mark.parametrize(("sample", "days"), [("reference", 90), ("shared", 14)])
def test_the_artifact_bucket_expires_artifacts(
    sample: str, days: int, request: pytest.FixtureRequest
) -> None:
    files: dict[str, str] = request.getfixturevalue(sample)
    lc = resources(tf(files, "storage.tf"), "aws_s3_bucket_lifecycle_configuration")
    rule = lc["artifacts"]["rule"][0]
    assert rule["status"] == "Enabled" and rule["expiration"][0]["days"] == days


# -- 4. a scan gate that fits the account --------------------------------------------------


def _gate_envs(files: dict[str, str]) -> list[dict[str, str]]:
    envs = []
    for path, text in files.items():
        if path.startswith(".github/workflows/deliver-"):
            for step in yaml.safe_load(text.split("\n", 3)[3])["jobs"]["build"]["steps"]:
                if "SCAN_TYPE" in step.get("env", {}):
                    envs.append(step["env"])
        # every service's build, or with signing every tier's sign project (the build
        # session, which runs the branch's code, runs no gate then)
        if path in ("ci/codebuild/build.yml", "ci/codebuild/sign.yml"):
            variables = yaml.safe_load(text)["env"]["variables"]
            if "SCAN_TYPE" in variables:
                envs.append(variables)
    return envs


@pytest.mark.parametrize(
    ("sample", "scan_type", "seconds"),
    [("reference", "auto", "1200"), ("shared", "enhanced", "1800")],
)
def test_both_orchestrators_run_the_gate_with_the_account_mode(
    sample: str, scan_type: str, seconds: str, request: pytest.FixtureRequest
) -> None:
    files: dict[str, str] = request.getfixturevalue(sample)
    envs = _gate_envs(files)
    # one deliverer (CodePipeline): the gate runs in the one build buildspec
    assert not any(p.startswith(".github/workflows/deliver-") for p in files)
    assert len(envs) == 1 and not [p for p in files if p.startswith("ci/codebuild/build-")]
    for env in envs:
        assert env["SCAN_TYPE"] == scan_type and env["SCAN_TIMEOUT_SECONDS"] == seconds


@pytest.mark.parametrize(
    ("sample", "sids"),
    [("reference", ["EnhancedScanFindings", "ScanType"]), ("shared", ["EnhancedScanFindings"])],
)
def test_the_roles_may_ask_what_the_gate_asks(
    sample: str, sids: list[str], request: pytest.FixtureRequest
) -> None:
    delivered: dict[str, str] = request.getfixturevalue(sample)  # by CodePipeline
    text = REFERENCE if sample == "reference" else SHARED
    by_github = render(as_github_delivered(text))
    # the CodeBuild role of the gate: the sign project's with signing (the reference)
    gate = "codebuild_sign" if sample == "reference" else "codebuild"
    for files, role in ((delivered, gate), (by_github, "github_build")):
        doc = tf(files, "iam.tf")
        found = [
            b["aws_iam_policy_document"][role]
            for b in doc["data"]
            if role in b.get("aws_iam_policy_document", {})
        ]
        statements = found[0]["statement"]
        got = sorted(
            s["sid"] for s in statements if s["sid"] in ("ScanType", "EnhancedScanFindings")
        )
        assert got == sids, role


# -- 5. deployments queue per service x environment ----------------------------------------


def test_deploy_jobs_queue_per_service_and_environment() -> None:
    groups = []
    files = render(as_github_delivered(REFERENCE))
    for path in files:
        if not path.startswith(".github/workflows/deliver-"):
            continue
        service = path.rsplit("deliver-", 1)[1].removesuffix(".yml")
        for job_id, job in expand_rendered(files, path)["jobs"].items():  # deploy.yml's job
            if job_id.startswith("deploy-") and "/" not in job_id:
                env = job_id.removeprefix("deploy-")
                assert job["concurrency"] == {
                    "group": f"deploy-{service}-{env}",
                    "cancel-in-progress": False,
                }
                groups.append(job["concurrency"]["group"])
    assert len(groups) == len(set(groups)) == 2 * 4


# -- 6. explain lists what must exist before the first apply -------------------------------


def test_explain_lists_what_the_first_apply_needs() -> None:
    ref = checklist(compile_bytes("pipeline.yaml", REFERENCE.encode()))
    assert "Before the first terraform apply in infrastructure/terraform/cicd:" in ref
    assert any(line.startswith("  state: local") for line in ref)
    # CodePipeline delivers: no GitHub OIDC provider (the cluster's, for IRSA, is listed)
    assert not any("OIDC provider for https://token.actions" in line for line in ref)
    assert any(line.startswith("  input variable eks_oidc_issuer_ecommerce") for line in ref)
    by_github = checklist(compile_bytes("pipeline.yaml", as_github_delivered(REFERENCE).encode()))
    assert any("no IAM OIDC provider for https://token.actions" in line for line in by_github)
    own = checklist(compile_bytes("pipeline.yaml", as_github_delivered(SHARED).encode()))
    assert (
        "  S3 bucket example-terraform-state in us-east-1 for the state (key "
        "ledger/cicd.tfstate): versioning and encryption on, public access blocked"
    ) in own
    assert "  Terraform >= 1.10 (state locking with an S3 lock file, use_lockfile)" in own
    assert any("IAM OIDC provider for https://token.actions" in x and "read" in x for x in own)
    assert "  ECR registry scanning: enhanced (Amazon Inspector activated for ECR)" in own
