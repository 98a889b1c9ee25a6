"""Lower the delivery once: the target-neutral deploy plan (issue 25).

Per service its build (build once, scan gate: after CI passed) and its signing (check
the digest is the source tree's image, sign, attest: with the tier's key), per
service x environment its deploy stage (verify, promotion gate, sync window, GitOps
commit, health wait, DAST, approver, audit row), each step with the inputs its script
reads and when it runs (:mod:`pipecompile.ir_plan` says what a failure does).  Then the
one deploy every stage shares: the union of the stages' steps in this order, each input
inlined where every stage agrees and a parameter (with the scope it varies by) where
they differ, each step some stages skip behind a switch.  Both orchestrators render
this: the GitHub Actions reusable deploy workflow and its callers, the CodeBuild deploy
buildspec, the CodePipeline actions and the deploy projects' variables.

The contracts both sides read are defined here, once: the tag prefix of each build
tier, the KMS key URIs and every input's name (the names the scripts' headers list, and
that Terraform passes to CodeBuild); the switch variables (``RUN_<STEP>``) and each
input's scope with the shared deploy, in :mod:`.plan_shared`.
Lowering knows no target: nothing here names a file, a job or a resource.
"""

from __future__ import annotations

import json
from functools import lru_cache

from .. import ir
from ..ir import BuildTier, DeployStage, PlanInput, PlanStep
from .plan_shared import _derived, _shared, _with_values

# The image tag prefix of each build tier (see "Who can deploy" in the README): release
# builds (approval environments' branches) never reuse a dev build's image.
RELEASE_TAG_PREFIX = "rel"
DEV_TAG_PREFIX = "src"

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
# ZAP's riskcode for each severity of security.dast.fail_on (ZAP has no "critical": it
# counts as high); the scan fails on alerts at or above it.
ZAP_RISK = {"critical": 3, "high": 3, "medium": 2, "low": 1}


def key_uri(alias: str) -> str:
    """A KMS key as cosign names it: ``awskms:///alias/<name>``."""
    return f"awskms:///{alias}"


def severities_at_or_above(level: str) -> str:
    """``"high"`` -> ``"CRITICAL HIGH"`` (ECR finding severities that fail the gate)."""
    return " ".join(SEVERITIES[: SEVERITIES.index(level.upper()) + 1])


# Inputs are immutable: the stages share one object per (name, value), which keeps a
# thousand services' plan small (most values repeat in every stage).
@lru_cache(maxsize=65536)
def _v(name: str, value: str | int) -> PlanInput:
    return PlanInput(name, str(value))


@lru_cache(maxsize=256)
def _run(name: str, fact: str) -> PlanInput:
    return PlanInput(name, fact, "run")


@lru_cache(maxsize=256)
def _tier(name: str, field: str) -> PlanInput:
    return PlanInput(name, field, "tier")


IMAGE = (PlanInput("IMAGE_TAG", "tag", "image"), PlanInput("IMAGE_DIGEST", "digest", "image"))


def _login(model: ir.IR) -> PlanStep:
    """Log docker in to the registry: cosign (sign, verify) reads only the docker config,
    also in a job or build that pushed nothing."""
    registry = (_v("ECR_REGISTRY", model.aws.ecr_registry),)
    return PlanStep("registry-login", "Log in to the image registry", registry)


def _tiers(model: ir.IR, svc: ir.Service) -> tuple[BuildTier, ...]:
    sign = model.security.sign_images
    release_key = key_uri(model.aws.release_key_alias) if sign else ""
    dev_branches = tuple(b for b in model.deploy_branches if b not in model.release_branches)
    tiers = []
    if dev_branches or not model.release_branches:
        tiers.append(
            BuildTier(
                "dev",
                dev_branches,
                DEV_TAG_PREFIX,
                svc.image,
                svc.image_uri,
                key_uri(model.aws.signing_key_alias) if sign else "",
                "",
            )
        )
    if model.release_branches:
        tiers.append(
            BuildTier(
                "release",
                model.release_branches,
                RELEASE_TAG_PREFIX,
                svc.release_image,
                svc.release_image_uri,
                release_key,
                release_key,  # an existing rel- image is reused only when the release key signed it
            )
        )
    return tuple(tiers)


def image_excludes(model: ir.IR, svc: ir.Service) -> tuple[str, ...]:
    """What inside ``svc``'s folder does not go into its image, so the image key leaves it
    out (issue 26): the other services' folders, the folders pipecompile generates, the
    services' deploy values, its manifest and the pipeline file.  A values-only or
    workflow-only change then reuses the image that passed."""
    owned = [
        *(other.path for other in model.services if other.path != svc.path),
        *(folder for _, folder in model.outputs),
        *(other.values_source for other in model.services if other.values_source),
        ".pipecompile",
        model.pipeline_file,
    ]
    inside = {
        path
        for path in owned
        if path not in (".", svc.path) and (svc.path == "." or path.startswith(svc.path + "/"))
    }
    # a folder inside another excluded folder goes with it
    return tuple(
        p for p in sorted(inside) if not any(p.startswith(q + "/") for q in inside if q != p)
    )


def _build(model: ir.IR, svc: ir.Service) -> ir.BuildPlan:
    sec = model.security
    image = (_tier("ECR_REPOSITORY", "repository"), _tier("IMAGE_URI", "image_uri"), *IMAGE)
    once = [
        _v("SERVICE_PATH", svc.path),
        _v("DOCKERFILE", svc.dockerfile),
        _v("ECR_REGISTRY", model.aws.ecr_registry),
        *image[:2],
        _tier("TAG_PREFIX", "tag_prefix"),
        _v("IMAGE_EXCLUDES", json.dumps(list(image_excludes(model, svc)), separators=(",", ":"))),
    ]
    if sec.sign_images and model.release_branches:
        once.append(_tier("REUSE_SIGNED_BY", "reuse_signed_by"))
    title = "Build the image once per source tree, or reuse it"
    steps = [PlanStep("build-once", title, tuple(once))]
    scan_gate: list[PlanStep] = []
    if sec.image_scan_fail_on:
        scan = (
            _v("FAIL_SEVERITIES", severities_at_or_above(sec.image_scan_fail_on)),
            _v("SCAN_TYPE", sec.image_scanning),
            _v("SCAN_TIMEOUT_SECONDS", sec.image_scan_timeout_minutes * 60),
        )
        title = f"Wait for the ECR scan and fail at {sec.image_scan_fail_on}"
        scan_gate.append(PlanStep("scan-gate", title, image + scan))
        if not sec.sign_images:
            steps += scan_gate
    sign: list[PlanStep] = []
    if sec.sign_images:
        key = _tier("SIGNING_KEY", "signing_key")
        # the signing session trusts no output of the build session: the tag must be
        # this checkout's tree (the key build-once.sh computed), and the registry must
        # hold the digest at that tag
        keyed = ("SERVICE_PATH", "IMAGE_EXCLUDES", "TAG_PREFIX")
        check = (*image, *(i for i in once if i.name in keyed))
        title = "Check the digest is the image of this source tree"
        sign.append(PlanStep("verify-build", title, check))
        # then it reads the registry's findings for that digest itself, the only scan
        # gate: a build session that runs the branch's code could fake its result (a stub
        # aws in PATH); a job that signs where it built runs it before it signs too
        sign += scan_gate
        title = "Sign the image with the AWS KMS signing key"
        sign.append(_login(model))
        sign.append(PlanStep("sign", title, (*image, key)))
        attest = (
            _v("ECR_REGISTRY", model.aws.ecr_registry),
            key,
            _v("SYFT_IMAGE", model.pins.syft_image),
            _run("BUILDER_ID", "builder"),
            _run("BUILD_INVOCATION", "invocation"),
            _v("SOURCE_REPOSITORY", model.repository),
            _run("COMMIT", "commit"),
            _v("SERVICE_PATH", svc.path),
        )
        title = "Attest the SBOM and the build provenance of the digest"
        sign.append(PlanStep("attest", title, image + attest))
    return ir.BuildPlan(svc.name, tuple(steps), _tiers(model, svc), tuple(sign))


def _stage(model: ir.IR, svc: ir.Service, dep: ir.Deployment) -> DeployStage:
    env = model.environment(dep.environment)
    repository, uri = model.image_of(svc, env)
    image = (_v("ECR_REPOSITORY", repository), _v("IMAGE_URI", uri), *IMAGE)
    argocd = (
        PlanInput("ARGOCD_SERVER", f"{env.argocd_secret_name}:server", "secret"),
        PlanInput("ARGOCD_AUTH_TOKEN", f"{env.argocd_secret_name}:token", "secret"),
        _v("ARGOCD_APP", dep.app_name),
    )
    where = (_v("SERVICE", svc.name), _v("ENVIRONMENT", env.name))
    outcome = _run("OUTCOME_FILE", "outcome-file")
    steps: list[PlanStep] = []
    sec, dast = model.security, model.security.dast
    if sec.sign_images:
        keys = _v("SIGNING_KEYS", " ".join(env.accepted_keys))  # the lowering's
        steps.append(_login(model))
        verify: tuple[tuple[ir.PlanStepKind, str], ...] = (
            ("verify-signature", "Verify the image signature"),
            ("verify-attestations", "Verify the SBOM and provenance attestations"),
        )
        for kind, title in verify:
            steps.append(PlanStep(kind, title, (*image, keys)))
    if env.after_dast and dast is not None:
        title = "Promote only what passed DAST in {DAST_ENVIRONMENT}"
        gate = (
            *image,
            _v("DAST_ENVIRONMENT", dast.environment),
            _v("PROMOTIONS_TABLE", model.aws.promotions_table),
        )
        steps.append(PlanStep("promotion-gate", title, gate))
    if env.sync_window and env.sync == "automated":
        title = "Deploy only inside the sync window of {ENVIRONMENT}"
        window = (*argocd, where[1], outcome)
        steps.append(PlanStep("sync-window", title, window))
    g = model.gitops
    record = (
        _v("GITOPS_AUTH", g.auth),
        _v("GITOPS_REPOSITORY", env.gitops_repository or ""),
        _v("GITOPS_REVISION", env.gitops_revision),
        _v("GITOPS_DIR", dep.gitops_dir),
        _v("CHART_SOURCE", model.chart_source or ""),
        _v("VALUES_SOURCE", svc.values_source or ""),
        *where,
        *image,
        PlanInput(g.credential, env.gitops_secret_name, "secret"),
        outcome,  # recorded=true once GitOps holds the digest (audit-row.sh)
    )
    title = "Record the new image digest for {ENVIRONMENT} in the GitOps repository"
    steps.append(PlanStep("gitops-commit", title, record))
    manual = dep.strategy.kind == "blue-green" and not dep.strategy.auto_promote
    health = (
        *argocd,
        *where,
        IMAGE[1],
        _v("WAIT_SECONDS", dep.wait_minutes * 60),
        outcome,
        # a blue-green rollout a person promotes: paused at the preview is not a failure
        *(
            (
                _v("PROMOTION", "manual"),
                # how long a person may take to promote before the deploy reports it
                _v("PROMOTION_WAIT_SECONDS", dep.strategy.promotion_wait_seconds),
            )
            if manual
            else ()
        ),
    )
    title = "Wait until Argo CD reports {ARGOCD_APP} healthy"
    steps.append(PlanStep("health-wait", title, health))
    dast_steps: tuple[PlanStep, ...] = ()
    if env.dast and dast is not None:
        # its own stage after the deploy succeeded, without the deploy's secrets: the scan
        # needs no AWS access; a pass marks the digest for the promotion gate
        zap = (
            _v("DAST_ENVIRONMENT", env.name),
            # a blue-green rollout a person promotes is healthy while paused at the
            # preview: the new digest answers only at the preview host, so DAST scans that
            _v(
                "DAST_URL",
                ir.service_url(
                    dast.url, (dep.preview_host,) if manual and dep.preview_host else dep.hosts
                ),
            ),
            _v("ZAP_IMAGE", model.pins.zap_image),
            _v("ZAP_MIN_RISK", ZAP_RISK[dast.fail_on]),
        )
        title = "OWASP ZAP baseline scan of {DAST_ENVIRONMENT}; fail at " + dast.fail_on
        # what dast-mark.sh reads: never the image URI, so zap.yml (one for every
        # service) holds no service's image
        mark = (
            _v("DAST_ENVIRONMENT", env.name),
            _v("PROMOTIONS_TABLE", model.aws.promotions_table),
            image[0],
            *IMAGE,
            # it checks in the audit table that the environment runs the digest
            *(
                (_v("DEPLOYMENTS_TABLE", model.deployments_table), where[0])
                if model.deployments_table
                else ()
            ),
        )
        dast_steps = (
            PlanStep("dast", title, zap),
            PlanStep("dast-mark", "Mark the digest as passed", mark),
        )
    if model.deployments_table:
        if env.approval:  # who approved, for the audit row (each orchestrator asks its own)
            steps.append(PlanStep("approver", "Look up who approved", (where[1],), "always"))
        audit = (
            _v("DEPLOYMENTS_TABLE", model.deployments_table),
            *where,
            _run("COMMIT", "commit"),
            _v("REPOSITORY_URL", f"https://github.com/{model.repository}"),
            *image,
            _run("APPROVER", "approver"),  # who approved; "none (no approval)" without approval
            outcome,
            _run("DEPLOY_STATUS", "deploy-status"),
            _run("RUN", "run"),
        )
        steps.append(PlanStep("audit", "Write the audit row", audit, "always"))
    minutes = 15 + dep.wait_minutes
    return DeployStage(svc.name, env.name, env.approval, tuple(steps), minutes, dast_steps)


def lower_plan(model: ir.IR) -> ir.DeliveryPlan:
    """The plan of ``model`` (an IR without one yet)."""
    stages = tuple(_stage(model, svc, dep) for svc in model.services for dep in svc.deployments)
    deploy, parameters = _shared(stages)
    switches = {s.switch: s.step.kind for s in deploy if s.switch}
    stages = tuple(_with_values(st, parameters, switches) for st in stages)
    derived = _derived(model, stages, parameters)
    builds = tuple(_build(model, svc) for svc in model.services)
    return ir.DeliveryPlan(
        builds=builds,
        stages=stages,
        deploy=deploy,
        parameters=tuple(parameters),
        tag_prefixes=(("release", RELEASE_TAG_PREFIX), ("dev", DEV_TAG_PREFIX)),
        derived=derived,
        by_stage={(st.service, st.environment): st for st in stages},
        by_build={b.service: b for b in builds},
        rollback=_rollback(model),
    )


def _rollback(model: ir.IR) -> tuple[PlanInput, ...]:
    """What a manual rollback changes in the shared deploy, for both orchestrators: no
    chart and no values from a checkout (CHART_SOURCE empty), so its GitOps commit changes
    only the image file.  A rollback restores a digest that ran; the chart and values
    GitOps holds are the last deploy's, which its gates passed, while the branch it is
    started from (any branch the environment admits) may hold changes no deploy shipped."""
    if not model.deployments_table or not model.chart_source:
        return ()
    return (_v("CHART_SOURCE", ""),)
