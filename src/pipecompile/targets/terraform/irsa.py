"""IAM roles for in-cluster service accounts (IRSA), and the clusters' OIDC issuers.

A Kubernetes ServiceAccount assumes an IAM role with a token its EKS cluster signs
(sts:AssumeRoleWithWebIdentity): the role trusts the cluster's IAM OIDC provider, and
only for the token's subject ``system:serviceaccount:<namespace>:<name>`` and audience
``sts.amazonaws.com`` (Amazon EKS User Guide, "Assign IAM roles to Kubernetes service
accounts": the trust policy's ``<issuer>:sub`` and ``<issuer>:aud`` conditions). So a
role trusted this way is usable by that one ServiceAccount of that one namespace, and
not by a controller that serves every namespace.

clusters.tf: one input variable per EKS cluster, its OIDC issuer (no default: it is the
cluster's, and a role trusting a wrong issuer can never be assumed). argo_rollouts.tf:
the role the Argo Rollouts controller calls CloudWatch with (rollback analysis on
CloudWatch: metricproviders/cloudwatch/cloudwatch.go calls GetMetricData with the AWS
SDK's default credentials, which IRSA provides).
"""

from __future__ import annotations

import re

from ...ir import IR
from ...serialize.hcl import Block, Call, Ref, Template
from .blocks import iam_role, inline_policy, policy_doc
from .iam import NEVER_APPROVE

ISSUER_RE = r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/id/[A-Za-z0-9]+$"
ROLLOUTS_NAMESPACE = "argo_rollouts_namespace"
ROLLOUTS_ACCOUNT = "argo_rollouts_service_account"


def issuer_variable(cluster: str) -> str:
    return "eks_oidc_issuer_" + re.sub(r"[^A-Za-z0-9_]", "_", cluster)


def _rollouts_clusters(ir: IR) -> list[str]:
    """The clusters whose Rollouts run CloudWatch analysis."""
    rb = ir.rollback
    if rb is None or rb.provider != "cloudwatch":
        return []
    if rb.max_error_rate is None and rb.max_p90_latency_ms is None:
        return []
    out: list[str] = []
    for svc in ir.services:
        for dep in svc.deployments:
            cluster = ir.environment(dep.environment).eks_cluster
            if dep.strategy.kind != "rolling" and cluster not in out:
                out.append(cluster)
    return out


def cluster_names(ir: IR, secret_clusters: list[str]) -> list[str]:
    """Every cluster a role here trusts: the secret stores', the Rollouts controller's."""
    return list(dict.fromkeys([*secret_clusters, *_rollouts_clusters(ir)]))


def clusters(ir: IR, secret_clusters: list[str]) -> list[Block] | None:
    """clusters.tf: the OIDC issuer of every cluster a role here trusts."""
    names = cluster_names(ir, secret_clusters)
    if not names:
        return None
    blocks: list[Block] = []
    for cluster in names:
        var = Block("variable", (issuer_variable(cluster),))
        var.attr(
            "description",
            f"OIDC issuer of EKS cluster {cluster}, without https:// (aws eks "
            f"describe-cluster --name {cluster} --query cluster.identity.oidc.issuer). "
            "The account's IAM OIDC provider for it must exist (eksctl utils "
            "associate-iam-oidc-provider): the service accounts' roles trust it",
        )
        var.attr("type", Ref("string"))
        check = var.block("validation")
        ref = Ref(f"var.{issuer_variable(cluster)}")
        check.attr("condition", Call("can", (Call("regex", (ISSUER_RE, ref)),)))
        check.attr(
            "error_message",
            "The issuer looks like oidc.eks.<region>.amazonaws.com/id/<ID>, without https://.",
        )
        blocks.append(var)
    return blocks


def trust(label: str, account: str, subjects: dict[str, list[str | Template]]) -> Block:
    """``<label>_assume``: the ServiceAccounts ``subjects[cluster]`` of each cluster."""
    statements = []
    for cluster, subs in subjects.items():
        issuer = Ref(f"var.{issuer_variable(cluster)}")
        statements.append(
            {
                "actions": ["sts:AssumeRoleWithWebIdentity"],
                "principals": [
                    (
                        "Federated",
                        [Template((f"arn:aws:iam::{account}:oidc-provider/", issuer))],
                    )
                ],
                "conditions": [
                    ("StringEquals", Template((issuer, ":aud")), ["sts.amazonaws.com"]),
                    ("StringEquals", Template((issuer, ":sub")), subs),
                ],
            }
        )
    return policy_doc(f"{label}_assume", statements)


def rollouts_role_name(ir: IR) -> str:
    return f"{ir.project}-argo-rollouts-cloudwatch"[:64]


def argo_rollouts(ir: IR) -> list[Block] | None:
    """argo_rollouts.tf: the Argo Rollouts controller's role for CloudWatch analysis."""
    names = _rollouts_clusters(ir)
    if not names:
        return None
    blocks: list[Block] = []
    for label, default, what in (
        (ROLLOUTS_NAMESPACE, "argo-rollouts", "namespace"),
        (ROLLOUTS_ACCOUNT, "argo-rollouts", "ServiceAccount"),
    ):
        var = Block("variable", (label,))
        var.attr("description", f"The Argo Rollouts controller's {what} (its install's default)")
        var.attr("type", Ref("string"))
        var.attr("default", default)
        blocks.append(var)
    subject = Template(
        (
            "system:serviceaccount:",
            Ref(f"var.{ROLLOUTS_NAMESPACE}"),
            ":",
            Ref(f"var.{ROLLOUTS_ACCOUNT}"),
        )
    )
    label = "argo_rollouts_cloudwatch"
    blocks.append(trust(label, ir.aws.account_id, {c: [subject] for c in names}))
    role = iam_role(label, rollouts_role_name(ir), f"{label}_assume")
    blocks.append(role)
    blocks.append(
        policy_doc(
            label,
            [
                {
                    # GetMetricData has no resource to scope to (Service Authorization
                    # Reference, Amazon CloudWatch: no resource types): it reads metrics
                    "sid": "RollbackAnalysis",
                    "actions": ["cloudwatch:GetMetricData"],
                    "resources": ["*"],
                },
                {
                    # --aws-verify-target-group: the controller finds the canary's
                    # target group and its ALB, whose metrics the analysis reads
                    # (argo-rollouts v1.9.0 docs/features/traffic-management/alb.md; the
                    # Describe calls have no resource to scope to)
                    "sid": "TargetGroupVerification",
                    "actions": [
                        "elasticloadbalancing:DescribeListeners",
                        "elasticloadbalancing:DescribeLoadBalancers",
                        "elasticloadbalancing:DescribeRules",
                        "elasticloadbalancing:DescribeTags",
                        "elasticloadbalancing:DescribeTargetGroups",
                        "elasticloadbalancing:DescribeTargetHealth",
                    ],
                    "resources": ["*"],
                },
                NEVER_APPROVE,  # a machine role: it never approves a deployment
            ],
        )
    )
    blocks.append(inline_policy(label, label, label))
    out = Block("output", (f"{label}_role_arn",))
    out.attr(
        "description",
        "Annotate the Argo Rollouts controller's ServiceAccount with it "
        "(eks.amazonaws.com/role-arn): CloudWatch rollback analysis",
    )
    out.attr("value", Ref(f"aws_iam_role.{label}.arn"))
    blocks.append(out)
    return blocks
