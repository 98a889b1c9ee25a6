"""GitHub Actions: per service a validation workflow and a delivery caller, reusable workflows.

Secure by construction: ``permissions: {}`` at the top and the least each
job needs; AWS through OIDC (``id-token: write`` only on jobs that assume the
role); every action pinned to a full commit SHA from the shipped pin table;
``persist-credentials: false`` on checkout; no value from pipeline.yaml and
no untrusted context is ever written into a ``run:`` script -- values reach
scripts through ``env:`` (the front end refuses ``${{`` in user text).

Files (relative to the github-actions output folder):
  ci-<service>.yml       on pull requests, and on push (delivery: codepipeline) or called
                         by deliver (github-actions): the service's call of ci.yml
  ci.yml                 reusable, for every service: runtime, ci.steps, SAST, SCA
  deliver-<service>.yml  delivery: github-actions only, the service's caller of the plan:
                         push to an environment's branches: route.yml, its CI, build.yml,
                         then deploy.yml per environment (its parameters and secrets),
                         notify.yml; no script in it
  route.yml build.yml    reusable (workflow_call), the same for every service: routing,
  deploy.yml             the plan's build, the plan's deploy (its job in the GitHub
  zap.yml notify.yml     environment inputs.environment; DAST after it), the Slack message
  pipecompile.yml        every pull request: pipecompile check and lint (the required check)
  review.yml             delivery: github-actions. Monthly: pipecompile check and lint (zizmor
                         auditor) on the default branch (CodePipeline: reviews.tf)
  dast.yml               scheduled OWASP ZAP scan of production (last environment) at its url
  drift.yml              delivery: github-actions. Daily (S3 state): terraform plan
                         -detailed-exitcode with the read-only role; drift alerts Slack
  security-review.yml    delivery: github-actions, with an audit table. Monthly: re-scan
                         the digests each environment runs, zizmor on the workflows
  compliance.yml         reusable, called by both: the review its caller names, its audit row
  rollback.yml           delivery: github-actions, with an audit table. workflow_dispatch: a
                         previous succeeded digest through deploy.yml, with a reason
  daily-summary.yml      and Slack: daily, the audit table's last 24 hours to the channel
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import Path_
from ...ir import IR
from ...serialize.emit import yaml_document
from .. import Finding, gitops_required
from ..common import GH_DEPLOY, GH_ZAP
from .ci import CI, ci_file, ci_reusable, ci_workflow
from .compliance import compliance_workflows
from .compliance import describe as describe_compliance
from .deliver import deliver_file, deliver_workflow
from .deploy import DEPLOY, Deploy, deploy_workflow
from .environments import describe as describe_environments
from .gates import CHECK_NAME, REVIEW_FILE, pipecompile_workflow, review_workflow
from .gates import FILE as GATE_FILE
from .operations import describe as describe_operations
from .operations import operations_workflows
from .reusable import (
    BUILD,
    NOTIFY,
    ROUTE,
    ZAP,
    build_workflow,
    dast_steps,
    notifies,
    notify_workflow,
    route_workflow,
    zap_workflow,
)
from .steps import cost as cost  # the target's attributes, re-exported for the registry
from .steps import default_folder as default_folder
from .steps import name as name
from .steps import permissions, workflow_ref
from .telemetry import METRICS, metrics_workflow

delivers = "github-actions"  # it generates the delivery workflows (delivery: github-actions)

# Generated step name prefix -> the pipeline field that asked for it (lint maps
# checker findings home with it; keep it next to the step names it reads).
STEP_ORIGINS: tuple[tuple[str, Path_], ...] = (
    ("SonarQube", ("security", "sast")),
    ("Fail on SonarQube", ("security", "sast")),
    ("OWASP dependency check", ("security", "dependencies")),
    ("Wait for the ECR scan", ("security", "image_scan")),
    ("Install cosign", ("security", "sign_images")),
    ("Sign the image", ("security", "sign_images")),
    ("Verify the image signature", ("security", "sign_images")),
    ("OWASP ZAP", ("security", "dast")),
    ("Promote only what passed DAST", ("security", "dast")),
    ("Notify Slack", ("notifications", "slack")),
    ("Find who to alert", ("notifications", "slack", "users")),
    ("Record the new image digest", ("gitops", "repository")),
    ("Wait until Argo CD", ("gitops",)),
    ("Write the audit row", ("audit", "deployments_table")),
    ("Look up who approved", ("environments",)),
    ("Build the image", ("services",)),
    ("Set up ", ("ci", "runtime")),
)


def origin(job: str | None, step: str | None) -> Path_ | None:
    """The pipeline field behind a generated step (by its name) or job (by its id): how
    ``pipecompile lint`` maps a checker's finding in a workflow home.  The step names
    and job ids are this target's own, so the mapping lives here."""
    if step is not None:
        return next((field for prefix, field in STEP_ORIGINS if step.startswith(prefix)), None)
    return job_origin(job) if job else None


def job_origin(job_id: str) -> Path_ | None:
    """The pipeline field behind a generated job."""
    for prefix in ("deploy-", "ask-"):
        if job_id.startswith(prefix):
            return ("environments", job_id.removeprefix(prefix))
    return {
        "build": ("services",),
        "ci": ("ci",),
        "validate": ("ci",),
        "route": ("environments",),
        "notify": ("notifications", "slack"),
        "zap": ("security", "dast"),
    }.get(job_id)


# GitHub evaluates ${{ ... }} in almost every string of a workflow.
EXPRESSION = re.compile(r"\$\{\{")


def check(ir: IR) -> list[Finding]:
    """The GitOps repository (when it delivers), and no ``${{`` in any user string."""
    out = gitops_required(ir) if ir.delivery == "github-actions" else []
    for path, text in ir.texts:
        if EXPRESSION.search(text):
            out.append(
                Finding(
                    path,
                    "contains '${{', which GitHub Actions would evaluate as an "
                    "expression; read values from environment variables instead "
                    '(e.g. "$GITHUB_HEAD_REF", "$MY_TOKEN" set from a secret)',
                    code="PC303",
                )
            )
    return out


def dast_workflow(ir: IR) -> dict[str, Any]:
    """The scheduled scan of production (1.2), zap.yml without a digest: one job for each
    service deployed there, at the service's own address under the environment's url (the
    first service's is the url itself); the gate itself runs after every deploy to the
    DAST environment."""
    dast = ir.security.dast
    assert dast is not None and dast.scheduled_environment and dast.scheduled_url
    env = dast.scheduled_environment
    jobs: dict[str, Any] = {}
    for service, url in ir.scheduled_scans():
        jobs[f"zap-{service}"] = {
            "name": f"OWASP ZAP scan of {service} in {env}",
            # zap.yml's mark job (skipped: no digest) declares id-token: write
            "permissions": permissions(id_token="write") if ir.delivery == "github-actions" else {},
            "uses": workflow_ref(ir, ZAP),
            "with": {"environment": env, "service": service, "url": url},
        }
    return {
        "name": f"dast / {env}",
        "on": {"schedule": [{"cron": dast.cron}], "workflow_dispatch": {}},
        "permissions": {},
        "concurrency": {"group": "dast", "cancel-in-progress": False},
        "jobs": jobs,
    }


def describe(ir: IR) -> list[str]:
    """What must exist on GitHub: environments, and the secrets each one holds (no
    repository secrets: every secret is scoped to the environment of the jobs that read it)."""
    s = ir.secrets
    out = describe_environments(ir)  # ci, ci-release, notifications(-dev): environments.py
    out.append(
        f"GitHub repository ruleset (once, and after a change of branches): "
        f"pipecompile explain --ruleset | gh api repos/{ir.repository}/rulesets --input - "
        f"(requires the check '{CHECK_NAME}' of {GATE_FILE}); and the ruleset that lets "
        f"only repository admins create an approval environment's branches (a push that "
        f"creates one runs the release tier): pipecompile explain --release-ruleset | gh api "
        f"repos/{ir.repository}/rulesets --input -"
    )
    delivers = ir.delivery == "github-actions"
    out += describe_compliance(ir)
    out += describe_operations(ir)  # rollback.yml, daily-summary.yml
    if s.slack_webhook and delivers:
        out.append(
            f"Slack: {s.slack_webhook} is the incoming webhook for {ir.notifications.slack_channel}"
        )
        if "failed" in ir.notifications.slack_events:
            out.append(
                f"Slack user mapping: a failed delivery mentions the pusher and the commit's "
                f"author; map GitHub logins to Slack member IDs in notifications.slack.users "
                f"({len(ir.notifications.slack_users)} mapped); others are named in plain text"
            )
    if delivers:
        for env in ir.environments:
            held = [x for x in (s.gitops_credential,) if x]
            held += ["ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN"]
            if s.slack_webhook and "failed" in ir.notifications.slack_events:
                held.append(s.slack_webhook)
            who = "required reviewers; " if env.approval else ""
            out.append(
                f"GitHub environment '{env.name}': {who}deployment branches "
                + ", ".join(env.branches)
                + "; secrets "
                + ", ".join(held)
                + f"; only its jobs of {GH_DEPLOY} assume IAM role {env.github_role_name}"
            )
        dast = ir.security.dast
        if dast is not None:
            out.append(
                f"GitHub environment '{dast.github_environment}' (the DAST job after each "
                f"{dast.environment} deploy): deployment branches as {dast.environment}'s, no "
                f"secrets; only its jobs of {GH_ZAP} assume IAM role {dast.github_role_name}"
            )
        out.append(
            "Deployment branch policies of these environments (a job on any other branch "
            "never starts there): pipecompile explain --environments (the GitHub REST "
            "requests, as JSON)"
        )
    return out


def render(ir: IR) -> dict[str, str]:
    out = {}
    delivers = ir.delivery == "github-actions"
    d = Deploy(ir) if delivers else None
    if ir.services:
        out[CI] = yaml_document(ci_reusable(ir))
    for svc in ir.services:
        out[ci_file(svc)] = yaml_document(ci_workflow(ir, svc))
        if d is not None:
            out[deliver_file(svc)] = yaml_document(deliver_workflow(ir, svc, d))
    if delivers and ir.services:
        out[ROUTE] = yaml_document(route_workflow(ir))
        out[BUILD] = yaml_document(build_workflow(ir))
        out[DEPLOY] = yaml_document(deploy_workflow(ir))
        out[METRICS] = yaml_document(metrics_workflow(ir))  # telemetry.py
        if notifies(ir):
            out[NOTIFY] = yaml_document(notify_workflow(ir))
    scheduled = ir.security.dast is not None and ir.security.dast.scheduled_url
    if dast_steps(ir) and (delivers or scheduled):
        out[ZAP] = yaml_document(zap_workflow(ir))
    out[GATE_FILE] = yaml_document(pipecompile_workflow(ir))
    if ir.delivery == "github-actions":  # CodePipeline delivery: reviews.tf's project
        out[REVIEW_FILE] = yaml_document(review_workflow(ir))
    if scheduled:
        out["dast.yml"] = yaml_document(dast_workflow(ir))
    for path, workflow in compliance_workflows(ir).items():  # drift check, security review
        out[path] = yaml_document(workflow)
    for path, workflow in operations_workflows(ir).items():  # manual rollback, daily summary
        out[path] = yaml_document(workflow)
    return out
