"""deliver-<service>.yml (delivery: github-actions): the service's callers of the plan.

On a push to an environment's branches: route (which environments, which build tier),
the service's CI, its build (build.yml), then per environment of its plan a call of
deploy.yml with that stage's parameters and secrets, the DAST of the DAST environment
(zap.yml), and one Slack message for the run.  The order of the steps and when each
runs are the plan's (frontend/plan.py); this file only passes each stage its values.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, DeployStage, Service
from ...serialize.emit import Flow
from ..common import build_values
from .ci import CI, ci_file
from .deploy import DEPLOY, Deploy
from .environments import two_tiers
from .reusable import BUILD, NOTIFY, ROUTE, TIER_FIELDS, ZAP, input_name, notifies, tier_inputs
from .steps import NOTIFY_ENVIRONMENT, RUNNER, paths_filter, permissions, slack_step, workflow_ref
from .telemetry import METRICS, metrics_job

REUSABLE = (ROUTE, BUILD, DEPLOY, ZAP, NOTIFY, METRICS)


def deliver_file(svc: Service) -> str:
    """The service's delivery workflow (the caller of the reusable ones)."""
    return f"deliver-{svc.name}.yml"


RELEASE = "${{ needs.route.outputs.release == 'true' }}"  # a release-tier run


def _secrets(names: list[str]) -> dict[str, str]:
    return {name: f"${{{{ secrets.{name} }}}}" for name in names}


def _route_job(ir: IR, svc: Service) -> dict[str, Any]:
    job: dict[str, Any] = {"name": "Choose environments", "uses": workflow_ref(ir, ROUTE)}
    if "started" in ir.notifications.slack_events and ir.secrets.slack_webhook:
        job["with"] = {"service": svc.name}
        job["secrets"] = _secrets([ir.secrets.slack_webhook])
    return job


def _ci_job(ir: IR, svc: Service) -> dict[str, Any]:
    """The service's CI workflow, called: no image is built before it passes."""
    job: dict[str, Any] = {
        "name": f"CI of {svc.name}",
        "needs": "route",
        "if": "needs.route.outputs.any == 'true'",
        "permissions": permissions(contents="read"),
        "uses": workflow_ref(ir, ci_file(svc)),
    }
    if two_tiers(ir):  # a release build's CI runs in the release tier's environment
        job["with"] = {"release": RELEASE}
    names = [n for n in (ir.secrets.sonar_token, ir.secrets.sonar_host_url) if n]
    if ir.security.dependencies_fail_on:
        names.append("NVD_API_KEY")
    if names:
        job["secrets"] = _secrets(names)
    return job


def by_tier(values: dict[str, str]) -> str:
    """The release tier's value for a push to an approval environment's branch, else the
    dev tier's (release builds assume their own role, sign with the release key and tag
    rel-<tree>: a branch outside every approval environment can do none of the three)."""
    if len(values) == 1 or len(set(values.values())) == 1:
        return next(iter(values.values()))
    release, dev = values["release"], values["dev"]
    if not release:  # GitHub's a && '' || b would give b
        return f"${{{{ needs.route.outputs.release != 'true' && '{dev}' || '' }}}}"
    return f"${{{{ needs.route.outputs.release == 'true' && '{release}' || '{dev}' }}}}"


def _build_job(ir: IR, svc: Service) -> dict[str, Any]:
    build = ir.plan.build(svc.name)
    with_: dict[str, Any] = {"service": svc.name}
    if len(build.tiers) > 1:  # build.yml looks up the tier's role, prefix and keys
        with_["release"] = RELEASE
    with_ |= {
        "service_path": svc.path,
        "dockerfile": svc.dockerfile,
        "image_excludes": build_values(ir, svc)["IMAGE_EXCLUDES"],
    }
    for name in tier_inputs(ir):
        field = TIER_FIELDS[name]
        with_[input_name(name)] = by_tier({t.name: getattr(t, field) for t in build.tiers})
    return {
        "name": f"Build {svc.name}",
        "needs": Flow(["route", "ci"]),
        "if": "needs.route.outputs.any == 'true'",
        "permissions": permissions(contents="read", id_token="write"),
        "uses": workflow_ref(ir, BUILD),
        "with": with_,
    }


def _deploy_job(ir: IR, d: Deploy, stage: DeployStage, needs: list[str]) -> dict[str, Any]:
    return {
        "name": f"Deploy {stage.service} to {stage.environment}",
        "needs": Flow(needs),
        "if": f"needs.route.outputs.{stage.environment} == 'true'",
        "permissions": permissions(**d.grants()),
        "uses": workflow_ref(ir, DEPLOY),
        "with": d.with_(stage),
        "secrets": _secrets(d.secrets()),
    }


def _slack_job(ir: IR, name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        **extra,
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": {},
        "environment": NOTIFY_ENVIRONMENT,  # the webhook is a secret of that environment
        "steps": steps,
    }


def _notify_job(ir: IR, svc: Service, needs: list[str]) -> dict[str, Any]:
    """One message for the run (notify.yml): succeeded only if every job succeeded."""
    assert ir.secrets.slack_webhook
    return {
        "name": "Notify",
        "needs": Flow(needs),
        "if": "${{ always() && needs.route.outputs.any == 'true' }}",
        "uses": workflow_ref(ir, NOTIFY),
        "with": {
            "service": svc.name,
            "failed": "${{ contains(needs.*.result, 'failure') }}",
            "cancelled": "${{ contains(needs.*.result, 'cancelled') }}",
            **({"release": RELEASE} if two_tiers(ir) else {}),
        },
        "secrets": _secrets([ir.secrets.slack_webhook]),
    }


def deliver_workflow(ir: IR, svc: Service, d: Deploy | None = None) -> dict[str, Any]:
    """``d``: deploy.yml's view of the plan, once for every service's caller."""
    jobs: dict[str, Any] = {
        "route": _route_job(ir, svc),
        "ci": _ci_job(ir, svc),
        "build": _build_job(ir, svc),
    }
    d = d or Deploy(ir)
    deploys: list[str] = []
    for dep in svc.deployments:
        stage = ir.plan.stage(svc.name, dep.environment)
        env = stage.environment
        needs = ["route", "build"]
        if stage.approval and "approval-needed" in ir.notifications.slack_events:
            text = f"Approval needed: deploy {svc.name} to {env} (${{{{ github.sha }}}})"
            jobs[f"ask-{env}"] = _slack_job(
                ir,
                f"Ask for approval to deploy {svc.name} to {env}",
                [slack_step(ir, text)],
                needs=["route", "build"],
                **{"if": f"needs.route.outputs.{env} == 'true'"},
            )
            needs.append(f"ask-{env}")
        jobs[f"deploy-{env}"] = _deploy_job(ir, d, stage, needs)
        deploys.append(f"deploy-{env}")
    jobs["metrics"] = metrics_job(ir, svc, jobs, deploys)  # CloudWatch (telemetry.py)
    if notifies(ir):
        jobs["notify"] = _notify_job(ir, svc, ["route", "ci", "build", *deploys])
    workflows = (deliver_file(svc), ci_file(svc), CI, *REUSABLE)
    return {
        "name": f"deliver / {svc.name}",
        "on": {
            "push": {
                "branches": list(ir.deploy_branches),
                **paths_filter(ir, svc, *workflows),
            }
        },
        # one run per commit: a group per branch would hold every later push while a
        # production approval is pending (and GitHub keeps only the newest waiting run);
        # each deploy job has its own group per service x environment
        "permissions": {},
        "concurrency": {
            "group": f"deliver-{svc.name}-${{{{ github.sha }}}}",
            "cancel-in-progress": False,
        },
        "jobs": jobs,
    }
