"""The compliance jobs on GitHub Actions delivery (issue 29, item 4): drift.yml and
security-review.yml, scheduled callers of the reusable compliance.yml, which runs the
scripts the CodeBuild projects run on CodePipeline delivery (targets/compliance.py holds
what both share).  compliance.yml's one job runs the review its caller names (the other
review's steps are skipped), then records it in the audit table: each script once.

Its job runs in the GitHub environment ``compliance``, the only subject the two roles
trust (a called job's OIDC subject is its own environment's): the drift check assumes
the read-only role for init and plan, then the review role to write the audit row; the
security review assumes the review role.  A drift, an error or the monthly review's
result reaches Slack from the caller's job in the ``notifications`` environment, where
the webhook lives.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR
from ..common import GH_COMPLIANCE, ZIZMOR, script_body
from ..compliance import (
    DRIFT_SCHEDULE,
    ENVIRONMENT,
    REVIEW_SCHEDULE,
    drift_scheduled,
    drift_variables,
    github_roles,
    review_variables,
    security_review,
    titles,
)
from .steps import (
    NOTIFY_ENVIRONMENT,
    RUNNER,
    aws_credentials,
    checkout,
    permissions,
    slack_step,
    workflow_ref,
)
from .steps import uses as uses_

RUN_URL = "${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}"
# the audit row's run: a re-run attempt is a run of its own (the row key holds it)
RUN_ATTEMPT = RUN_URL + "/attempts/${{ github.run_attempt }}"
REUSABLE = GH_COMPLIANCE
OUTCOME = "${{ runner.temp }}/review-outcome"
SUMMARY = "${{ runner.temp }}/review-summary"
_PERMISSIONS = {"contents": "read", "id_token": "write"}


def _only(review: str, step: dict[str, Any]) -> dict[str, Any]:
    """A step of one review: the runner skips it when the caller asked for the other."""
    return {"if": f"inputs.review == '{review}'", **step}


def _drift_steps(ir: IR) -> list[dict[str, Any]]:
    env = drift_variables(ir)
    return [
        _only("drift", aws_credentials(ir, github_roles(ir)["drift"][1])),
        _only(
            "drift",
            {
                "name": f"Install Terraform {env['TERRAFORM_VERSION']}",
                "env": {
                    "TERRAFORM_VERSION": env["TERRAFORM_VERSION"],
                    "TERRAFORM_SHA256": env["TERRAFORM_SHA256"],
                    "BIN_DIR": "${{ runner.temp }}/bin",
                },
                "run": script_body("install-terraform.sh"),
            },
        ),
        _only(
            "drift",
            {
                "id": "drift",
                "name": "terraform plan -detailed-exitcode, read-only",
                "env": {
                    "TF_DIR": env["TF_DIR"],
                    "BACKEND": env["BACKEND"],
                    # the phase's <env>.tfvars during the first apply phase by phase
                    # (a repository variable; empty: every environment)
                    "VAR_FILE": "${{ vars.DRIFT_VAR_FILE }}",
                    "OUTCOME_FILE": OUTCOME,
                    "SUMMARY_FILE": SUMMARY,
                },
                "run": script_body("drift-check.sh"),
            },
        ),
    ]


def _security_steps(ir: IR) -> list[dict[str, Any]]:
    if not security_review(ir):
        return []
    env = review_variables(ir)
    return [
        _only("security", aws_credentials(ir, github_roles(ir)["review"][1])),
        _only(
            "security",
            {
                "name": "Set up Python",
                "uses": uses_(ir, "actions/setup-python"),
                "with": {"python-version": "3.12"},
            },
        ),
        _only("security", {"name": "Install zizmor", "run": f"pip install zizmor=={ZIZMOR}"}),
        _only(
            "security",
            {
                "id": "security",
                "name": "Re-scan what each environment runs; zizmor on the workflows",
                "env": {**env, "OUTCOME_FILE": OUTCOME, "SUMMARY_FILE": SUMMARY},
                "run": script_body("security-review.sh"),
            },
        ),
    ]


def _report(ir: IR) -> list[dict[str, Any]]:
    """The audit row, as the review role (every step after the review, whatever it did;
    the channel hears from the caller's notify job, so no topic here)."""
    if not ir.deployments_table:
        return []
    return [
        {"if": "always()", **aws_credentials(ir, github_roles(ir)["review"][1])},
        {
            "name": "Record the review in the audit table",
            "if": "always()",
            "env": {
                "REVIEW": "${{ inputs.review }}",
                "TITLE": "${{ inputs.title }}",
                "OUTCOME_FILE": OUTCOME,
                "SUMMARY_FILE": SUMMARY,
                "RUN": RUN_ATTEMPT,
                "DEPLOYMENTS_TABLE": ir.deployments_table,
            },
            "run": script_body("review-report.sh"),
        },
    ]


def compliance_workflow(ir: IR) -> dict[str, Any]:
    """compliance.yml: the review its caller names, and its audit row."""
    reviews = ["drift", "security"] if security_review(ir) else ["drift"]
    # the step of the review that ran sets it (the other's is skipped: empty)
    outcome = " || ".join(f"steps.{r}.outputs.outcome" for r in reviews)
    inputs = {
        "review": {"type": "string", "required": True, "description": " | ".join(reviews)},
        "title": {"type": "string", "required": True},
        "artifact": {"type": "string", "required": True, "description": "the report's name"},
        "minutes": {"type": "number", "required": True},
    }
    job = {
        "name": "Review",
        "runs-on": RUNNER,
        "timeout-minutes": "${{ inputs.minutes }}",
        "permissions": permissions(**_PERMISSIONS),
        # the roles trust this file's jobs in this environment only (terraform/oidc.py)
        "environment": ENVIRONMENT,
        "outputs": {"outcome": f"${{{{ {outcome} }}}}"},
        "steps": [
            checkout(ir, ref=ir.default_branch),
            *_drift_steps(ir),
            *_security_steps(ir),
            *_report(ir),
            {
                "name": "Upload the report",
                "if": "always()",
                "uses": uses_(ir, "actions/upload-artifact"),
                "with": {
                    "name": "${{ inputs.artifact }}",
                    "path": "reports/",
                    "if-no-files-found": "ignore",
                    "retention-days": 30,
                },
            },
        ],
    }
    return {
        "name": "compliance review",
        "on": {
            "workflow_call": {
                "inputs": inputs,
                "outputs": {"outcome": {"value": "${{ jobs.review.outputs.outcome }}"}},
            }
        },
        "permissions": {},
        "jobs": {"review": job},
    }


def _caller(ir: IR, review: str, name: str, artifact: str, minutes: int) -> dict[str, Any]:
    return {
        "name": name,
        "permissions": permissions(**_PERMISSIONS),  # what the called job may ask for
        "uses": workflow_ref(ir, REUSABLE),
        "with": {
            "review": review,
            "title": titles(ir)[review],
            "artifact": artifact,
            "minutes": minutes,
        },
    }


def _notify(ir: IR, needs: str, text: str, condition: str) -> dict[str, Any]:
    return {
        "name": "Tell the channel",
        "needs": needs,
        "if": condition,
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": {},
        "environment": NOTIFY_ENVIRONMENT,
        "steps": [slack_step(ir, text)],
    }


def drift_workflow(ir: IR) -> dict[str, Any]:
    jobs: dict[str, Any] = {
        "drift": _caller(ir, "drift", "Terraform drift check", "drift-plan", 30)
    }
    if ir.notifications.slack_channel:
        jobs["notify"] = _notify(
            ir,
            "drift",
            f"{titles(ir)['drift']}: ${{{{ needs.drift.outputs.outcome || 'error' }}}} ({RUN_URL})",
            "${{ always() && needs.drift.outputs.outcome != 'clean' }}",
        )
    # local state: by hand only (the check says why it cannot run); S3 state: daily
    on: dict[str, Any] = {"workflow_dispatch": {}}
    if drift_scheduled(ir):
        on = {"schedule": [{"cron": DRIFT_SCHEDULE[0]}], **on}
    return {
        "name": "drift check",
        "on": on,
        "permissions": {},
        "concurrency": {"group": "drift", "cancel-in-progress": False},
        "jobs": jobs,
    }


def security_review_workflow(ir: IR) -> dict[str, Any]:
    scans = len(review_variables(ir)["IMAGES"].split())
    minutes = min(360, 15 + scans * ir.security.image_scan_timeout_minutes)
    jobs: dict[str, Any] = {
        "review": _caller(ir, "security", "Monthly security review", "security-review", minutes)
    }
    if ir.notifications.slack_channel:
        jobs["notify"] = _notify(
            ir,
            "review",
            f"{titles(ir)['security']}: ${{{{ needs.review.outputs.outcome || 'error' }}}} "
            f"({RUN_URL})",
            "${{ always() }}",
        )
    return {
        "name": "monthly security review",
        "on": {"schedule": [{"cron": REVIEW_SCHEDULE[0]}], "workflow_dispatch": {}},
        "permissions": {},
        "concurrency": {"group": "security-review", "cancel-in-progress": False},
        "jobs": jobs,
    }


def compliance_workflows(ir: IR) -> dict[str, dict[str, Any]]:
    """GitHub Actions delivery: the workflows of the two scheduled reviews."""
    if ir.delivery != "github-actions":
        return {}
    out = {REUSABLE: compliance_workflow(ir), "drift.yml": drift_workflow(ir)}
    if security_review(ir):
        out["security-review.yml"] = security_review_workflow(ir)
    return out


def describe(ir: IR) -> list[str]:
    if ir.delivery != "github-actions":
        return []
    return [
        f"GitHub environment '{ENVIRONMENT}' (compliance.yml, called by drift.yml and "
        "security-review.yml): deployment "
        f"branch {ir.default_branch} only, no secrets; its jobs alone assume "
        + " and ".join(name for name, _ in github_roles(ir).values())
    ]
