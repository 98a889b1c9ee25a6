"""What a GitHub Actions delivery run reports besides its Slack messages (issue 29, items
1 and 2), for deliver.py's workflow:

* a failed run mentions the people who caused it (failure-alert.sh: the pusher and the
  head commit's author, mapped to Slack member IDs by ``notifications.slack.users``) in
  the failure message;
* a ``metrics`` job (calling metrics.yml) puts the run's figures in CloudWatch
  (workflow-metrics.sh): the namespace, metrics and dimensions CodePipeline delivery's
  metric filters make, through the OIDC role ``<project>-github-metrics``, which may
  put metrics in that namespace and do nothing else; the Terraform's dashboard and
  failure-rate alarm read them.
"""

from __future__ import annotations

import json
from typing import Any

from ...ir import IR, Service
from ...serialize.emit import Flow, Pinned
from ..common import GH_METRICS, script_body
from .steps import RUNNER, aws_credentials, workflow_ref

MENTION = "${{ steps.who.outputs.mention }}"
METRICS = GH_METRICS
_PERMISSIONS = {
    "actions": Pinned("read", "read this run's jobs, for their durations"),
    "id-token": Pinned("write", "OIDC token to assume this job's AWS role"),
}


def metrics_role(ir: IR) -> tuple[str, str]:
    name = f"{ir.project}-github-metrics"
    return name, f"arn:aws:iam::{ir.aws.account_id}:role/{name}"


def namespace(ir: IR) -> str:
    return f"{ir.project}/pipelines"  # the CodePipeline delivery's (terraform/monitoring.py)


def mention_step(ir: IR, condition: str) -> dict[str, Any]:
    """The people behind the run, as Slack mentions (``steps.who.outputs.mention``)."""
    return {
        "id": "who",
        "if": condition,
        "name": "Find who to alert",
        "env": {
            "SLACK_USER_IDS": json.dumps(dict(ir.notifications.slack_users), sort_keys=True),
            # the pusher and the head commit's author (GitHub logins; the script drops
            # anything else)
            "AUTHORS": "${{ github.actor }} ${{ github.event.head_commit.author.username }}",
        },
        "run": script_body("failure-alert.sh"),
    }


def metrics_job(
    ir: IR, svc: Service, jobs: dict[str, Any], deploy_ids: list[str]
) -> dict[str, Any]:
    """The run's metrics (metrics.yml), after every other job, whatever they did."""
    deploys = [
        {
            "pipeline": dep.pipeline_name,
            # the API lists a caller's called jobs as "<its name> / <called job's name>"
            "job": jobs[job_id]["name"],
            "targeted": f"${{{{ needs.route.outputs.{dep.environment} }}}}",
            "result": f"${{{{ needs.{job_id}.result }}}}",
        }
        for dep, job_id in zip(svc.deployments, deploy_ids, strict=True)
    ]
    return {
        "name": "Pipeline metrics",
        "needs": Flow(jobs),
        "if": "${{ always() && needs.route.outputs.any == 'true' }}",
        "permissions": _PERMISSIONS,  # a called job may ask no more than its caller grants
        "uses": workflow_ref(ir, METRICS),
        "with": {
            "deploys": json.dumps(deploys),
            "cancelled": "${{ contains(needs.*.result, 'cancelled') }}",
        },
    }


def metrics_workflow(ir: IR) -> dict[str, Any]:
    """metrics.yml: workflow-metrics.sh once, for every deliver workflow's metrics job."""
    inputs = {
        "deploys": {"type": "string", "required": True},
        "cancelled": {"type": "boolean", "required": True},
    }
    job = {
        "name": "Pipeline metrics",
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": _PERMISSIONS,
        "steps": [
            aws_credentials(ir, metrics_role(ir)[1]),
            {
                "name": "Put this run's pipeline metrics in CloudWatch",
                "env": {
                    "NAMESPACE": namespace(ir),
                    "DEPLOYS": "${{ inputs.deploys }}",
                    "CANCELLED": "${{ inputs.cancelled }}",
                    "GITHUB_TOKEN": "${{ github.token }}",
                },
                "run": script_body("workflow-metrics.sh"),
            },
        ],
    }
    return {
        "name": "metrics",
        "on": {"workflow_call": {"inputs": inputs}},
        "permissions": {},
        "jobs": {"metrics": job},
    }
