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
"""

from __future__ import annotations

import shlex
from typing import Any

from ...errors import Path_
from ...ir import BUILDSPEC_FOLDER, BUILDSPECS_GENERATED, IR, PlanStep, SharedStep
from ...serialize.emit import yaml_document
from .. import Finding, data, gitops_required
from ..common import (
    BUILD_BUILDSPEC,
    BUILD_SERVICE_VARIABLES,
    CVSS,
    DAST_BUILDSPEC,
    DEPLOY_BUILDSPEC,
    DERIVED,
    SIGN_BUILDSPEC,
    SONAR,
    STEP_SCRIPTS,
    build_project_variables,
    build_values,
    rollback_notifies,
    runtime_variable,
    runtime_version,
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
OUTCOME_FILE = "/tmp/outcome"
NO_APPROVAL = "none (no approval)"  # the audit row's approver where none was needed


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
        # secret, terraform/pipelines.py): CodeBuild reads every secrets-manager entry of
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


def _derived(passed: set[str], pipeline: bool = True) -> str:
    """What the action configuration (1000 characters at most) need not carry: the
    repository is the image URI's path, the pipeline is named by CODEBUILD_INITIATOR."""
    out = [f"{name}={value}" for name, value in DERIVED.items() if name in passed]
    if pipeline:
        out.append('PIPELINE_NAME="${CODEBUILD_INITIATOR#codepipeline/}"')
    return "export " + " ".join(out)


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
    # a manual rollback (no source): the commit of the deployment it returned to
    out.append(
        'export COMMIT="${ROLLBACK_COMMIT:-${CODEBUILD_RESOLVED_SOURCE_VERSION:-}}" '
        'RUN="$CODEBUILD_BUILD_ID"'
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
    rolled-back-to deployment's commit from the audit table (an override of it is
    cleared first)."""
    resolve = script_body("rollback-resolve.sh")
    inputs = "".join(f" {i.name}={shlex.quote(i.value)}" for i in ir.plan.rollback)
    return [
        'export ACTOR="${CODEBUILD_INITIATOR:-unknown}"; unset ROLLBACK_COMMIT; '
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
