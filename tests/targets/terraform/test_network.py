"""environments.<env>.deploy_network (issue 26: "the deploy projects reach the Argo CD API
from no VPC"): the deploy project's vpc_config, the EC2 permissions CodeBuild needs to
place it there (evaluated, not grepped), and its values escaped like every other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.ir import DeployNetwork
from pipecompile.serialize.hcl import Block, document
from pipecompile.targets.terraform.blocks import policy_doc
from pipecompile.targets.terraform.network import vpc_config, vpc_statements
from tests.conftest import hcl_norm
from tests.iam_eval import Account
from tests.targets.terraform.test_trust_hcl import HOSTILE, needs_terraform, terraform_eval

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = ROOT / "samples" / "minimal"
TF = MINIMAL / "infrastructure" / "terraform" / "cicd"
ACCOUNT, REGION = "012345678901", "eu-west-3"
SUBNETS = ["subnet-0a1b2c3d4e5f60718", "subnet-0b2c3d4e5f6071829"]
ENI = f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-0123456789abcdef0"


def subnet_arn(subnet: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{subnet}"


def projects() -> dict[str, Any]:
    parsed = hcl_norm(hcl2.loads((TF / "codebuild.tf").read_text()))
    return {
        label: body
        for res in parsed["resource"]
        for label, body in res.get("aws_codebuild_project", {}).items()
    }


def test_the_production_deploy_project_runs_in_its_vpc() -> None:
    found = projects()
    assert found["deploy-production"]["vpc_config"] == [
        {
            "vpc_id": "vpc-0a1b2c3d4e5f60718",
            "subnets": SUBNETS,
            "security_group_ids": ["sg-0a1b2c3d4e5f60718"],
        }
    ]
    # the other projects keep CodeBuild's own network: only production's API is private
    assert [label for label, body in found.items() if "vpc_config" in body] == ["deploy-production"]


def test_the_project_in_a_vpc_waits_for_its_role_policy() -> None:
    """CreateProject with a vpc_config checks the EC2 describe calls as the service role:
    created before the role's policy, the first apply fails ("Not authorized to perform
    DescribeSecurityGroups"; terraform-provider-aws #37049)."""
    body = projects()["deploy-production"]
    assert "${aws_iam_role_policy.deploy_production}" in str(body["depends_on"])
    assert 'resource "aws_iam_role_policy" "deploy_production"' in (TF / "iam.tf").read_text()


def test_the_setup_checklist_says_the_vpc_needs_a_nat_gateway(tmp_path: Path) -> None:
    """github.com (the GitOps host of the minimal sample, cosign's download) has no VPC
    endpoint: with endpoints alone the deploy fails before it records anything."""
    from pipecompile.insight.explain import checklist

    raw = (MINIMAL / "pipeline.yaml").read_bytes()
    ir = compile_bytes("pipeline.yaml", raw, tmp_path)
    (line,) = [x for x in checklist(ir) if x.startswith("  VPC vpc-0a1b2c3d4e5f60718")]
    assert "the GitOps host github.com (port 443)" in line
    assert "the subnets need a NAT gateway" in line
    assert "CodePipeline" in line  # production's approver lookup
    assert line.endswith("must allow outbound TCP 443")


@pytest.fixture(scope="module")
def account() -> Account:
    return Account(TF, ACCOUNT)


def test_the_deploy_role_may_create_codebuilds_interfaces_in_its_subnets_only(
    account: Account,
) -> None:
    ok = {"ec2:Subnet": subnet_arn(SUBNETS[1]), "ec2:AuthorizedService": "codebuild.amazonaws.com"}
    permit = "ec2:CreateNetworkInterfacePermission"
    assert account.can("deploy_production", permit, ENI, **ok)
    # another subnet, another service, or a condition key missing: implicit deny
    other = {**ok, "ec2:Subnet": subnet_arn("subnet-0fffffffffffffff0")}
    assert not account.can("deploy_production", permit, ENI, **other)
    assert not account.can(
        "deploy_production", permit, ENI, **{**ok, "ec2:AuthorizedService": "ec2.amazonaws.com"}
    )
    assert not account.can("deploy_production", permit, ENI, **{"ec2:Subnet": ok["ec2:Subnet"]})
    another_account = ENI.replace(ACCOUNT, "999999999999")
    assert not account.can("deploy_production", permit, another_account, **ok)


def test_the_deploy_role_has_the_calls_codebuild_makes_in_a_vpc(account: Account) -> None:
    for action in (
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
    ):
        assert account.can("deploy_production", action, "*"), action
    for action in ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"):
        assert account.can("deploy_production", action, ENI), action
    create = "ec2:CreateNetworkInterface"
    sg = f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0a1b2c3d4e5f60718"
    assert account.can("deploy_production", create, subnet_arn(SUBNETS[0]))
    assert account.can("deploy_production", create, sg)
    # not in another subnet or security group
    assert not account.can("deploy_production", create, subnet_arn("subnet-0fffffffffffffff0"))
    assert not account.can("deploy_production", create, sg.replace("0a1b", "0fff"))


def test_only_the_environment_with_a_network_gets_ec2(account: Account) -> None:
    for role in ("deploy_development", "deploy_testing", "deploy_staging", "codebuild"):
        for action in ("ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission"):
            assert not account.can(role, action, ENI, **{"ec2:Subnet": subnet_arn(SUBNETS[0])})


def test_explain_names_what_the_vpc_must_reach(tmp_path: Path) -> None:
    from pipecompile.insight.explain import explain_event

    raw = (MINIMAL / "pipeline.yaml").read_bytes()
    ir = compile_bytes("pipeline.yaml", raw, tmp_path)
    lines = explain_event(ir, "push", "main")
    assert (
        "    deploy network: shop-production-deploy runs in vpc-0a1b2c3d4e5f60718 (subnets "
        "subnet-0a1b2c3d4e5f60718, subnet-0b2c3d4e5f6071829; security groups "
        "sg-0a1b2c3d4e5f60718), where it reaches the Argo CD API"
    ) in lines
    assert not any("deploy network" in line for line in explain_event(ir, "push", "develop"))


def _hostile_network() -> DeployNetwork:
    return DeployNetwork(HOSTILE[0], tuple(HOSTILE), tuple(reversed(HOSTILE)))


def _rendered(tmp_path: Path) -> tuple[DeployNetwork, Block, Block]:
    """A hostile network's vpc_config and policy document (the models admit only EC2
    ids; past them, the writer still escapes whatever comes)."""
    net = _hostile_network()
    project = Block("resource", ("aws_codebuild_project", "p"))
    vpc_config(project, net, "deploy_p")
    ir = compile_bytes("pipeline.yaml", (MINIMAL / "pipeline.yaml").read_bytes(), tmp_path)
    return net, project, policy_doc("net", vpc_statements(ir, net))


def test_every_value_stays_in_its_string(tmp_path: Path) -> None:
    _, project, doc = _rendered(tmp_path)
    parsed = hcl_norm(hcl2.loads(document([project, doc])))  # checkov's parser
    body = parsed["resource"][0]["aws_codebuild_project"]["p"]
    assert list(body) == ["depends_on", "vpc_config"]
    vpc = body["vpc_config"][0]
    assert sorted(vpc) == ["security_group_ids", "subnets", "vpc_id"]
    assert len(vpc["subnets"]) == len(vpc["security_group_ids"]) == len(HOSTILE)
    statements = parsed["data"][0]["aws_iam_policy_document"]["net"]["statement"]
    assert [s["sid"] for s in statements] == [
        "VpcDescribe",
        "VpcNetworkInterfaces",
        "VpcInterfacePermission",
    ]
    assert len(statements[2]["condition"][0]["values"]) == len(HOSTILE)


@needs_terraform
def test_terraform_reads_back_every_value_exactly(tmp_path: Path) -> None:
    net, project, doc = _rendered(tmp_path / "ir")
    vpc = project.body[-1]
    assert isinstance(vpc, Block) and vpc.type == "vpc_config"
    values = Block("locals", (), list(vpc.body))
    values.attr("subnet_arns", _condition_values(doc, "ec2:Subnet"))
    names = ["vpc_id", "subnets", "security_group_ids", "subnet_arns"]
    got = terraform_eval(tmp_path / "tf", document([values]), names)
    assert got == {
        "vpc_id": net.vpc_id,
        "subnets": list(net.subnets),
        "security_group_ids": list(net.security_groups),
        "subnet_arns": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{s}" for s in net.subnets],
    }


def _condition_values(doc: Block, variable: str) -> list[str]:
    for st in doc.body:
        for cond in st.body if isinstance(st, Block) else ():
            if isinstance(cond, Block) and ("variable", variable) in cond.body:
                values: list[str] = next(v for k, v in cond.body if k == "values")  # type: ignore[misc]
                return values
    raise AssertionError(variable)
