"""The deploy buildspec (deploy.yml: the plan's deploy for every environment, its manual
rollback and the audit row) and the DAST buildspec (dast.yml: ZAP; a pass marks the
digest)."""

from __future__ import annotations

import shlex
from typing import Any

from ...ir import IR, PlanStep, SharedStep
from ..common import STEP_SCRIPTS, rollback_notifies, script_body
from .shared import _derived, _sh

OUTCOME_FILE = "/tmp/outcome"
NO_APPROVAL = "none (no approval)"  # the audit row's approver where none was needed


def _guarded(switch: str, script: str) -> str:
    """A step only some environments run: its switch comes from the deploy project."""
    if not switch:
        return _sh(script)
    return f'if [ "${switch}" = true ]; then (\n{script_body(script)}); fi'


def _facts(step: PlanStep, approver: SharedStep | None) -> list[str]:
    """The run's facts the audit row reads, as CodeBuild knows them."""
    out = []
    if step.input("APPROVER"):
        out.append(f'export APPROVER="{NO_APPROVAL}"')
        if approver is not None:
            lookup = f'APPROVER="$(\n{script_body("approver-codepipeline.sh")})"'
            if approver.switch:
                lookup = f'if [ "${approver.switch}" = true ]; then {lookup}; fi'
            out.append(lookup)
    # a manual rollback (no source): the commit of the deployment it returned to, and the
    # issue keys its row recorded (no checkout holds that commit's message)
    out.append(
        'export COMMIT="${ROLLBACK_COMMIT:-${CODEBUILD_RESOLVED_SOURCE_VERSION:-}}" '
        'ISSUES="${ROLLBACK_ISSUES:-}" RUN="$CODEBUILD_BUILD_ID"'
    )
    # Without an outcome line the deploy never finished its wait (the wait is the build
    # phase's last command and writes one for every result, the window check one before
    # it): that is a failed deploy, whatever CODEBUILD_BUILD_SUCCEEDING says.  CodeBuild
    # documents the variable as "0 if the build is failing, or 1 if the build is
    # succeeding" (User Guide, build-env-ref-env-vars) but not when it changes inside a
    # phase, so this phase's ``finally`` must not read a success from it.
    out.append("export DEPLOY_STATUS=failed")
    return out


ROLLBACK_ENV = "/tmp/rollback.env"


def rollback_commands(ir: IR) -> list[str]:
    """A manual rollback (``explain --rollback``: a start-build of the environment's deploy
    project with ROLLBACK_REASON and DIGEST, no source): the digest from this
    environment's audit rows (rollback-resolve.sh, as the project's role), then the same
    deploy with the plan's rollback inputs (``DeliveryPlan.rollback``: CHART_SOURCE
    empty, so only the image file changes in GitOps, as on GitHub), and the audit row
    records the reason, who started the build and the commit the digest was built from.

    Who: CODEBUILD_INITIATOR, the identity that called StartBuild ("If an IAM user
    started the build, this is the user's name", CodeBuild User Guide,
    build-env-ref-env-vars.md), set before anything else, so an ACTOR override on the
    start-build never names someone else.  The commit: a NO_SOURCE build has no
    CODEBUILD_RESOLVED_SOURCE_VERSION, so the audit row takes ROLLBACK_COMMIT, the
    rolled-back-to deployment's commit from the audit table, and its issue keys
    ROLLBACK_ISSUES (an override of either is cleared first)."""
    resolve = script_body("rollback-resolve.sh")
    inputs = "".join(f" {i.name}={shlex.quote(i.value)}" for i in ir.plan.rollback)
    return [
        'export ACTOR="${CODEBUILD_INITIATOR:-unknown}"; '
        "unset ROLLBACK_COMMIT ROLLBACK_ISSUES COMMIT_MESSAGE; "
        f'[ -z "${{ROLLBACK_REASON:-}}" ] || (\nexport IMAGE_ENV={ROLLBACK_ENV}\n{resolve})',
        f"[ ! -f {ROLLBACK_ENV} ] || {{ set -a; . {ROLLBACK_ENV}; set +a; "
        + (f"export{inputs}; }}" if inputs else "}"),
    ]


def deploy_spec(ir: IR) -> dict[str, Any]:
    """The plan's shared deploy, for every environment: verify, (promotion gate), (sync
    window), record the digest, wait until healthy; the approver and the audit row always.

    The buildspec holds what every stage shares; each environment's deploy project
    (Terraform) sets what differs by environment (its switches, keys, secrets) and the
    pipeline's Deploy action what differs by service (codebuild_parameters).
    """
    plan = ir.plan
    variables: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for shared in plan.deploy:
        for i in shared.step.inputs:
            if i.value and i.source == "value":
                variables.setdefault(i.name, i.value)
            elif i.value and i.source == "secret":
                secrets.setdefault(i.name, i.value)
    variables["OUTCOME_FILE"] = OUTCOME_FILE
    # a switch is off unless the environment's deploy project turns it on: a project's
    # variable wins over the buildspec's, an action's over both ("The value in the
    # buildspec declaration takes lowest precedence", CodeBuild User Guide,
    # build-spec-ref.md, env/variables; awsdocs/aws-codebuild-user-guide 66cc3be)
    for shared in plan.deploy:
        if shared.switch:
            variables.setdefault(shared.switch, "false")
    passed = {i.name for s in plan.deploy for i in s.step.inputs}
    required = ["SERVICE", "ENVIRONMENT", "IMAGE_TAG", "IMAGE_DIGEST"]
    commands = [
        *(rollback_commands(ir) if ir.deployments_table else []),
        " && ".join(f'test -n "${{{name}:-}}"' for name in required if name in passed),
        _derived(passed),
    ]
    phases: dict[str, Any] = {}
    if ir.security.sign_images:
        variables["COSIGN_VERSION"] = ir.pins.cosign_version
        variables["COSIGN_SHA256"] = ir.pins.cosign_sha256
        # in the build phase, after the exports its finally block's facts read (ACTOR,
        # PIPELINE_NAME, ...), not in install: a failed install phase skips the build
        # phase and its finally block, so a failed download would leave no audit row
        # (CodeBuild User Guide, view-build-details-phases.md: only a BUILD failure goes
        # on to POST_BUILD and UPLOAD_ARTIFACTS; an INSTALL failure goes on to FINALIZING)
        commands.append(_sh("install-cosign.sh"))
    always: list[str] = []  # CodeBuild's finally: whatever happened before
    approver = next((s for s in plan.deploy if s.step.kind == "approver"), None)
    for shared in plan.deploy:
        step = shared.step
        if step.when != "always":
            commands.append(_guarded(shared.switch, STEP_SCRIPTS[step.kind]))
        elif step.kind != "approver":  # the approver: looked up for the audit row's facts
            always += _facts(step, approver)
            always.append(_guarded(shared.switch, STEP_SCRIPTS[step.kind]))
    if rollback_notifies(ir):
        # a manual rollback is no pipeline execution: no notification rule reports it
        variables["NOTIFY_EVENTS"] = " ".join(ir.notifications.sns_events)
        always.append(
            '[ -z "${ROLLBACK_REASON:-}" ] || [ -z "${TOPIC_ARN:-}" ] || '
            + _sh("rollback-notify.sh")
        )
    build: dict[str, Any] = {"commands": commands}
    if always:
        build["finally"] = always
    phases["build"] = build
    env: dict[str, Any] = {"shell": "bash", "variables": variables}
    if secrets:
        env["secrets-manager"] = secrets
    return {"version": 0.2, "env": env, "phases": phases}


def dast_spec(ir: IR) -> dict[str, Any]:
    """The plan's DAST after a healthy deploy: ZAP, and a pass marks the digest.  The DAST
    project (Terraform) sets DAST_ENVIRONMENT; the action the service's URL and image."""
    stages = [s for s in ir.plan.stages if s.dast]
    steps = stages[0].dast
    # what every DAST stage shares; the image comes from the action, the rest from the project
    values: dict[str, set[str]] = {}
    for stage in stages:
        for step in stage.dast:
            for i in step.inputs:
                if i.source == "value" and i.name not in DAST_PROJECT:
                    values.setdefault(i.name, set()).add(i.value)
    variables = {name: v.pop() for name, v in values.items() if len(v) == 1}
    return {
        "version": 0.2,
        "env": {"shell": "bash", "variables": variables},
        "phases": {
            "build": {
                "commands": [
                    " && ".join(
                        f'test -n "${{{n}:-}}"'
                        for n in ("DAST_ENVIRONMENT", "DAST_URL", "IMAGE_URI", "IMAGE_DIGEST")
                    ),
                    _derived({"ECR_REPOSITORY"}, pipeline=False),
                    *(_sh(STEP_SCRIPTS[step.kind]) for step in steps),
                ]
            }
        },
        "artifacts": {"files": ["reports/**/*"]},
    }


# set by the DAST project (Terraform, the environment it scans) or each pipeline's DAST
# action (the service's URL): never one value in the buildspec
DAST_PROJECT = ("DAST_ENVIRONMENT", "DAST_URL")
