"""The build buildspec (build.yml: CI, then the plan's build once per source tree and
its scan gate) and the sign buildspec (sign.yml: the plan's signing, in a session that
ran no branch code)."""

from __future__ import annotations

import shlex
from typing import Any

from ...ir import IR, PlanStep
from ..common import (
    BUILD_SERVICE_VARIABLES,
    CVSS,
    SONAR,
    STEP_SCRIPTS,
    build_project_variables,
    build_values,
    runtime_variable,
    runtime_version,
)
from .shared import _derived, _runtimes, _sh

# The plan's facts of a run, as CodeBuild knows them (its environment variables; the
# pipeline's name from CODEBUILD_INITIATOR, "codepipeline/<name>" when CodePipeline
# starts the build).
FACTS = {
    "commit": '"$CODEBUILD_RESOLVED_SOURCE_VERSION"',
    "run": '"$CODEBUILD_BUILD_ID"',
    # the build project's ARN (arn:...:project/<name>, CodeBuild's "Environment variables in
    # build environments"); the build ARN less its id would be arn:...:build/<name>
    "builder": '"$CODEBUILD_PROJECT_ARN"',
    "invocation": '"$CODEBUILD_BUILD_ARN"',
}


def _exports(step: PlanStep, done: set[str]) -> list[str]:
    """``export`` lines for the run facts ``step`` reads that no earlier step exported."""
    facts = [i for i in step.inputs if i.source == "run" and i.value in FACTS]
    new = [f"{i.name}={FACTS[i.value]}" for i in facts if i.name not in done]
    done.update(i.name for i in facts)
    return ["export " + " ".join(new)] if new else []


def _user_commands(ir: IR) -> list[str]:
    """Each distinct list of ci.steps once, in the services' order; a list only some
    services run is guarded by $SERVICE (the project's)."""
    blocks: dict[tuple[str, ...], list[str]] = {}
    for svc in ir.services:
        blocks.setdefault(tuple(s.run for s in svc.steps), []).append(svc.name)
    out: list[str] = []
    for runs, names in blocks.items():
        if len(blocks) == 1:
            out += runs
            continue
        cond = " || ".join(f'[ "$SERVICE" = {shlex.quote(n)} ]' for n in names)
        out += [f"if {cond}; then\n{run}\nfi" for run in runs]
    return out


def build_spec(ir: IR) -> dict[str, Any]:
    """CI first (steps, SonarQube, dependency check), then the plan's build steps (build
    once, scan gate, sign, attest), for every service: each service's build projects
    (Terraform) set its values (common.BUILD_SERVICE_VARIABLES), the release pipelines'
    actions the release tier's."""
    sec = ir.security
    variables: dict[str, str] = {"IMAGE_ENV": "/tmp/image.env"}
    secrets: dict[str, str] = {}
    first = ir.services[0]
    for name, value in build_values(ir, first).items():
        if name not in BUILD_SERVICE_VARIABLES:
            # the same for every service, or it would be declared per service
            assert all(build_values(ir, s).get(name) == value for s in ir.services), name
            variables[name] = value
    runtimes: dict[str, str] = {}
    for svc in ir.services:
        key = _runtimes()["runtime_versions"][svc.runtime.language][0]
        var = runtime_variable(svc.runtime.language)
        if var in build_project_variables(ir, svc):
            # the project's version (CodeBuild expands variables in runtime-versions,
            # build-spec-ref.md's ruby: "$MY_RUBY_VAR"); the first service's by default
            variables.setdefault(var, runtime_version(svc))
            runtimes.setdefault(key, f"${var}")
        else:
            runtimes.setdefault(key, runtime_version(svc))
    ci = ['cd "$CODEBUILD_SRC_DIR/$SERVICE_PATH"', *_user_commands(ir)]
    ci.append('cd "$CODEBUILD_SRC_DIR"')
    if sec.sast_fail_on:
        variables.update(
            {
                "SONAR_SCANNER_IMAGE": ir.pins.sonar_scanner_image,
                "SONAR_SEVERITIES": SONAR[sec.sast_fail_on],
            }
        )
        # SONAR_HOST_URL and SONAR_TOKEN come from each tier's build project (its own
        # secret, terraform/build_projects.py): CodeBuild reads every secrets-manager entry of
        # the buildspec with the project's role, and the release role may not read the
        # dev tier's token
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
                "FAIL_CVSS": CVSS[sec.dependencies_fail_on],
            }
        )
        # the NVD key from Secrets Manager (without one the update takes hours), and the
        # NVD data in the build cache (dependency-check.sh keeps it in ~/.dependency-check)
        secrets["NVD_API_KEY"] = f"{ir.aws.nvd_secret_name}:api_key"
        ci.append(_sh("dependency-check.sh"))
    # every service's values are its project's: the buildspec checks they came
    given = [n for n in BUILD_SERVICE_VARIABLES if n in build_values(ir, first)]
    checks = " && ".join(f'test -n "${{{n}:-}}"' for n in given)
    build: list[str] = []
    exported: set[str] = set()
    plan = ir.plan.build(first.name)
    kinds = [step.kind for step in plan.steps]  # every service's build runs the same steps
    assert all([s.kind for s in ir.plan.build(x.name).steps] == kinds for x in ir.services)
    for step in plan.steps:
        build += _exports(step, exported)
        build.append(_sh(STEP_SCRIPTS[step.kind]))
        if step.kind == "build-once":  # its outputs, for the steps after it
            build.append('set -a; . "$IMAGE_ENV"; set +a')
    if plan.sign:  # the sign action's provenance names this build
        build.append('export BUILD_ARN="$CODEBUILD_BUILD_ARN"')
    build.append(
        'printf \'{"service":"%s","imageUri":"%s","imageTag":"%s","imageDigest":"%s"}\\n\' '
        '"$SERVICE" "$IMAGE_URI" "$IMAGE_TAG" "$IMAGE_DIGEST" > "$CODEBUILD_SRC_DIR/image.json"'
    )
    phases: dict[str, Any] = {
        "install": {"runtime-versions": runtimes, "commands": [checks]},
        # CI gates the build: no image unless the steps and scanners pass
        "pre_build": {"on-failure": "ABORT", "commands": ci},
        "build": {"on-failure": "ABORT", "commands": build},
    }
    if any(s.input("REUSE_SIGNED_BY") for s in plan.steps):  # the release tier's check
        phases["install"]["commands"].append(_sh("install-cosign.sh"))
        variables["COSIGN_VERSION"] = ir.pins.cosign_version
        variables["COSIGN_SHA256"] = ir.pins.cosign_sha256
    env: dict[str, Any] = {"shell": "bash", "variables": variables}
    if secrets:
        env["secrets-manager"] = secrets
    env["exported-variables"] = ["IMAGE_TAG", "IMAGE_DIGEST", "IMAGE_URI"]
    if plan.sign:
        env["exported-variables"].append("BUILD_ARN")
    spec: dict[str, Any] = {
        "version": 0.2,
        "env": env,
        "phases": phases,
        "artifacts": {"files": ["image.json"]},
    }
    if "scan-gate" in kinds:  # with signing the sign project's (sign_spec)
        spec["reports"] = SCAN_REPORT
    if ir.build.cache != "none":
        paths: list[str] = []
        for svc in ir.services:  # every runtime's cache (a project caches what it wrote)
            paths += [p for p in _runtimes()["cache_paths"][svc.runtime.language] if p not in paths]
        if sec.dependencies_fail_on:
            paths.append("/root/.dependency-check/**/*")
        spec["cache"] = {"paths": paths}
    return spec


# set by each tier's sign project (Terraform): its key and its tags' prefix
SIGN_PROJECT = ("SIGNING_KEY", "TAG_PREFIX")
# passed by the pipeline's Sign action: the service's values and the run, none of them
# the build action's (CodePipeline pastes an exported variable into the EnvironmentVariables
# JSON as plain text: a quote in it adds variables; aws-cdk issues #8458, #31213)
SIGN_ACTION = (
    "IMAGE_URI",
    "SERVICE_PATH",
    "IMAGE_EXCLUDES",
    "BUILDER_ID",
    "BUILD_INVOCATION",
)
# what the sign project exports (the SignVariables namespace the later actions read),
# each checked by its pattern before it is exported
SIGN_EXPORTS = {"IMAGE_TAG": r"^[A-Za-z0-9_.-]{1,128}$", "IMAGE_DIGEST": r"^sha256:[0-9a-f]{64}$"}
# The scan gate writes a JUnit report (one test case per severity) that CodeBuild
# publishes to the report group <project>-ecr-image-scan.
SCAN_REPORT = {
    "ecr-image-scan": {
        "files": ["ecr-image-scan.xml"],
        "base-directory": "reports",
        "file-format": "JUNITXML",
    }
}
VERIFIED_IMAGE = "/tmp/verified-image"  # verify-build.sh's "<tag> <digest>"


def sign_spec(ir: IR) -> dict[str, Any]:
    """The plan's signing, for every service of both tiers, in a project whose buildspec
    Terraform holds and which runs none of the branch's commands: check the digest is
    the image of the pipeline's source tree (verify-build.sh, on the same clone the
    build had), log in, sign, attest.  Its project (Terraform, one per tier) sets the
    tier's key and tag prefix; the pipeline's Sign action the service's values and the
    pipeline's run.  It reads nothing the build exported: the tag is this tree's, the
    digest the registry's at that tag, both checked by pattern and exported (the later
    actions read them, never the build's)."""
    first = ir.plan.build(ir.services[0].name)
    kinds = [step.kind for step in first.sign]
    assert all([s.kind for s in ir.plan.build(x.name).sign] == kinds for x in ir.services)

    def shared(svc: str) -> dict[str, str]:
        inputs = (i for step in ir.plan.build(svc).sign for i in step.inputs)
        return {i.name: i.value for i in inputs if i.source == "value" and i.name not in given}

    given = (*SIGN_PROJECT, *SIGN_ACTION)
    variables = shared(first.service)
    # the same for every service, or the action would pass it
    assert all(shared(x.name) == variables for x in ir.services)
    variables["COSIGN_VERSION"] = ir.pins.cosign_version
    variables["COSIGN_SHA256"] = ir.pins.cosign_sha256
    variables["VERIFIED_IMAGE"] = VERIFIED_IMAGE
    checked = " && ".join(f'[[ "${n}" =~ {p} ]]' for n, p in SIGN_EXPORTS.items())
    names = " ".join(SIGN_EXPORTS)
    commands = [
        " && ".join(f'test -n "${{{n}:-}}"' for n in given),
        _derived({"ECR_REPOSITORY"}, pipeline=False),
        # the commit of this source artifact: the one the build had
        'export COMMIT="$CODEBUILD_RESOLVED_SOURCE_VERSION"',
    ]
    for step in first.sign:
        commands.append(_sh(STEP_SCRIPTS[step.kind]))
        if step.kind == "verify-build":  # its tag and digest, checked again, exported
            commands.append(f'read -r {names} < "$VERIFIED_IMAGE" && {checked} && export {names}')
    spec: dict[str, Any] = {
        "version": 0.2,
        "env": {"shell": "bash", "variables": variables, "exported-variables": list(SIGN_EXPORTS)},
        "phases": {
            "install": {"commands": [_sh("install-cosign.sh")]},
            "build": {"on-failure": "ABORT", "commands": commands},
        },
    }
    if "scan-gate" in kinds:  # the only scan gate: the build session's could be faked
        spec["reports"] = SCAN_REPORT
    return spec
