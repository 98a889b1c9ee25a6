"""The reusable workflows (``workflow_call``) every delivery calls: each script once.

  route.yml   which environments a push deploys to, and its build tier
  build.yml   build once (or reuse), scan gate, sign, attest: the plan's build steps
  deploy.yml  one service into one environment: the plan's shared deploy (deploy.py)
  zap.yml     OWASP ZAP against a URL; with a digest, a pass marks it (after a deploy to
              the DAST environment, and on the schedule of dast.yml)
  notify.yml  the run's one Slack message: succeeded, failed or cancelled

Every value reaches a script through ``env:``.  Secrets are passed by name (never
``secrets: inherit``) and declared in ``on.workflow_call.secrets``: a called job sees
only the secrets its caller passed, and a job of an environment reads that
environment's value of a passed name (actions/runner#1490: an environment's secret
that no caller passes stays empty in a reusable workflow).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, BuildPlan, PlanInput, PlanStep
from ..common import GH_BUILD, GH_ZAP, STEP_SCRIPTS, branch_regexes, script_body
from .environments import BUILD as BUILD_ENVIRONMENT
from .environments import BUILD_RELEASE, NOTIFY_DEV, by_release, two_tiers
from .steps import (
    NOTIFY_ENVIRONMENT,
    RUNNER,
    aws_credentials,
    checkout,
    env_key,
    install_cosign,
    permissions,
    slack_step,
    uses,
)
from .telemetry import MENTION, mention_step

ROUTE, BUILD, ZAP, NOTIFY = "route.yml", GH_BUILD, GH_ZAP, "notify.yml"

RUN_URL = "${{ github.server_url }}/${{ github.repository }}/actions/runs/${{ github.run_id }}"
# the plan's facts of a run, as GitHub Actions knows them
FACTS = {
    "commit": "${{ github.sha }}",
    "run": RUN_URL,
    "outcome-file": "${{ runner.temp }}/outcome",
    # the audit's outcome names (succeeded, failed, cancelled), never the runner's words
    "deploy-status": "${{ job.status == 'success' && 'succeeded' || "
    "job.status == 'cancelled' && 'cancelled' || 'failed' }}",
    # the workflow that built: build.yml's own ref (job.workflow_ref); github.workflow_ref
    # names the caller, deliver-<service>.yml, which builds nothing itself
    "builder": "${{ job.workflow_ref }}",
    "invocation": RUN_URL + "/attempts/${{ github.run_attempt }}",
}
STEP_IDS = {"build-once": "image", "sync-window": "window", "health-wait": "wait"}
NO_APPROVAL = "none (no approval)"


def input_name(variable: str) -> str:
    """A plan parameter's workflow input: its variable in lower case."""
    return variable.lower()


def _expr(text: str) -> str:
    return "${{ " + text + " }}"


def workflow_call(
    inputs: dict[str, dict[str, Any]], secrets: list[str], outputs: dict[str, str] | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"inputs": inputs} if inputs else {}
    if outputs:
        call["outputs"] = {k: {"value": v} for k, v in outputs.items()}
    if secrets:
        # optional: an environment's secret of that name wins in the environment's job,
        # but the caller's job, in no environment, maps it as "" (the caller must still
        # map it: actions/runner#1490), and a required secret given "" fails the call
        # before any job starts ("Secret X is required, but not provided while
        # calling", actions/runner#2709, #1500); deploy.yml's first step checks them
        call["secrets"] = {name: {"required": False} for name in secrets}
    return {"workflow_call": call}


def _string(required: bool = True) -> dict[str, Any]:
    return {"type": "string", "required": True} if required else {"type": "string", "default": ""}


# -- route.yml ------------------------------------------------------------------------------


def route_workflow(ir: IR) -> dict[str, Any]:
    env_vars: dict[str, str] = {
        "BRANCH": "${{ github.ref_name }}",
        "ENVIRONMENTS": " ".join(env.name for env in ir.environments),
        "RELEASE_ENVIRONMENTS": " ".join(env.name for env in ir.environments if env.approval),
    }
    outputs: dict[str, str] = {}
    for env in ir.environments:
        inc, exc = branch_regexes(env)
        env_vars[f"INCLUDE_{env_key(env.name)}"] = inc
        env_vars[f"EXCLUDE_{env_key(env.name)}"] = exc
        outputs[env.name] = f"${{{{ steps.route.outputs.{env.name} }}}}"
    outputs["any"] = "${{ steps.route.outputs.any }}"
    outputs["release"] = "${{ steps.route.outputs.release }}"
    steps: list[dict[str, Any]] = [
        {
            "id": "route",
            "name": "Match the branch against each environment's patterns",
            "env": env_vars,
            "run": script_body("route.sh"),
        }
    ]
    inputs: dict[str, dict[str, Any]] = {}
    secrets = []
    job: dict[str, Any] = {
        "name": "Choose environments",
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": {},
        "outputs": outputs,
        "steps": steps,
    }
    jobs: dict[str, Any] = {"route": job}
    if "started" in ir.notifications.slack_events and ir.secrets.slack_webhook:
        inputs["service"] = _string()
        secrets.append(ir.secrets.slack_webhook)
        started = "Delivery of ${{ inputs.service }} started for ${{ github.repository }} at "
        jobs["started"] = {
            "name": "Say it started",
            "needs": "route",
            "runs-on": RUNNER,
            "timeout-minutes": 5,
            "permissions": {},
            # the webhook is a secret of that environment: the tier's (environments.py)
            "environment": by_release(
                NOTIFY_ENVIRONMENT, "needs.route.outputs.release == 'true'", NOTIFY_DEV, ir
            ),
            "steps": [slack_step(ir, started + "${{ github.sha }}")],
        }
    return {
        "name": "route",
        "on": workflow_call(
            inputs, secrets, {k: f"${{{{ jobs.route.outputs.{k} }}}}" for k in outputs}
        ),
        "permissions": {},
        "jobs": jobs,
    }


# -- build.yml ------------------------------------------------------------------------------


def _build_value(ir: IR, inp: PlanInput) -> str:
    if inp.source == "tier":
        # the image URI follows from the repository (the plan's rule): never passed
        derived = ir.plan.derive(inp.name, lambda n: _expr(f"inputs.{input_name(n)}"))
        if derived is not None:
            return derived
        if inp.name in SERVICE_TIER_FIELDS:
            return _expr(f"inputs.{input_name(inp.name)}")
        tiers = ir.plan.builds[0].tiers  # the same for every service
        return tier_value({t.name: getattr(t, TIER_FIELDS[inp.name]) for t in tiers})
    if inp.source == "image":
        return _expr(f"steps.image.outputs.IMAGE_{inp.value.upper()}")
    if inp.source == "run":
        return FACTS[inp.value]
    return inp.value


# the build's tiered inputs: the BuildTier field each one reads
TIER_FIELDS = {
    "ECR_REPOSITORY": "repository",
    "IMAGE_URI": "image_uri",
    "TAG_PREFIX": "tag_prefix",
    "SIGNING_KEY": "signing_key",
    "REUSE_SIGNED_BY": "reuse_signed_by",
}
# the tier's values that are the service's (the rest are the tier's, the same for every
# service: build.yml holds them, keyed by inputs.release)
SERVICE_TIER_FIELDS = {"ECR_REPOSITORY"}


def tier_inputs(ir: IR) -> list[str]:
    """The build's inputs a tier decides that a caller passes (the service's repository
    of the tier), in first use; the image URI is derived from it."""
    names = [i.name for b in ir.plan.builds[:1] for s in job_steps(b) for i in s.inputs]
    return list(dict.fromkeys(n for n in names if n in SERVICE_TIER_FIELDS))


def job_steps(build: BuildPlan) -> tuple[PlanStep, ...]:
    """The build job's steps: the build's, then its signing, in the same job (its CI steps
    run in ci.yml's job, which holds no AWS role; the Dockerfile's commands run in docker
    build, which is given no credential); less verify-build, which checks what another
    session built (with signing, the scan gate is a signing step: it runs before the
    signature, as it did after the build)."""
    return build.steps + tuple(s for s in build.sign if s.kind != "verify-build")


def tier_value(values: dict[str, str]) -> str:
    """In build.yml: the release tier's value when the caller says ``release``, else the
    dev tier's (one tier: its value)."""
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    release, dev = values["release"], values["dev"]
    if not release:  # GitHub's a && '' || b would give b
        return _expr(f"!inputs.release && '{dev}' || ''")
    return _expr(f"inputs.release && '{release}' || '{dev}'")


def _run_step(step: PlanStep, env: dict[str, str], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": extra.pop("name", step.title)}
    if step.kind in STEP_IDS:
        out["id"] = STEP_IDS[step.kind]
    out.update(extra)
    out["env"] = env
    # the approver: each orchestrator asks its own
    out["run"] = script_body(STEP_SCRIPTS.get(step.kind, "approver-github.sh"))
    return out


def build_workflow(ir: IR) -> dict[str, Any]:
    """The plan's build steps, the same for every service: the service's values (its
    tier's repository chosen by the caller) come in as inputs, with ``release`` (the
    route's); the tier's own values (role, tag prefix, keys) are looked up here."""
    first = ir.plan.builds[0]
    inputs: dict[str, dict[str, Any]] = {"service": _string()}
    if len(first.tiers) > 1:
        inputs["release"] = {"type": "boolean", "required": False, "default": False}
    service_inputs = ["SERVICE_PATH", "DOCKERFILE", "IMAGE_EXCLUDES", *tier_inputs(ir)]
    for name in service_inputs:
        inputs[input_name(name)] = _string()
    roles = {"dev": ir.aws.github_build_role_arn, "release": ir.aws.github_release_role_arn}
    role = tier_value({t.name: roles[t.name] for t in first.tiers})
    steps: list[dict[str, Any]] = [checkout(ir), aws_credentials(ir, role)]
    sign = ir.security.sign_images
    if sign:
        # before the build: a release build reuses only a release-signed image
        steps.append(install_cosign(ir))
    for step in job_steps(first):
        env = {}
        for i in step.inputs:
            if i.name in service_inputs:
                env[i.name] = _expr(f"inputs.{input_name(i.name)}")
            else:
                env[i.name] = _build_value(ir, i)
        steps.append(_run_step(step, env))
    return {
        "name": "build",
        "on": workflow_call(
            inputs,
            [],
            {"tag": "${{ jobs.build.outputs.tag }}", "digest": "${{ jobs.build.outputs.digest }}"},
        ),
        "permissions": {},
        "jobs": {
            "build": {
                "name": "Build ${{ inputs.service }}",
                "runs-on": RUNNER,
                "timeout-minutes": ir.build.timeout_minutes,
                "permissions": permissions(contents="read", id_token="write"),
                # the tier's build role trusts only its environment's OIDC subject, and
                # the environment's deployment branch policy only the tier's branches
                "environment": tier_value(
                    {
                        t.name: BUILD_RELEASE if t.name == "release" else BUILD_ENVIRONMENT
                        for t in first.tiers
                    }
                ),
                "outputs": {
                    "tag": "${{ steps.image.outputs.IMAGE_TAG }}",
                    "digest": "${{ steps.image.outputs.IMAGE_DIGEST }}",
                },
                "steps": steps,
            }
        },
    }


# -- zap.yml --------------------------------------------------------------------------------


def dast_steps(ir: IR) -> tuple[PlanStep, ...]:
    """The plan's DAST steps (the scan, the mark), the same in every DAST stage."""
    return next((s.dast for s in ir.plan.stages if s.dast), ())


def zap_workflow(ir: IR) -> dict[str, Any]:
    """The plan's DAST: ZAP in a job without any token, then (given a digest) the marker
    a promotion gate looks for, in a job of the DAST's own GitHub environment (no deploy
    secret there) as the DAST role (it records a digest that passed in the promotions
    table: no image write, no signing key, no GitOps credential)."""
    dast = ir.security.dast
    assert dast is not None
    scan, mark = dast_steps(ir)
    inputs = {
        "environment": _string(),
        "service": _string(),  # whose URL it scans: the report's name, the mark's service
        "url": _string(),
        "ecr_repository": _string(False),
        "image_tag": _string(False),
        "image_digest": _string(False),
    }
    given = {
        "DAST_ENVIRONMENT": "${{ inputs.environment }}",
        "DAST_URL": "${{ inputs.url }}",
        "ECR_REPOSITORY": "${{ inputs.ecr_repository }}",
        "IMAGE_TAG": "${{ inputs.image_tag }}",
        "IMAGE_DIGEST": "${{ inputs.image_digest }}",
        "SERVICE": "${{ inputs.service }}",
    }

    def env(step: PlanStep) -> dict[str, str]:
        return {i.name: given.get(i.name, i.value) for i in step.inputs}

    title = _expr("inputs.environment")
    jobs: dict[str, Any] = {
        "scan": {
            "name": "OWASP ZAP scan of " + title,
            "runs-on": RUNNER,
            "timeout-minutes": 60,
            "permissions": {},
            "steps": [
                _run_step(scan, env(scan), name=scan.named(lambda n: title)),
                {
                    "name": "Upload the ZAP report",
                    "if": "always()",
                    "uses": uses(ir, "actions/upload-artifact"),
                    "with": {
                        "name": "zap-${{ inputs.environment }}-${{ inputs.service }}",
                        "path": "reports/",
                        "if-no-files-found": "ignore",
                        "retention-days": 30,
                    },
                },
            ],
        },
    }
    if ir.delivery == "github-actions":  # else only the scheduled scan calls it: no digest
        jobs["mark"] = {
            "name": f"{mark.title} in " + title,
            "needs": "scan",
            "if": "inputs.image_digest != ''",
            "runs-on": RUNNER,
            "timeout-minutes": 5,
            "permissions": permissions(id_token="write"),
            # the DAST role trusts only zap.yml's jobs in this environment (terraform/oidc.py)
            "environment": dast.github_environment,
            "steps": [aws_credentials(ir, dast.github_role_arn), _run_step(mark, env(mark))],
        }
    return {"name": "zap", "on": workflow_call(inputs, []), "permissions": {}, "jobs": jobs}


# -- notify.yml -----------------------------------------------------------------------------


def notify_workflow(ir: IR) -> dict[str, Any]:
    """One message for a delivery run: succeeded only if every job of it succeeded."""
    events = ir.notifications.slack_events
    sha = " (${{ github.sha }})"
    steps = []
    if "succeeded" in events:
        text = "Delivery of ${{ inputs.service }} succeeded: healthy in every environment it "
        steps.append(
            slack_step(ir, text + "targeted" + sha, "${{ !inputs.failed && !inputs.cancelled }}")
        )
    if "failed" in events:  # the people behind a failure mentioned (telemetry.py)
        steps += [
            mention_step(ir, "${{ inputs.failed }}"),
            slack_step(
                ir,
                "Delivery of ${{ inputs.service }} FAILED" + sha + " " + MENTION,
                "${{ inputs.failed }}",
            ),
            slack_step(
                ir,
                "Delivery of ${{ inputs.service }} was CANCELLED" + sha,
                "${{ inputs.cancelled && !inputs.failed }}",
            ),
        ]
    inputs = {
        "service": _string(),
        "failed": {"type": "boolean", "required": True},
        "cancelled": {"type": "boolean", "required": True},
    }
    if two_tiers(ir):  # absent: the feature tier's webhook
        inputs["release"] = {"type": "boolean", "default": False}
    return {
        "name": "notify",
        "on": workflow_call(inputs, [ir.secrets.slack_webhook or ""]),
        "permissions": {},
        "jobs": {
            "notify": {
                "name": "Notify",
                "runs-on": RUNNER,
                "timeout-minutes": 5,
                "permissions": {},
                # the webhook is a secret of that environment: the tier's (environments.py)
                "environment": by_release(NOTIFY_ENVIRONMENT, "inputs.release", NOTIFY_DEV, ir),
                "steps": steps,
            }
        },
    }


def notifies(ir: IR) -> bool:
    """Whether a delivery run ends with a Slack message (notify.yml)."""
    events = ir.notifications.slack_events
    return bool(ir.secrets.slack_webhook) and ("succeeded" in events or "failed" in events)
