"""The compliance jobs on GitHub Actions delivery (issue 29, item 4): drift.yml and
security-review.yml, scheduled workflows running the scripts the CodeBuild projects run
on CodePipeline delivery (targets/compliance.py holds what both share).

Their jobs run in the GitHub environment ``compliance``, the only subject the two roles
trust: the drift check assumes the read-only role for init and plan, then the review
role to write the audit row; the security review assumes the review role.  A drift, an
error or the monthly review's result reaches Slack from a job in the ``notifications``
environment, where the webhook lives.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR
from ..common import ZIZMOR, script_body
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
from .steps import NOTIFY_ENVIRONMENT, RUNNER, aws_credentials, checkout, permissions, slack_step
from .steps import uses as uses_

RUN_URL = "${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}"
# the audit row's run: a re-run attempt is a run of its own (the row key holds it)
RUN_ATTEMPT = RUN_URL + "/attempts/${{ github.run_attempt }}"
OUTCOME = "${{ runner.temp }}/review-outcome"
SUMMARY = "${{ runner.temp }}/review-summary"


def _report(ir: IR, review: str, post_clean: bool) -> list[dict[str, Any]]:
    """The audit row, as the review role (every step after the review, whatever it did)."""
    if not ir.deployments_table:
        return []
    return [
        {"if": "always()", **aws_credentials(ir, github_roles(ir)["review"][1])},
        {
            "name": "Record the review in the audit table",
            "if": "always()",
            "env": {
                "REVIEW": review,
                "TITLE": titles(ir)[review],
                "OUTCOME_FILE": OUTCOME,
                "SUMMARY_FILE": SUMMARY,
                "RUN": RUN_ATTEMPT,
                "DEPLOYMENTS_TABLE": ir.deployments_table,
                "POST_CLEAN": "true" if post_clean else "false",
            },
            "run": script_body("review-report.sh"),
        },
    ]


def _upload(ir: IR, name: str) -> dict[str, Any]:
    return {
        "name": "Upload the report",
        "if": "always()",
        "uses": uses_(ir, "actions/upload-artifact"),
        "with": {
            "name": name,
            "path": "reports/",
            "if-no-files-found": "ignore",
            "retention-days": 30,
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


def _job(ir: IR, name: str, minutes: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "runs-on": RUNNER,
        "timeout-minutes": minutes,
        "permissions": permissions(contents="read", id_token="write"),
        # the roles trust this environment's subject only (repo:<repo>:environment:...)
        "environment": ENVIRONMENT,
        "outputs": {"outcome": "${{ steps.review.outputs.outcome }}"},
        "steps": steps,
    }


def drift_workflow(ir: IR) -> dict[str, Any]:
    drift = github_roles(ir)["drift"][1]
    env = drift_variables(ir)
    steps: list[dict[str, Any]] = [
        checkout(ir, ref=ir.default_branch),
        aws_credentials(ir, drift),
        {
            "name": f"Install Terraform {env['TERRAFORM_VERSION']}",
            "env": {
                "TERRAFORM_VERSION": env["TERRAFORM_VERSION"],
                "TERRAFORM_SHA256": env["TERRAFORM_SHA256"],
                "BIN_DIR": "${{ runner.temp }}/bin",
            },
            "run": script_body("install-terraform.sh"),
        },
        {
            "id": "review",
            "name": "terraform plan -detailed-exitcode, read-only",
            "env": {
                "TF_DIR": env["TF_DIR"],
                "BACKEND": env["BACKEND"],
                "OUTCOME_FILE": OUTCOME,
                "SUMMARY_FILE": SUMMARY,
            },
            "run": script_body("drift-check.sh"),
        },
        *_report(ir, "drift", post_clean=False),
        _upload(ir, "drift-plan"),
    ]
    jobs: dict[str, Any] = {"drift": _job(ir, "Terraform drift check", 30, steps)}
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
    review = github_roles(ir)["review"][1]
    env = review_variables(ir)
    minutes = min(360, 15 + len(env["IMAGES"].split()) * ir.security.image_scan_timeout_minutes)
    steps: list[dict[str, Any]] = [
        checkout(ir, ref=ir.default_branch),
        aws_credentials(ir, review),
        {
            "name": "Set up Python",
            "uses": uses_(ir, "actions/setup-python"),
            "with": {"python-version": "3.12"},
        },
        {"name": "Install zizmor", "run": f"pip install zizmor=={ZIZMOR}"},
        {
            "id": "review",
            "name": "Re-scan what each environment runs; zizmor on the workflows",
            "env": {**env, "OUTCOME_FILE": OUTCOME, "SUMMARY_FILE": SUMMARY},
            "run": script_body("security-review.sh"),
        },
        *_report(ir, "security", post_clean=True),
        _upload(ir, "security-review"),
    ]
    jobs: dict[str, Any] = {"review": _job(ir, "Monthly security review", minutes, steps)}
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
    out = {"drift.yml": drift_workflow(ir)}
    if security_review(ir):
        out["security-review.yml"] = security_review_workflow(ir)
    return out


def describe(ir: IR) -> list[str]:
    if ir.delivery != "github-actions":
        return []
    return [
        f"GitHub environment '{ENVIRONMENT}' (drift.yml, security-review.yml): deployment "
        f"branch {ir.default_branch} only, no secrets; its jobs alone assume "
        + " and ".join(name for name, _ in github_roles(ir).values())
    ]
