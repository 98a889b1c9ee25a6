"""Pipeline monitoring on GitHub Actions delivery (issue 29, item 2): monitoring.tf.

Each deliver workflow's ``metrics`` job puts the run's figures in the namespace
``<project>/pipelines`` (workflow-metrics.sh) through the OIDC role
``<project>-github-metrics``: trusted by metrics.yml's jobs of the deploy branches'
pushes (the job runs in no environment), allowed ``cloudwatch:PutMetricData`` in that
namespace only.  The alarm and the dashboard are the CodePipeline delivery's
(monitoring.py), on the same metrics.
"""

from __future__ import annotations

from ...ir import IR
from ...serialize.hcl import Block
from ..common import GH_METRICS
from .blocks import iam_role, inline_policy, policy_doc
from .iam import NEVER_APPROVE
from .monitoring import alarm_and_dashboard, namespace
from .oidc import provider_ref, workflow_trust


def role_name(ir: IR) -> str:
    return f"{ir.project}-github-metrics"


def github_monitoring(ir: IR) -> list[Block]:
    provider = provider_ref(ir)
    # metrics.yml's jobs on the deploy branches' pushes (no environment: the sub's context
    # is the ref), read as GitHub reads the patterns (oidc.py)
    trust = workflow_trust(ir, "github_metrics", provider, GH_METRICS, ir.deploy_branches, None)
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
