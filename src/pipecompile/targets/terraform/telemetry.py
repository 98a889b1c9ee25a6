"""Pipeline monitoring on GitHub Actions delivery (issue 29, item 2): monitoring.tf.

Each deliver workflow's ``metrics`` job puts the run's figures in the namespace
``<project>/pipelines`` (workflow-metrics.sh) through the OIDC role
``<project>-github-metrics``: trusted by the deploy branches' pushes (the job runs in no
environment), allowed ``cloudwatch:PutMetricData`` in that namespace only.  The alarm
and the dashboard are the CodePipeline delivery's (monitoring.py), on the same metrics.
"""

from __future__ import annotations

from ...ir import IR
from ...serialize.hcl import Block, Ref
from .blocks import aws_constants, iam_role, inline_policy, policy_doc
from .iam import NEVER_APPROVE
from .monitoring import alarm_and_dashboard, namespace


def role_name(ir: IR) -> str:
    return f"{ir.project}-github-metrics"


def github_monitoring(ir: IR) -> list[Block]:
    oidc = aws_constants()["github_oidc_host"]
    provider = Ref(
        "aws_iam_openid_connect_provider.github.arn"
        if ir.github_oidc_provider == "create"
        else "data.aws_iam_openid_connect_provider.github.arn"
    )
    trust = policy_doc(
        "github_metrics_assume",
        [
            {
                "actions": ["sts:AssumeRoleWithWebIdentity"],
                "principals": [("Federated", [provider])],
                "conditions": [
                    ("StringEquals", f"{oidc}:aud", ["sts.amazonaws.com"]),
                    (
                        "StringLike",
                        f"{oidc}:sub",
                        [f"repo:{ir.repository}:ref:refs/heads/{b}" for b in ir.deploy_branches],
                    ),
                ],
            }
        ],
    )
    role = iam_role("github_metrics", role_name(ir), "github_metrics_assume")
    role.attr("max_session_duration", 3600)
    policy = policy_doc(
        "github_metrics",
        [
            {
                # PutMetricData has no resource: the namespace condition is its scope
                "sid": "PipelineMetrics",
                "actions": ["cloudwatch:PutMetricData"],
                "resources": ["*"],
                "conditions": [("StringEquals", "cloudwatch:namespace", [namespace(ir)])],
            },
            NEVER_APPROVE,
        ],
    )
    return [
        trust,
        role,
        policy,
        inline_policy("github_metrics", "github_metrics", "github_metrics"),
        *alarm_and_dashboard(ir),
    ]
