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
from ...serialize.hcl import Block

# read-only, and without resource-level permissions: "*" is the only resource they take
DESCRIBE = [
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


def vpc_config(project: Block, net: DeployNetwork) -> None:
    """The project's ``vpc_config`` block (aws_codebuild_project)."""
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


def describe_network(env: Environment) -> str:
    """What the VPC must offer the deploy project (explain's checklist)."""
    net = env.deploy_network
    assert net is not None
    return (
        f"  VPC {net.vpc_id}: the {env.name} deploy project ({env.deploy_project}) runs in "
        f"subnets {', '.join(net.subnets)} with security groups "
        f"{', '.join(net.security_groups)}; they must reach the Argo CD API of "
        f"{env.argocd_secret_name}, the GitOps host, and (a NAT gateway or VPC endpoints: "
        "CodeBuild gives its interfaces no public address) S3, CloudWatch Logs, Secrets "
        "Manager, KMS, ECR, DynamoDB and STS"
    )
