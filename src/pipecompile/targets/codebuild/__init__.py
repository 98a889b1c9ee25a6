"""AWS CodeBuild buildspecs (version 0.2).

  build-<service>.yml  CI (ci.steps, SonarQube, dependency check), then the image
                       built once per source tree (or reused), ECR scan gate,
                       signing; exports IMAGE_TAG, IMAGE_DIGEST and IMAGE_URI
  deploy-<env>.yml     verifies the signature, records the digest in the GitOps
                       repository, waits for a healthy rollout, writes the audit row
                       (the same scripts as the GitHub deploy job)
  dast-<env>.yml       ZAP against the DAST environment; a pass lets the digest on

Every value from pipeline.yaml reaches the shell through ``env.variables``.
"""

from __future__ import annotations

from typing import Any

from ...errors import Path_
from ...ir import BUILDSPEC_FOLDER, BUILDSPECS_GENERATED, IR, Environment, Service
from ...serialize.emit import yaml_document
from .. import Finding, data, gitops_required
from ..common import (
    CVSS,
    DEV_TAG_PREFIX,
    SONAR,
    ZAP_RISK,
    accepted_keys,
    scan_gate_env,
    script_body,
)

name = "codebuild"
delivery = "codepipeline"  # only CodePipeline runs buildspecs: not a default otherwise
default_folder = "ci/codebuild"  # under outputs: when the pipeline names no folder


def publishes(folder: str, enabled: bool) -> dict[str, str]:
    """Where the CodeBuild projects read the buildspecs (its default folder when this
    output is off: the user keeps them there), and whether they are generated."""
    return {BUILDSPEC_FOLDER: folder, **({BUILDSPECS_GENERATED: "yes"} if enabled else {})}


cost = 14  # ms to render per 1000 services (bench/bench.py); balances parallel rendering


def _runtimes() -> dict[str, Any]:
    table: dict[str, Any] = data("codebuild", "runtimes.json")
    return table


def _sh(script: str) -> str:
    """A packaged script as one buildspec command, in a subshell (its exits stay its own)."""
    return f"(\n{script_body(script)})"


def build_spec(ir: IR, svc: Service) -> dict[str, Any]:
    """CI first (steps, SonarQube, dependency check), then build once, scan, sign."""
    sec = ir.security
    variables: dict[str, str] = {
        "SERVICE": svc.name,
        "SERVICE_PATH": svc.path,
        "DOCKERFILE": svc.dockerfile,
        "ECR_REGISTRY": ir.aws.ecr_registry,
        "ECR_REPOSITORY": svc.image,
        "IMAGE_URI": svc.image_uri,
        "IMAGE_ENV": "/tmp/image.env",
    }
    secrets: dict[str, str] = {}
    key, fmt = _runtimes()["runtime_versions"][svc.runtime.language]
    ci = ['cd "$CODEBUILD_SRC_DIR/$SERVICE_PATH"'] + [s.run for s in svc.steps]
    ci.append('cd "$CODEBUILD_SRC_DIR"')
    if sec.sast_fail_on:
        variables.update(
            {
                "SONAR_SCANNER_IMAGE": ir.pins.sonar_scanner_image,
                "SONAR_PROJECT_KEY": f"{ir.project}_{svc.name}",
                "SONAR_SEVERITIES": SONAR[sec.sast_fail_on],
            }
        )
        secrets["SONAR_HOST_URL"] = f"{ir.aws.sonar_secret_name}:host_url"
        secrets["SONAR_TOKEN"] = f"{ir.aws.sonar_secret_name}:token"
        ci += [
            'docker run --rm -e SONAR_HOST_URL -e SONAR_TOKEN -v "$PWD/$SERVICE_PATH:/usr/src" '
            '"$SONAR_SCANNER_IMAGE" -Dsonar.projectKey="$SONAR_PROJECT_KEY" '
            "-Dsonar.qualitygate.wait=true",
            _sh("sonar-gate.sh"),
        ]
    if sec.dependencies_fail_on:
        variables.update(
            {
                "DEPENDENCY_CHECK_IMAGE": ir.pins.dependency_check_image,
                "DC_PROJECT": f"{ir.project}-{svc.name}",
                "FAIL_CVSS": CVSS[sec.dependencies_fail_on],
            }
        )
        # the NVD key from Secrets Manager (without one the update takes hours), and the
        # NVD data in the build cache (dependency-check.sh keeps it in ~/.dependency-check)
        secrets["NVD_API_KEY"] = f"{ir.aws.nvd_secret_name}:api_key"
        ci.append(_sh("dependency-check.sh"))
    build = [
        _sh("build-once.sh"),
        'set -a; . "$IMAGE_ENV"; set +a',
    ]
    if sec.image_scan_fail_on:
        variables.update(scan_gate_env(sec))
        build.append(_sh("ecr-scan-gate.sh"))
    # the dev tier's values; the release build projects' pipelines pass the release
    # tier's (TAG_PREFIX=rel, the release key): see the terraform target
    variables["TAG_PREFIX"] = DEV_TAG_PREFIX
    if sec.sign_images:
        variables["SIGNING_KEY"] = f"awskms:///{ir.aws.signing_key_alias}"
        build.append(_sh("sign-once.sh"))
        # an SBOM and a build provenance bound to the digest, signed with the same key
        variables["SYFT_IMAGE"] = ir.pins.syft_image
        variables["SOURCE_REPOSITORY"] = ir.repository
        build.append(
            'export BUILDER_ID="${CODEBUILD_BUILD_ARN%:*}" BUILD_INVOCATION="$CODEBUILD_BUILD_ARN" '
            'COMMIT="$CODEBUILD_RESOLVED_SOURCE_VERSION"'
        )
        build.append(_sh("attest.sh"))
    build.append(
        'printf \'{"service":"%s","imageUri":"%s","imageTag":"%s","imageDigest":"%s"}\\n\' '
        '"$SERVICE" "$IMAGE_URI" "$IMAGE_TAG" "$IMAGE_DIGEST" > "$CODEBUILD_SRC_DIR/image.json"'
    )
    phases: dict[str, Any] = {
        "install": {"runtime-versions": {key: fmt.format(v=svc.runtime.version)}},
        # CI gates the build: no image unless the steps and scanners pass
        "pre_build": {"on-failure": "ABORT", "commands": ci},
        "build": {"on-failure": "ABORT", "commands": build},
    }
    if sec.sign_images:
        phases["install"]["commands"] = [_sh("install-cosign.sh")]
        variables["COSIGN_VERSION"] = ir.pins.cosign_version
        variables["COSIGN_SHA256"] = ir.pins.cosign_sha256
    env: dict[str, Any] = {"shell": "bash", "variables": variables}
    if secrets:
        env["secrets-manager"] = secrets
    env["exported-variables"] = ["IMAGE_TAG", "IMAGE_DIGEST", "IMAGE_URI"]
    spec: dict[str, Any] = {
        "version": 0.2,
        "env": env,
        "phases": phases,
        "artifacts": {"files": ["image.json"]},
    }
    if sec.image_scan_fail_on:
        # The scan gate writes a JUnit report (one test case per severity) that
        # CodeBuild publishes to the report group <project>-ecr-image-scan.
        spec["reports"] = {
            "ecr-image-scan": {
                "files": ["ecr-image-scan.xml"],
                "base-directory": "reports",
                "file-format": "JUNITXML",
            }
        }
    if ir.build.cache != "none":
        paths = list(_runtimes()["cache_paths"][svc.runtime.language])
        if sec.dependencies_fail_on:
            paths.append("/root/.dependency-check/**/*")
        spec["cache"] = {"paths": paths}
    return spec


# What the pipeline's action configuration (1000 characters at most) need not carry: the
# repository is the image URI's path, the pipeline is named by CODEBUILD_INITIATOR
# ("codepipeline/<pipeline name>" when CodePipeline starts the build, CodeBuild docs).
_DERIVED = (
    'export ECR_REPOSITORY="${IMAGE_URI#*/}" PIPELINE_NAME="${CODEBUILD_INITIATOR#codepipeline/}"'
)


def deploy_spec(ir: IR, env: Environment) -> dict[str, Any]:
    """Verify, (promotion gate), record the digest, wait until healthy; audit row always.

    The pipeline's deploy action passes SERVICE, IMAGE_URI, IMAGE_TAG, IMAGE_DIGEST,
    GITOPS_DIR, CHART_SOURCE, VALUES_SOURCE, ARGOCD_APP, PIPELINE_EXECUTION_ID,
    WAIT_SECONDS (and PROMOTION when a person promotes).
    """
    g = ir.gitops
    variables = {
        "ENVIRONMENT": env.name,
        "GITOPS_AUTH": g.auth,
        "GITOPS_REPOSITORY": env.gitops_repository or "",
        "GITOPS_REVISION": env.gitops_revision,
        "OUTCOME_FILE": "/tmp/outcome",
    }
    secrets = {
        ir.gitops.credential: env.gitops_secret_name,
        "ARGOCD_SERVER": f"{env.argocd_secret_name}:server",
        "ARGOCD_AUTH_TOKEN": f"{env.argocd_secret_name}:token",
    }
    commands = [
        'test -n "${SERVICE:-}" && test -n "${IMAGE_TAG:-}" && test -n "${IMAGE_DIGEST:-}"',
        _DERIVED,
    ]
    phases: dict[str, Any] = {}
    if ir.security.sign_images:
        variables["SIGNING_KEYS"] = accepted_keys(ir, env)
        variables["COSIGN_VERSION"] = ir.pins.cosign_version
        variables["COSIGN_SHA256"] = ir.pins.cosign_sha256
        phases["install"] = {"commands": [_sh("install-cosign.sh")]}
        commands.append(_sh("verify-signature.sh"))
        commands.append(_sh("verify-attestations.sh"))  # SBOM and provenance, same keys
    dast = ir.security.dast
    if env.after_dast and dast is not None:
        variables["DAST_ENVIRONMENT"] = dast.environment
        commands.append(_sh("promotion-gate.sh"))
    if env.sync_window and env.sync == "automated":  # before anything is recorded
        commands.append(_sh("sync-window.sh"))
    commands += [_sh("gitops-record.sh"), _sh("wait-healthy.sh")]
    build: dict[str, Any] = {"commands": commands}
    if ir.deployments_table:
        variables["DEPLOYMENTS_TABLE"] = ir.deployments_table
        approver = (
            f'export APPROVER="$(\n{script_body("approver-codepipeline.sh")})"'
            if env.approval
            else 'export APPROVER="none (no approval)"'
        )
        build["finally"] = [
            approver,
            'export COMMIT="$CODEBUILD_RESOLVED_SOURCE_VERSION" RUN="$CODEBUILD_BUILD_ID"',
            'if [ "$CODEBUILD_BUILD_SUCCEEDING" = 1 ]; then export DEPLOY_STATUS=succeeded; '
            "else export DEPLOY_STATUS=failed; fi",
            _sh("audit-row.sh"),
        ]
    phases["build"] = build
    return {
        "version": 0.2,
        "env": {"shell": "bash", "variables": variables, "secrets-manager": secrets},
        "phases": phases,
    }


def dast_spec(ir: IR) -> dict[str, Any]:
    """ZAP against the DAST environment after a healthy deploy; a pass marks the digest."""
    dast = ir.security.dast
    assert dast is not None
    return {
        "version": 0.2,
        "env": {
            "shell": "bash",
            "variables": {
                "DAST_ENVIRONMENT": dast.environment,
                "DAST_URL": dast.url,
                "ZAP_IMAGE": ir.pins.zap_image,
                "ZAP_MIN_RISK": str(ZAP_RISK[dast.fail_on]),
            },
        },
        "phases": {
            "build": {
                "commands": [
                    'test -n "${IMAGE_URI:-}" && test -n "${IMAGE_DIGEST:-}"',
                    _DERIVED,
                    _sh("dast-scan.sh"),
                ]
            }
        },
        "artifacts": {"files": ["reports/**/*"]},
    }


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
            )
        )
    return out


def render(ir: IR) -> dict[str, str]:
    out = {}
    for svc in ir.services:
        out[svc.buildspec] = yaml_document(build_spec(ir, svc))
    for env in ir.environments:
        out[env.deploy_buildspec] = yaml_document(deploy_spec(ir, env))
    if ir.security.dast:
        out[ir.security.dast.buildspec] = yaml_document(dast_spec(ir))
    return out
