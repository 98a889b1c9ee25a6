"""The one deploy every stage shares (the second half of lowering the plan, after
:mod:`.plan` lowered each stage): the union of the stages' steps in the deploy order,
each input inlined where every stage agrees and a parameter (with the scope it varies
by, declared here) where they differ, each step some stages skip behind a switch
(``RUN_<STEP>``); the deployment parameters that follow the IR's naming rules; and each
stage's values of the parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .. import ir
from ..ir import DeployStage, PlanInput, PlanStep, SharedStep

# The order of a deploy: every stage runs a subsequence of it.
DEPLOY_ORDER: tuple[ir.PlanStepKind, ...] = (
    "registry-login",
    "verify-signature",
    "verify-attestations",
    "promotion-gate",
    "sync-window",  # before anything is recorded
    "gitops-commit",
    "health-wait",
    "approver",
    "audit",  # whatever happened
)


def switch(kind: str) -> str:
    """The variable that turns a step on where only some stages run it."""
    return "RUN_" + kind.upper().replace("-", "_")


# What each deploy input may vary by, declared (never guessed from the values: adding a
# service or an environment moves no input from one file to another).  Everything else
# is the pipeline's; secrets and switches are the environment's.
ENVIRONMENT_INPUTS = frozenset(
    ("ENVIRONMENT", "SIGNING_KEYS", "GITOPS_REPOSITORY", "GITOPS_REVISION")
)
DEPLOYMENT_INPUTS = frozenset(
    (
        "SERVICE",
        "ECR_REPOSITORY",
        "IMAGE_URI",
        "ARGOCD_APP",
        "GITOPS_DIR",
        "VALUES_SOURCE",
        "WAIT_SECONDS",
        "PROMOTION",
        "PROMOTION_WAIT_SECONDS",
    )
)


def _scope(name: str, source: str, values: dict[tuple[str, str], str]) -> ir.Scope:
    """``name``'s declared scope; its values must respect it (a plan bug otherwise)."""
    if name in DEPLOYMENT_INPUTS:
        return "deployment"
    if name in ENVIRONMENT_INPUTS or source == "secret" or name.startswith("RUN_"):
        by_env: dict[str, set[str]] = {}
        for (_, env), value in values.items():
            by_env.setdefault(env, set()).add(value)
        assert all(len(v) == 1 for v in by_env.values()), (name, by_env)
        return "environment"
    assert len(set(values.values())) <= 1, (name, values)
    return "pipeline"


def _shared(
    stages: tuple[DeployStage, ...],
) -> tuple[tuple[SharedStep, ...], list[tuple[str, ir.Scope]]]:
    """The one deploy every stage runs, and the parameters (with their scopes) where the
    stages differ.  One pass over the stages (a thousand services are 4000 of them)."""
    runs: dict[str, list[PlanStep]] = {}  # kind -> the stages' steps of that kind
    readers: dict[str, set[str]] = {}  # input name -> the step kinds that read it
    kinds_of: list[dict[str, dict[str, str]]] = []  # per stage: kind -> its inputs' values
    for st in stages:
        here: dict[str, dict[str, str]] = {}
        for step in st.steps:
            runs.setdefault(step.kind, []).append(step)
            here[step.kind] = {i.name: i.value for i in step.inputs}
            for i in step.inputs:
                readers.setdefault(i.name, set()).add(step.kind)
        kinds_of.append(here)

    def values(name: str) -> dict[tuple[str, str], str]:
        """``name``'s value in each stage that runs a step reading it ("" where a step of
        that kind goes without it)."""
        kinds = readers[name]
        out = {}
        for st, here in zip(stages, kinds_of, strict=True):
            found = {here[k].get(name, "") for k in kinds if k in here}
            if found:
                # one shell environment per deploy (the buildspec): one value per stage
                assert len(found) == 1, (st.service, st.environment, name, found)
                out[(st.service, st.environment)] = found.pop()
        return out

    shared: list[SharedStep] = []
    parameters: list[tuple[str, ir.Scope]] = []
    seen: dict[str, ir.Scope] = {}
    for kind in DEPLOY_ORDER:
        if kind not in runs:
            continue
        inputs: dict[str, PlanInput] = {}
        for step in runs[kind]:
            for i in step.inputs:
                inputs.setdefault(i.name, i)
        merged = []
        for name, first in inputs.items():
            scope = seen.get(name) or _scope(name, first.source, values(name))
            if name not in seen:
                seen[name] = scope
                if scope != "pipeline" and first.source in ("value", "secret"):
                    parameters.append((name, scope))
            merged.append(first if scope == "pipeline" else PlanInput(name, "", first.source))
        ran = {
            (st.service, st.environment): str(kind in here)
            for st, here in zip(stages, kinds_of, strict=True)
        }
        flag = "" if all(v == "True" for v in ran.values()) else switch(kind)
        if flag:
            parameters.append((flag, _scope(flag, "value", ran)))
        first_run = runs[kind][0]
        step = PlanStep(kind, first_run.title, tuple(merged), first_run.when)
        shared.append(SharedStep(step, flag))
    return tuple(shared), parameters


def _derived(
    model: ir.IR, stages: tuple[DeployStage, ...], parameters: list[tuple[str, ir.Scope]]
) -> tuple[tuple[str, str], ...]:
    """The deployment parameters that follow the IR's naming rules (ir.app_name, ...)
    from SERVICE, ENVIRONMENT and ECR_REPOSITORY, as templates made by those rules.
    Every stage's value must be its template's (a plan bug otherwise)."""
    rules = {
        "ARGOCD_APP": ir.app_name("{SERVICE}", "{ENVIRONMENT}"),
        "GITOPS_DIR": ir.gitops_dir(model.gitops.path, "{SERVICE}", "{ENVIRONMENT}"),
        "IMAGE_URI": ir.image_uri(model.aws.ecr_registry, "{ECR_REPOSITORY}"),
    }
    if model.service_values is not None:
        rules["VALUES_SOURCE"] = ir.values_source(model.service_values, "{SERVICE}")
    scoped = {name for name, scope in parameters if scope == "deployment"}
    out = tuple((n, t) for n, t in rules.items() if n in scoped)
    check = ir.DeliveryPlan(derived=out)
    for st in stages:
        known = {**st.values, "SERVICE": st.service, "ENVIRONMENT": st.environment}
        for name, _ in out:
            want = check.derive(name, lambda n: known.get(n, ""))  # noqa: B023 (used at once)
            assert st.values.get(name, "") == want, (st.service, st.environment, name, want)
    for svc in model.services:  # the build tiers' images follow the same rule
        for repository, uri in (
            (svc.image, svc.image_uri),
            (svc.release_image, svc.release_image_uri),
        ):
            assert uri == ir.image_uri(model.aws.ecr_registry, repository), (svc.name, uri)
    return out


def _with_values(
    stage: DeployStage, parameters: list[tuple[str, ir.Scope]], switches: Mapping[str, str]
) -> DeployStage:
    """``stage`` with the plan's parameters as it has them."""
    inputs = {i.name: i.value for step in stage.steps for i in step.inputs}
    values = {}
    for name, _ in parameters:
        if name in switches:
            values[name] = "true" if stage.runs(switches[name]) else "false"
        else:
            values[name] = inputs.get(name, "")
    return dataclasses.replace(stage, values=values)
