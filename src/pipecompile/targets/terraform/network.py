"""A deploy project inside a VPC (environments.<env>.deploy_network): its vpc_config and
the EC2 calls CodeBuild makes with the project's role to place it there.

CodeBuild creates an elastic network interface in one of the subnets for every build,
as the project's service role, and deletes it afterwards (AWS CodeBuild User Guide,
"Use CodeBuild with Amazon Virtual Private Cloud" and "Allow CodeBuild access to AWS
services required to create a VPC network interface"): the describe calls take no
resource-level permission ("*"); creating and deleting the interface is limited to
the project's subnets and security groups; CreateNetworkInterfacePermission to
interfaces in the project's own subnets (ec2:Subnet, their ARNs) that CodeBuild asks
for (ec2:AuthorizedService).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, DeployNetwork, Environment
from ...serialize.hcl import Block, Ref
from ..common import rollback_notifies

# read-only, and without resource-level permissions: "*" is the only resource they take
DESCRIBE = [
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


def vpc_config(project: Block, net: DeployNetwork, role: str) -> None:
    """The project's ``vpc_config`` block (aws_codebuild_project). CreateProject checks
    the EC2 describe calls as the service role, so the project waits for the role's
    policy (terraform-provider-aws #37049; aws-cdk #2662 added the same dependency)."""
    project.attr("depends_on", [Ref(f"aws_iam_role_policy.{role}")])
    vpc = project.block("vpc_config")
    vpc.attr("vpc_id", net.vpc_id)
    vpc.attr("subnets", list(net.subnets))
    vpc.attr("security_group_ids", list(net.security_groups))


def vpc_statements(ir: IR, net: DeployNetwork) -> list[dict[str, Any]]:
    """What the project's role needs so that CodeBuild can run its builds in ``net``."""
    region, account = ir.aws.region, ir.aws.account_id
    subnets = [f"arn:aws:ec2:{region}:{account}:subnet/{s}" for s in net.subnets]
    eni = f"arn:aws:ec2:{region}:{account}:network-interface/*"
    groups = [f"arn:aws:ec2:{region}:{account}:security-group/{g}" for g in net.security_groups]
    return [
        {"sid": "VpcDescribe", "actions": DESCRIBE, "resources": ["*"]},
        {
            # AWS's example policy grants these on "*"; they take resource-level
            # permissions (Service Authorization Reference, Amazon EC2: a network
            # interface, its subnet, its security groups), so only the project's own
            "sid": "VpcNetworkInterfaces",
            "actions": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"],
            "resources": [eni, *subnets, *groups],
        },
        {
            "sid": "VpcInterfacePermission",  # only CodeBuild's, only in these subnets
            "actions": ["ec2:CreateNetworkInterfacePermission"],
            "resources": [eni],
            "conditions": [
                ("StringEquals", "ec2:Subnet", subnets),
                ("StringEquals", "ec2:AuthorizedService", ["codebuild.amazonaws.com"]),
            ],
        },
    ]


def _git_host(url: str) -> tuple[str, int]:
    """The GitOps remote's host and the port the deploy project pushes to."""
    if url.startswith("https://"):
        return url.split("/")[2], 443
    return url.split("@", 1)[-1].split(":", 1)[0], 22  # git@host:owner/repo.git


def describe_network(ir: IR, env: Environment) -> str:
    """What the VPC must offer the deploy project (explain's checklist): every host its
    buildspec calls. github.com has no VPC endpoint, so a NAT gateway is required (AWS
    CodeBuild User Guide, vpc-support.md: "a private subnet with NAT translation" for
    services that do not support PrivateLink)."""
    net = env.deploy_network
    assert net is not None
    services = ["S3", "CloudWatch Logs", "Secrets Manager", "KMS", "ECR (api and dkr)"]
    services += ["DynamoDB"] if ir.deployments_table else []
    services += ["STS"]
    services += ["SNS"] if rollback_notifies(ir) else []  # rollback-notify.sh
    services += ["CodePipeline"] if env.approval else []  # approver-codepipeline.sh
    hosts, ports = [], {443}
    if env.gitops_repository:
        host, port = _git_host(env.gitops_repository)
        hosts.append(f"the GitOps host {host} (port {port})")
        ports.add(port)
    if ir.security.sign_images:
        hosts.append("github.com (install-cosign.sh downloads cosign)")
    return (
        f"  VPC {net.vpc_id}: the {env.name} deploy project ({env.deploy_project}) runs in "
        f"subnets {', '.join(net.subnets)} with security groups "
        f"{', '.join(net.security_groups)} (CodeBuild gives its interfaces no public "
        f"address); they must reach the Argo CD API of {env.argocd_secret_name} (in the VPC "
        "or routed to it), and "
        + ", ".join(hosts or ["the internet"])
        + ", which no VPC endpoint serves: the subnets need a NAT gateway; VPC endpoints "
        "may carry "
        + ", ".join(services)
        + "; the security groups must allow outbound TCP "
        + " and ".join(str(p) for p in sorted(ports))
    )
