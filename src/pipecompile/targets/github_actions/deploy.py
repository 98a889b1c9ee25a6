"""deploy.yml: the plan's shared deploy as one reusable workflow (``workflow_call``).

Its job runs in the GitHub environment ``inputs.environment``: that environment's
reviewers gate it, its OIDC subject (``repo:<owner>/<name>:environment:<env>:ref:<the
caller's ref>:job_workflow_ref:<owner>/<name>/.github/workflows/deploy.yml@<ref>`` once
the repository's subject template is set, terraform/oidc.py) is the only one the
environment's role trusts, for runs on the environment's branches, and its secrets are
the ones it reads.

Where a plan parameter varies by environment only (the accepted keys, the switches of
the promotion gate or the sync window, the wait), deploy.yml holds the value for each
environment, keyed by ``inputs.environment`` (one place to review, and a caller cannot
pass another environment's role); where it varies by service, each caller passes it,
unless the plan derives it from other inputs by a naming rule of the IR (the image URI,
the Argo CD application, the GitOps folder, the values folder): deploy.yml computes those.
The order of the steps and when each runs are the plan's.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, DeployStage, PlanInput, PlanStep
from ..common import GH_DEPLOY, script_body
from .reusable import FACTS, NO_APPROVAL, STEP_IDS, ZAP, _expr, _run_step, _string, input_name
from .reusable import workflow_call as call_of
from .steps import (
    aws_credentials,
    checkout,
    install_cosign,
    permissions,
    slack_step,
    workflow_ref,
)

DEPLOY = GH_DEPLOY
ROLLBACK_STEP = "rollback"
DAST_URL_INPUT = "dast_url"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def by_environment(values: dict[str, str], number: bool = False) -> str:
    """An expression giving each environment its value (``values``: environment -> value,
    in promotion order). It fails closed: an environment it does not list gets "" (no
    role, no key), never another environment's value; a value that is "" itself needs no
    branch (GitHub's ``a && '' || b`` would give b). A number (the job's timeout) falls
    back to the last environment's."""
    groups: dict[str, list[str]] = {}
    for env, value in values.items():
        groups.setdefault(value, []).append(env)
    if len(groups) == 1 and (number or "" not in groups):
        return next(iter(groups))

    def cond(envs: list[str]) -> str:
        one = " || ".join(f"inputs.environment == {_quote(e)}" for e in envs)
        return f"({one})" if len(envs) > 1 else one

    if number:
        *head, last = groups
        parts = [f"{cond(groups[v])} && {v}" for v in head] + [last]
    else:
        parts = [f"{cond(envs)} && {_quote(v)}" for v, envs in groups.items() if v]
        parts.append("''")
    return _expr(" || ".join(parts))


# a deploy, not a manual rollback (rollback.yml passes a reason)
ROLLBACK_OFF = "inputs.rollback_reason == ''"


def _in_rollback(value: str, held: PlanInput) -> str:
    """``value``, or in a manual rollback the plan's rollback value of the input (only ""
    so far: GitHub's ``a && '' || b`` gives b, so the deploy's value takes the ``&&``)."""
    assert held.value == "", held  # a plan bug: a non-empty rollback value needs a new form
    inner = f"({value[3:-2].strip()})" if value.startswith("${{") else _quote(value)
    return _expr(f"{ROLLBACK_OFF} && {inner} || ''")


def _condition(envs: list[str]) -> str:
    return " || ".join(f"inputs.environment == {_quote(e)}" for e in envs)


class Deploy:
    """deploy.yml's view of the plan: what it looks up per environment, what callers pass."""

    def __init__(self, ir: IR) -> None:
        self.ir = ir
        self.stages = list(ir.plan.stages)
        self.scopes = dict(ir.plan.parameters)
        self.switches = {s.switch for s in ir.plan.deploy if s.switch}
        sources = {i.name: i.source for s in ir.plan.deploy for i in s.step.inputs}
        self.sources = sources
        # per environment: its role, the job's timeout, each parameter of environment scope
        first: dict[str, DeployStage] = {}  # each environment's first stage
        for st in self.stages:
            first.setdefault(st.environment, st)
        roles = {e: ir.environment(e).github_role_arn for e in first}
        self.lookups: dict[str, dict[str, str]] = {"ROLE": roles}
        # the job's timeout: the longest stage of the environment (as its CodeBuild project)
        timeouts: dict[str, int] = {}
        for st in self.stages:
            timeouts[st.environment] = max(timeouts.get(st.environment, 0), st.timeout_minutes)
        self.lookups["TIMEOUT_MINUTES"] = {env: str(t) for env, t in timeouts.items()}
        for name, scope in ir.plan.parameters:
            if scope == "environment" and (name in self.switches or sources.get(name) == "value"):
                # the same in every stage of an environment (the plan asserts it)
                self.lookups[name] = {e: ir.plan.value(st, name) for e, st in first.items()}
        # computed from the inputs by the plan's naming rules, never passed
        self.derived = dict(ir.plan.derived)
        dast = [s.environment for s in self.stages if s.dast]
        self.dast_environments = list(dict.fromkeys(dast))

    def passed(self) -> list[tuple[str, str]]:
        """(input, type) each caller passes besides environment, image_tag, image_digest."""
        out = []
        for name, _ in self.ir.plan.parameters:
            if name in self.lookups or name == "ENVIRONMENT" or name in self.derived:
                continue
            if name in self.switches:
                out.append((name, "boolean"))
            elif self.sources.get(name) == "value":
                out.append((name, "string"))
        return out

    def with_(self, stage: DeployStage) -> dict[str, Any]:
        """What a caller passes for ``stage``."""
        out: dict[str, Any] = {
            "environment": stage.environment,
            "image_tag": "${{ needs.build.outputs.tag }}",
            "image_digest": "${{ needs.build.outputs.digest }}",
        }
        if stage.dast:  # where DAST reaches this service (the plan's, per service)
            out[DAST_URL_INPUT] = stage.dast[0].value("DAST_URL")
        for name, kind in self.passed():
            value = self.ir.plan.value(stage, name)
            if kind == "boolean":
                if value == "true":
                    out[input_name(name)] = True
            elif value:
                out[input_name(name)] = value
        return out

    def value(self, name: str) -> str:
        """A parameter's value in deploy.yml: looked up, or the caller's input."""
        if name == "ENVIRONMENT":
            return _expr("inputs.environment")
        if name in self.lookups:
            return by_environment(self.lookups[name], number=name == "TIMEOUT_MINUTES")
        derived = self.ir.plan.derive(name, self.value)
        if derived is not None:
            return derived
        return _expr(f"inputs.{input_name(name)}")

    def switch(self, name: str) -> str:
        if name in self.lookups:
            return _condition([e for e, v in self.lookups[name].items() if v == "true"])
        return f"inputs.{input_name(name)}"

    def secrets(self) -> list[str]:
        ir = self.ir
        names = [i.name for s in ir.plan.deploy for i in s.step.inputs if i.source == "secret"]
        if "failed" in ir.notifications.slack_events and ir.secrets.slack_webhook:
            names.append(ir.secrets.slack_webhook)
        return list(dict.fromkeys(names))

    def grants(self) -> dict[str, str]:
        """What deploy.yml's jobs need: every caller grants it (a called job may ask no
        more than its caller granted, whether or not it runs)."""
        granted = {"id_token": "write"}
        if self.ir.chart_source:
            granted["contents"] = "read"
        if any(s.step.kind == "approver" for s in self.ir.plan.deploy):
            granted["actions"] = "read"  # the run's approvals: who approved this deploy
        return granted

    def _input(self, inp: PlanInput, approver: bool) -> str:
        if inp.source == "secret":
            return _expr(f"secrets.{inp.name}")
        if inp.source == "image":
            if self.ir.deployments_table:  # a manual rollback's digest, once resolved
                key = f"IMAGE_{inp.value.upper()}"
                return _expr(f"steps.{ROLLBACK_STEP}.outputs.{key} || inputs.image_{inp.value}")
            return _expr(f"inputs.image_{inp.value}")
        if inp.source == "run":
            if inp.value == "approver" and approver:
                # a stage without an approval skips the lookup: its output stays empty
                return _expr(f"steps.approver.outputs.approver || '{NO_APPROVAL}'")
            return NO_APPROVAL if inp.value == "approver" else FACTS[inp.value]
        if inp.name in self.scopes:
            return self.value(inp.name)
        return inp.value

    def _title(self, step: PlanStep) -> str:
        def value(name: str) -> str:
            if name in self.scopes or name == "ENVIRONMENT":
                return self.value(name)
            return step.value(name)

        return step.named(value)

    def steps(self) -> list[dict[str, Any]]:
        ir = self.ir
        approver = any(s.step.kind == "approver" for s in ir.plan.deploy)
        out: list[dict[str, Any]] = []
        # the plan's secrets (Slack's webhook is optional: without it, no message)
        needed = [n for n in self.secrets() if n != ir.secrets.slack_webhook]
        if needed:
            env = {"REQUIRED_SECRETS": " ".join(needed), "ENVIRONMENT": self.value("ENVIRONMENT")}
            env.update({f"SET_{n}": _expr(f"secrets.{n} != ''") for n in needed})
            out.append(
                {
                    "name": "Check this environment's secrets are set",
                    "env": env,
                    "run": script_body("require-secrets.sh"),
                }
            )
        if ir.chart_source:
            # the chart and values of the commit being delivered; a manual rollback that
            # takes neither (the plan's rollback inputs) checks nothing out
            source = checkout(ir)
            if ir.plan.in_rollback("CHART_SOURCE"):
                source = {"name": source["name"], "if": ROLLBACK_OFF, **source}
            out.append(source)
        # the environment's own role: only jobs of this GitHub environment can assume it
        out.append(aws_credentials(ir, self.value("ROLE")))
        if ir.deployments_table:
            out.append(self._rollback_step())
        if ir.security.sign_images:
            out.append(install_cosign(ir))
        for shared in ir.plan.deploy:
            step = shared.step
            env = {i.name: self._input(i, approver) for i in step.inputs}
            for name in list(env):
                if (held := ir.plan.in_rollback(name)) is not None:
                    env[name] = _in_rollback(env[name], held)
            condition = ["always()"] if step.when == "always" else []
            if shared.switch:
                condition.append(self.switch(shared.switch))
            extra: dict[str, Any] = {"name": self._title(step)}
            if len(condition) > 1:
                condition[1] = f"({condition[1]})" if "||" in condition[1] else condition[1]
            if condition:
                extra["if"] = " && ".join(condition)
            if step.kind == "approver":
                env = {"GITHUB_TOKEN": "${{ github.token }}", **env}
                extra["id"] = "approver"
            if step.kind == "audit" and ir.deployments_table:
                # a manual rollback's row: its reason, who ran it (GitHub's own record of
                # who started the run, never an input), and the commit of the deployment
                # it returned to (github.sha is the dispatching branch's head: never in a
                # rollback, even when that row has no commit: no commit, no link) with the
                # issue keys its row recorded (a rollback checks nothing out)
                env["ROLLBACK_REASON"] = "${{ inputs.rollback_reason }}"
                env["ACTOR"] = "${{ github.triggering_actor }}"
                if "COMMIT" in env:
                    # github.sha is never empty, so ``a && sha || commit`` is exact
                    env["COMMIT"] = (
                        "${{ inputs.rollback_reason == '' && github.sha || "
                        f"steps.{ROLLBACK_STEP}.outputs.ROLLBACK_COMMIT }}}}"
                    )
                    env["ISSUES"] = f"${{{{ steps.{ROLLBACK_STEP}.outputs.ROLLBACK_ISSUES }}}}"
            out.append(_run_step(step, env, **extra))
        if "failed" in ir.notifications.slack_events and ir.secrets.slack_webhook:
            # the digest this run deployed: a manual rollback's image_digest input is
            # "previous" (or the digest asked for); the rollback step resolved the real one
            digest = "inputs.image_digest"
            if ir.deployments_table:
                digest = f"steps.{ROLLBACK_STEP}.outputs.IMAGE_DIGEST || {digest}"
            text = (
                "Rollout of ${{ inputs.service }} to ${{ inputs.environment }} was ABORTED "
                f"and rolled back (${{{{ {digest} }}}})"
            )
            out.append(
                slack_step(ir, text, "failure() && steps.wait.outputs.outcome == 'rolled-back'")
            )
        return out

    def _rollback_step(self) -> dict[str, Any]:
        """A manual rollback (rollback.yml passes a reason, and ``previous`` or a digest as
        image_digest): the digest to return to, from this environment's audit rows (the
        deploy role reads only those); every later step deploys it."""
        return {
            "id": ROLLBACK_STEP,
            "name": "Find the digest to roll back to (manual rollback)",
            "if": "inputs.rollback_reason != ''",
            "env": {
                "DEPLOYMENTS_TABLE": self.ir.deployments_table,
                "SERVICE": "${{ inputs.service }}",
                "ENVIRONMENT": "${{ inputs.environment }}",
                "DIGEST": "${{ inputs.image_digest }}",
            },
            "run": script_body("rollback-resolve.sh"),
        }

    def dast_job(self) -> dict[str, Any]:
        """The plan's DAST of the DAST environment, after the deploy succeeded: zap.yml
        (the scan holds no token; the mark runs in the DAST's own GitHub environment)."""
        ir = self.ir
        condition = _condition(self.dast_environments)
        if ir.deployments_table:  # a manual rollback returns to a digest that passed once
            condition = f"inputs.rollback_reason == '' && ({condition})"
        return {
            "name": "OWASP ZAP scan of ${{ inputs.environment }}",
            "needs": "deploy",
            "if": condition,
            "permissions": permissions(id_token="write"),
            # one scan of a service's environment at a time; a running one finishes
            "concurrency": {
                "group": "dast-${{ inputs.service }}-${{ inputs.environment }}",
                "cancel-in-progress": False,
            },
            "uses": workflow_ref(ir, ZAP),
            "with": {
                "environment": "${{ inputs.environment }}",
                # the report's name; the mark checks the environment's newest deploy of it
                "service": self.value("SERVICE"),
                # each service's own address (its Ingress host): the caller passes it
                "url": "${{ inputs.dast_url }}",
                "ecr_repository": "${{ inputs.ecr_repository }}",
                "image_tag": "${{ inputs.image_tag }}",
                "image_digest": "${{ inputs.image_digest }}",
            },
        }


def deploy_workflow(ir: IR) -> dict[str, Any]:
    d = Deploy(ir)
    inputs: dict[str, dict[str, Any]] = {
        "environment": _string(),
        "image_tag": _string(),
        "image_digest": _string(),
    }
    if ir.deployments_table:  # rollback.yml's: why (the audit row records it)
        inputs["rollback_reason"] = _string(False)
    for name, kind in d.passed():
        if kind == "boolean":
            inputs[input_name(name)] = {"type": "boolean", "default": False}
        elif kind == "number":
            inputs[input_name(name)] = {"type": "number", "required": True}
        elif all(ir.plan.value(st, name) for st in d.stages):
            # every caller has a value for it: a caller that omits one fails actionlint
            inputs[input_name(name)] = _string()
        else:
            inputs[input_name(name)] = _string(False)
    jobs: dict[str, Any] = {
        "deploy": {
            "name": "Deploy ${{ inputs.service }} to ${{ inputs.environment }}",
            "runs-on": "ubuntu-24.04",
            "timeout-minutes": d.value("TIMEOUT_MINUTES"),
            "permissions": permissions(**d.grants()),
            # one deployment of a service to an environment at a time, whichever branch
            # pushed: a running one is never cancelled, the next waits (GitHub keeps the
            # newest waiting run, like CodePipeline's QUEUED mode keeps the order)
            "concurrency": {
                "group": "deploy-${{ inputs.service }}-${{ inputs.environment }}",
                "cancel-in-progress": False,
            },
            # its secrets are this environment's, its reviewers gate it, and the OIDC
            # subject names it and this file (terraform/oidc.py)
            "environment": "${{ inputs.environment }}",
            "steps": d.steps(),
        }
    }
    # the deploy's own classification (sync-window.sh, wait-healthy.sh): rollback.yml's
    # message says "sync window closed" rather than only "failure"
    kinds = [s.step.kind for s in ir.plan.deploy]
    ids = [STEP_IDS[k] for k in ("sync-window", "health-wait") if k in kinds]
    outputs: dict[str, str] = {}
    if ids and ir.deployments_table:
        found = " || ".join(f"steps.{i}.outputs.outcome" for i in ids)
        jobs["deploy"]["outputs"] = {"outcome": f"${{{{ {found} }}}}"}
        outputs["outcome"] = "${{ jobs.deploy.outputs.outcome }}"
    if d.dast_environments:
        # a DAST environment's callers pass it; zap.yml refuses an empty URL
        inputs[DAST_URL_INPUT] = _string(False)
        jobs["dast"] = d.dast_job()
    return {
        "name": "deploy",
        "on": call_of(inputs, d.secrets(), outputs),
        "permissions": {},
        "jobs": jobs,
    }
