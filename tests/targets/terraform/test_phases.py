"""The first apply, phase by phase (issue 29, item 8): one ``<env>.tfvars`` per
environment, ``var.environments`` enabling environments in promotion order, proven by
``terraform plan`` of the generated Terraform, offline, with the real AWS provider."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipecompile.serialize.hcl import Block, Ref, document
from pipecompile.targets.terraform.phases import phased
from tests.rehearsal.test_spec import OFFLINE_PROVIDER, REF, SAMPLES, TF, ir_of

needs_terraform = pytest.mark.skipif(
    not (shutil.which("terraform") and Path("/opt/tf-plugins").is_dir()),
    reason="terraform and its provider mirror are not on this machine",
)
ENVS = ["development", "testing", "staging", "production"]


def terraform(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "TF_CLI_CONFIG_FILE": "/dev/null",
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",  # no network: a call to AWS fails, not hangs
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    res = subprocess.run(
        ["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True
    )
    if ok:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


def _clusters_tf(folder: Path) -> str:
    path = folder / "clusters.tf"
    return path.read_text() if path.exists() else ""


def initialised(sample: Path, tmp: Path) -> Path:
    shutil.copytree(sample, tmp / "sample")  # build projects read their buildspecs with file()
    ir = ir_of(sample)
    folder = tmp / "sample" / ir.output("terraform")
    (folder / "offline_override.tf").write_text(OFFLINE_PROVIDER)
    # what the operator sets (no default): the OIDC issuer of each cluster the roles trust
    issuers = re.findall(r'^variable "(eks_oidc_issuer_\w+)"', _clusters_tf(folder), re.M)
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    (folder / "offline.auto.tfvars").write_text("".join(f'{v} = "{issuer}"\n' for v in issuers))
    terraform(["init", "-input=false", "-plugin-dir=/opt/tf-plugins"], folder)
    return folder


@pytest.fixture(scope="module")
def ref_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference's Terraform, initialised once (its tests only plan, never apply)."""
    return initialised(REF, tmp_path_factory.mktemp("ref"))


def planned(folder: Path, *args: str) -> set[str]:
    """Addresses of the resources a plan creates (data sources read at plan time aside)."""
    terraform(["plan", "-input=false", "-refresh=false", "-lock=false", "-out=p", *args], folder)
    plan = json.loads(terraform(["show", "-json", "p"], folder).stdout)
    return {r["address"] for r in plan["resource_changes"] if r["change"]["actions"] == ["create"]}


def test_each_environment_has_its_tfvars_enabling_it_and_those_before_it() -> None:
    for i, env in enumerate(ENVS):
        text = (TF / f"{env}.tfvars").read_text()
        # the serializer aligns the "=" of neighbouring assignments (drift_var_file)
        flat = " ".join(line.split(" = ")[0].strip() + " = " + line.split(" = ", 1)[1]
                        if " = " in line else line for line in text.splitlines())  # fmt: skip
        assert f"environments = {json.dumps(ENVS[: i + 1])}".replace('","', '", "') in flat
        if env != ENVS[-1]:  # the drift check plans with the phase's file (drift-check.sh)
            assert f'drift_var_file = "{env}.tfvars"' in flat
        assert f"terraform apply -var-file={env}.tfvars" in text
    phases = (TF / "phases.tf").read_text()
    assert 'default     = ["development", "testing", "staging", "production"]' in phases


@needs_terraform
def test_phase_by_phase_each_apply_adds_only_the_next_environment(ref_folder: Path) -> None:
    folder = ref_folder
    terraform(["validate"], folder)
    every = planned(folder)  # no -var-file: every environment (the default)
    before: set[str] = set()
    for i, env in enumerate(ENVS):
        now = planned(folder, f"-var-file={env}.tfvars")
        assert before < now  # nothing an earlier phase created goes away
        added = now - before
        if i == 0:  # development's own, and everything the environments share
            assert not [a for a in added if any(e in a for e in ENVS[1:])]
            assert {
                "aws_codepipeline.product-service-development[0]",
                "aws_codepipeline.order-service-development[0]",
                "aws_codebuild_project.deploy-development[0]",
                "aws_iam_role.deploy_development[0]",
                "aws_secretsmanager_secret.gitops_deploy_development[0]",
                "aws_cloudwatch_event_rule.development_failed[0]",
                # shared: the registry, the key, the audit table, the build projects
                "aws_ecr_repository.order-service",
                "aws_kms_key.cicd",
                "aws_dynamodb_table.deployments",
                "aws_codebuild_project.build-order-service",
                "aws_iam_role.codepipeline",
            } <= added
        else:  # the next environment's own blocks, nothing else
            assert added and all(env in a for a in added), sorted(a for a in added if env not in a)
            assert f"aws_codepipeline.order-service-{env}[0]" in added
            assert f"aws_iam_role.deploy_{env}[0]" in added
        before = now
    assert before == every  # the last phase is the whole project
    # approvals are in their environments' phases: staging's topic comes with staging
    assert "aws_sns_topic.approvals_staging[0]" in every


@needs_terraform
def test_shared_blocks_name_an_environment_only_while_it_exists(ref_folder: Path) -> None:
    """A shared block reads an environment's block through one() or a concat of splats
    (the pipeline role's project list): null or nothing while the environment is off, as
    Terraform itself evaluates the outputs of phase 1."""
    folder = ref_folder
    args = ["-input=false", "-refresh=false", "-lock=false", "-var-file=development.tfvars"]
    terraform(["plan", *args, "-out=p"], folder)
    plan = json.loads(terraform(["show", "-json", "p"], folder).stdout)
    outputs = plan["planned_values"]["outputs"]["gitops_credential_secrets"]["value"]
    assert outputs == {
        "development": "ecommerce/development/gitops-credential",
        "testing": None,
        "staging": None,
        "production": None,
    }
    builds = next(
        st
        for d in plan["configuration"]["root_module"]["resources"]
        if d["address"] == "data.aws_iam_policy_document.codepipeline"
        for st in d["expressions"]["statement"]
        if st["sid"]["constant_value"] == "Builds"
    )
    refs = builds["resources"]["references"]
    assert "aws_codebuild_project.deploy-production" in refs  # the splat, not an index
    assert "aws_codebuild_project.deploy-production[0]" not in refs


@needs_terraform
def test_an_environment_out_of_promotion_order_is_refused(ref_folder: Path) -> None:
    folder = ref_folder
    res = terraform(
        ["plan", "-input=false", "-refresh=false", "-lock=false", '-var=environments=["staging"]'],
        folder,
        ok=False,
    )
    assert res.returncode == 1
    assert "environments is the promotion order or a beginning of it" in res.stderr


@needs_terraform
def test_github_delivery_phases_its_environment_roles(tmp_path: Path) -> None:
    folder = initialised(SAMPLES / "storefront", tmp_path)
    first = planned(folder, "-var-file=development.tfvars")
    assert "aws_iam_role.github_deploy_development[0]" in first
    assert not [a for a in first if "staging" in a or "production" in a]
    assert "aws_iam_role.github_deploy_production[0]" in planned(folder)


@needs_terraform
def test_state_applied_before_phases_moves_to_index_zero(tmp_path: Path) -> None:
    """A project applied before count appeared keeps its objects: Terraform moves
    ``aws_x.y`` to ``aws_x.y[0]`` by itself (the plan's previous_address). The state here
    is written by hand with a few attributes, so the plan may still update or replace
    them for the missing ones; what matters is the move."""
    folder = initialised(REF, tmp_path)
    provider = 'provider["registry.terraform.io/hashicorp/aws"]'
    arn = "arn:aws:sns:us-east-1:123456789012:ecommerce-staging-approvals"
    resources: list[dict[str, Any]] = [
        {
            "mode": "managed",
            "type": "aws_sns_topic",
            "name": "approvals_staging",
            "provider": provider,
            "instances": [{"schema_version": 0, "attributes": {"id": arn, "arn": arn}}],
        }
    ]
    state = {
        "version": 4,
        "terraform_version": "1.6.0",
        "serial": 1,
        "lineage": "5d0c9a43-0000-4000-8000-000000000001",
        "outputs": {},
        "resources": resources,
    }
    (folder / "terraform.tfstate").write_text(json.dumps(state))
    terraform(["plan", "-input=false", "-refresh=false", "-lock=false", "-out=p"], folder)
    plan = json.loads(terraform(["show", "-json", "p"], folder).stdout)
    moved = {
        r["previous_address"]: r["address"]
        for r in plan["resource_changes"]
        if "previous_address" in r
    }
    assert moved == {"aws_sns_topic.approvals_staging": "aws_sns_topic.approvals_staging[0]"}


# -- the rewrite on its own ---------------------------------------------------------------


def _doc(label: str, resources: list[Any]) -> Block:
    doc = Block("data", ("aws_iam_policy_document", label))
    st = doc.block("statement")
    st.attr("actions", ["sns:Publish"])
    st.attr("resources", resources)
    st.block("principals").attr("type", "AWS")
    return doc


def test_a_statement_of_optional_resources_only_exists_with_them() -> None:
    ir = ir_of(REF)
    topic = Block("resource", ("aws_sns_topic", "approvals_staging"))
    topic.attr("name", "t")
    shared = _doc("shared", [Ref("aws_sns_topic.approvals_staging.arn")])
    text = document(phased(ir, {"x.tf": [topic, shared]})["x.tf"])
    assert "count = local.enabled.staging" in text
    assert 'dynamic "statement" {' in text
    assert (
        "for_each = slice([1], 0, min(1, length(concat(aws_sns_topic.approvals_staging[*].arn))))"
        in text
    )
    assert re.search(r"content \{\n\s+actions\s+= \[\"sns:Publish\"\]", text)


@needs_terraform
def test_terraform_drops_that_statement_while_its_environment_is_off(tmp_path: Path) -> None:
    from pipecompile.targets.terraform.phases import phases_tf

    ir = ir_of(REF)
    topic = Block("resource", ("aws_sns_topic", "approvals_staging"))
    topic.attr("name", "ecommerce-staging-approvals")
    doc = Block("data", ("aws_iam_policy_document", "shared"))
    always = doc.block("statement")
    always.attr("actions", ["sns:Subscribe"])
    always.attr("resources", ["*"])
    st = doc.block("statement")
    st.attr("actions", ["sns:Publish"])
    st.attr("resources", [Ref("aws_sns_topic.approvals_staging.arn")])
    out = Block("output", ("policy",))
    out.attr("value", Ref("data.aws_iam_policy_document.shared.json"))
    blocks = phased(ir, {"x.tf": [*phases_tf(ir), topic, doc, out]})["x.tf"]
    (tmp_path / "main.tf").write_text(
        document(blocks) + OFFLINE_PROVIDER.replace("{", '{\n  region = "us-east-1"', 1)
    )
    terraform(["init", "-input=false", "-plugin-dir=/opt/tf-plugins"], tmp_path)
    terraform(["validate"], tmp_path)
    args = ["-input=false", "-refresh=false", "-lock=false", "-out=p"]
    terraform(["plan", *args, '-var=environments=["development"]'], tmp_path)
    plan = json.loads(terraform(["show", "-json", "p"], tmp_path).stdout)
    policy = json.loads(plan["planned_values"]["outputs"]["policy"]["value"])
    assert [st["Action"] for st in policy["Statement"]] == ["sns:Subscribe"]


def test_a_later_environment_interpolated_into_an_earlier_one_is_refused() -> None:
    from pipecompile.serialize.hcl import Template

    ir = ir_of(REF)
    topic = Block("resource", ("aws_sns_topic", "approvals_production"))
    early = Block("resource", ("aws_sns_topic_policy", "deploy_development"))
    early.attr("arn", Template((Ref("aws_sns_topic.approvals_production.arn"), "/x")))
    with pytest.raises(ValueError, match="interpolated where its environment may be off"):
        phased(ir, {"x.tf": [topic, early]})
    counted = Block("resource", ("aws_iam_role", "deploy_testing"))
    counted.attr("count", 1)
    with pytest.raises(ValueError, match="has a count of its own"):
        phased(ir, {"x.tf": [counted]})


def test_the_longest_environment_name_owns_a_label() -> None:
    from pipecompile.compiler import compile_bytes
    from pipecompile.targets.terraform.phases import owners

    source = (REF / "pipeline.yaml").read_text().replace("  testing:", "  staging-eu:")
    ir = compile_bytes("pipeline.yaml", source.encode())
    blocks = [
        Block("resource", ("aws_iam_role", "deploy_staging_eu")),
        Block("data", ("aws_iam_policy_document", "deploy_staging_eu_assume")),
        Block("resource", ("aws_iam_role", "deploy_staging")),
        Block("resource", ("aws_ecr_repository", "order-service-staging")),  # not a pipeline
    ]
    got = {addr: env.name for addr, env in owners(ir, blocks).items()}
    assert got == {
        "aws_iam_role.deploy_staging_eu": "staging-eu",
        "data.aws_iam_policy_document.deploy_staging_eu_assume": "staging-eu",
        "aws_iam_role.deploy_staging": "staging",
    }
