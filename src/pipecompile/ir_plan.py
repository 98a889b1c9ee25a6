"""The deploy plan's types: part of the IR (:mod:`pipecompile.ir` re-exports them).

``frontend/plan.py`` lowers the plan once: per service its build, per service x
environment its deploy stage, each an ordered list of steps with their inputs and failure
semantics, and the one deploy every stage shares.  Each orchestrator renders it (the
GitHub Actions reusable workflows, the CodeBuild buildspecs and the CodePipeline
actions); none of them decides the order of the steps or when one runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

PlanStepKind = Literal[
    "build-once",
    "scan-gate",
    "verify-build",  # the signing session: the digest is this source tree's image
    "registry-login",  # cosign reads the registry's credentials from the docker config
    "sign",
    "attest",  # the build, after CI passed
    "verify-signature",
    "verify-attestations",
    "promotion-gate",
    "sync-window",
    "gitops-commit",
    "health-wait",
    "approver",
    "audit",  # each deploy
    "dast",
    "dast-mark",  # after a deploy to the DAST environment succeeded
]
# where an input's value comes from: the text itself; a secret ("<Secrets Manager id>[:key]",
# on GitHub the secret named like the input); the build's image ("tag", "digest"); a fact of
# the run ("commit", "run", "outcome-file", "deploy-status", "approver", "builder",
# "invocation"); or the build tier ("tag_prefix", "repository", ... of BuildTier)
InputSource = Literal["value", "secret", "image", "run", "tier"]
Scope = Literal["pipeline", "environment", "deployment"]  # what an input's value varies by


@dataclass(frozen=True, slots=True)
class PlanInput:
    """An environment variable a step's script reads (its header lists it)."""

    name: str
    value: str = ""
    source: InputSource = "value"


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step. A failing step stops its stage: later "success" steps are skipped,
    "always" steps (the audit row) still run, and the stage (the delivery of that
    service to that environment) fails."""

    kind: PlanStepKind
    title: str  # its name in the orchestrator's log; "{NAME}" stands for input NAME's value
    # (the script it runs is the targets' to name: targets/common.py STEP_SCRIPTS)
    inputs: tuple[PlanInput, ...] = ()
    when: Literal["success", "always"] = "success"

    def input(self, name: str) -> PlanInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    def value(self, name: str) -> str:
        """The value of input ``name``, "" where the step has none."""
        found = self.input(name)
        return found.value if found else ""

    def named(self, value: Callable[[str], str]) -> str:
        """The title with each "{NAME}" replaced by ``value(NAME)``."""
        return re.sub(r"\{([A-Z][A-Z0-9_]*)\}", lambda m: value(m[1]), self.title)


@dataclass(frozen=True, slots=True)
class BuildTier:
    """Who builds for which branches: a release tier build never reuses a dev image."""

    name: Literal["dev", "release"]
    branches: tuple[str, ...]  # the deploy branches that build in this tier
    tag_prefix: str
    repository: str  # the ECR repository it writes (release: the release repository)
    image_uri: str
    signing_key: str  # the KMS key URI it signs with ("" without signing)
    reuse_signed_by: str  # an existing image of the tag is reused only if it signed it


@dataclass(frozen=True, slots=True)
class BuildPlan:
    service: str
    steps: tuple[PlanStep, ...]  # after CI passed, in order; "tier" inputs follow the tier
    tiers: tuple[BuildTier, ...]  # dev first; release when an environment needs approval
    # what uses the tier's signing key, after the steps: where the build session runs the
    # branch's commands (CodeBuild: CI in the build project), a session of its own that
    # first checks the digest is the image of this source tree (verify-build), and the
    # only one that may sign; a job that runs none of the branch's commands may run them
    # after its build steps (less verify-build: it built the image itself)
    sign: tuple[PlanStep, ...] = ()


@dataclass(frozen=True, slots=True)
class DeployStage:
    """One service into one environment, after its build (and its approval)."""

    service: str
    environment: str
    approval: bool  # a person approves before any step runs
    steps: tuple[PlanStep, ...]
    timeout_minutes: int
    # the DAST environment: OWASP ZAP after the stage succeeded, on its own (no deploy
    # secrets, not in the audit row's outcome); a pass lets the digest on (promotion-gate)
    dast: tuple[PlanStep, ...] = ()
    # the plan's parameters as this stage has them (values and switches; the lowering
    # fills it): what a caller, a project or an action passes
    values: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def runs(self, kind: str) -> bool:
        return any(s.kind == kind for s in self.steps)


@dataclass(frozen=True, slots=True)
class SharedStep:
    """A step of the one deploy every stage runs (the reusable workflow, the buildspec):
    its inputs' values where every stage agrees, the parameters' names elsewhere."""

    step: PlanStep
    switch: str  # "" when every stage runs it, else the variable that turns it on


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    builds: tuple[BuildPlan, ...] = ()  # one per service, in the services' order
    stages: tuple[DeployStage, ...] = ()  # service-major, environments in promotion order
    deploy: tuple[SharedStep, ...] = ()  # the union of the stages' steps, in order
    # the inputs (and switches) whose values differ between stages, by what they vary
    parameters: tuple[tuple[str, Scope], ...] = ()
    tag_prefixes: tuple[tuple[str, str], ...] = ()  # (tier, the prefix of its image tags)
    # deployment parameters whose value is a fixed rule of the IR over other inputs:
    # (name, template; "{NAME}" stands for input NAME's value).  A target may compute
    # them where it has those inputs instead of passing them (every stage agrees).
    derived: tuple[tuple[str, str], ...] = ()
    # (service, environment) -> its stage, and service -> its build (the lowering fills
    # them: a thousand services look theirs up without a scan)
    by_stage: Mapping[tuple[str, str], DeployStage] = field(
        default_factory=dict, compare=False, repr=False
    )
    by_build: Mapping[str, BuildPlan] = field(default_factory=dict, compare=False, repr=False)
    # a manual rollback (with an audit table): the shared deploy again for a digest the
    # audit table shows ran, with these inputs' values instead of the deploy's.  It
    # restores a digest, never the chart or values of the branch it is started from
    # (CHART_SOURCE "": gitops-record.sh changes only image-<env>.yaml)
    rollback: tuple[PlanInput, ...] = ()

    def in_rollback(self, name: str) -> PlanInput | None:
        """Input ``name`` as a manual rollback sets it, None where it keeps the deploy's."""
        return next((i for i in self.rollback if i.name == name), None)

    def stage(self, service: str, environment: str) -> DeployStage:
        return self.by_stage[(service, environment)]

    def build(self, service: str) -> BuildPlan:
        return self.by_build[service]

    def derive(self, name: str, value: Callable[[str], str]) -> str | None:
        """``name``'s template with each "{NAME}" replaced by ``value(NAME)``; None when
        ``name`` is not derived."""
        template = dict(self.derived).get(name)
        if template is None:
            return None
        return re.sub(r"\{([A-Z][A-Z0-9_]*)\}", lambda m: value(m[1]), template)

    def value(self, stage: DeployStage, name: str) -> str:
        """What ``stage`` passes for the parameter ``name`` ("" where it has none)."""
        return stage.values.get(name, "")
