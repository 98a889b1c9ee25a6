"""AWS CodeBuild buildspecs (version 0.2).

  build.yml            CI (ci.steps, SonarQube, dependency check), then the plan's
                       build: the image built once per source tree (or reused), ECR
                       scan gate; exports IMAGE_TAG, IMAGE_DIGEST, IMAGE_URI and
                       BUILD_ARN; one for every service: each build project sets its
                       service's values (common.BUILD_SERVICE_VARIABLES); no signing key
  sign.yml             the plan's signing, in a session that ran no branch code: the
                       digest is this source tree's image, sign, attest; one for both
                       tiers (each sign project sets its tier's key and tag prefix, the
                       pipeline's Sign action the service and the build's image)
  deploy.yml           the plan's deploy, for every environment: verify, record the
                       digest in the GitOps repository, wait for a healthy rollout,
                       write the audit row (the scripts of GitHub's deploy.yml)
  dast.yml             ZAP against the DAST environment; a pass marks the digest

Every value from pipeline.yaml reaches the shell through environment variables: the
buildspec's, the CodeBuild project's (Terraform) or the pipeline action's.

The modules: ``build`` (build.yml, sign.yml), ``deploy`` (deploy.yml, dast.yml),
``shared`` (what they share); this one holds the target's rules (check) and render.
"""

from __future__ import annotations

from ...errors import Path_
from ...ir import BUILDSPEC_FOLDER, BUILDSPECS_GENERATED, IR
from ...serialize.emit import yaml_document
from .. import Finding, gitops_required
from ..common import BUILD_BUILDSPEC, DAST_BUILDSPEC, DEPLOY_BUILDSPEC, SIGN_BUILDSPEC
from .build import build_spec, sign_spec
from .deploy import dast_spec, deploy_spec
from .shared import _runtimes

name = "codebuild"
delivery = "codepipeline"  # only CodePipeline runs buildspecs: not a default otherwise
default_folder = "ci/codebuild"  # under outputs: when the pipeline names no folder


def publishes(folder: str, enabled: bool) -> dict[str, str]:
    """Where the CodeBuild projects read the buildspecs (its default folder when this
    output is off: the user keeps them there), and whether they are generated."""
    return {BUILDSPEC_FOLDER: folder, **({BUILDSPECS_GENERATED: "yes"} if enabled else {})}


cost = 14  # ms to render per 1000 services (bench/bench.py); balances parallel rendering


def describe(ir: IR) -> list[str]:
    """Nothing of its own: the projects that run the buildspecs are terraform's."""
    return []


def check(ir: IR) -> list[Finding]:
    if ir.delivery != "codepipeline":
        return [
            Finding(
                ("outputs", name),
                f"delivery is {ir.delivery}: no CodePipeline runs CodeBuild buildspecs; "
                "remove this output, or set delivery: codepipeline",
                key=True,
                code="PC304",
            )
        ]
    return gitops_required(ir) + runtimes_available(ir)


def runtimes_available(ir: IR) -> list[Finding]:
    """Every runtime version is one the build image offers (runtime-versions naming any
    other fails the build's install phase: "Unknown runtime version")."""
    table = _runtimes()
    out: list[Finding] = []
    seen: set[Path_] = set()
    for svc in ir.services:
        lang, version = svc.runtime.language, svc.runtime.version
        key, fmt = table["runtime_versions"][lang]
        offered = table["available"][key]
        if fmt.format(v=version) in offered:
            continue
        own = svc.runtime != ir.runtime  # the service's own runtime, else ci.runtime
        where: Path_ = ("services", svc.name, "runtime", lang) if own else ("ci", "runtime", lang)
        if where in seen:
            continue
        seen.add(where)
        versions = ", ".join(f'"{v.removeprefix(fmt.split("{")[0])}"' for v in offered)
        out.append(
            Finding(
                where,
                f"{lang} {version} is not a runtime of {table['image']} (CodeBuild offers "
                f"{versions}); choose one of them",
                code="PC308",
            )
        )
    return out


def render(ir: IR) -> dict[str, str]:
    out = {}
    if ir.services:  # one build buildspec for every service
        out[BUILD_BUILDSPEC] = yaml_document(build_spec(ir))
    if ir.services and ir.plan.build(ir.services[0].name).sign:  # one for both tiers
        out[SIGN_BUILDSPEC] = yaml_document(sign_spec(ir))
    if ir.environments:  # one deploy buildspec for every environment
        out[DEPLOY_BUILDSPEC] = yaml_document(deploy_spec(ir))
    if ir.security.dast and any(s.dast for s in ir.plan.stages):
        out[DAST_BUILDSPEC] = yaml_document(dast_spec(ir))
    return out
