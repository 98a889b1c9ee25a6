"""Pieces the GitHub Actions and CodeBuild targets share, so both do the same thing.

The scripts (``targets/scripts/*.sh``, each with its inputs, outputs and exit codes
in a header) never contain a value from pipeline.yaml: they read everything from
environment variables that the target sets, so no user string can ever become
shell code (the injection rule of the hostile-input issue).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ..ir import IR, Environment, Service
from ..ir_plan import PlanStepKind

# zizmor (PyPI): the version the test suite audits the generated workflows with, which
# the merge gate, the configuration review and the security review install
ZIZMOR = "1.32.0"

# the buildspecs in the codebuild output folder (that target renders them, terraform's
# CodeBuild projects read them): one each for every service, environment, DAST scan
BUILD_BUILDSPEC, DEPLOY_BUILDSPEC, DAST_BUILDSPEC = "build.yml", "deploy.yml", "dast.yml"
# GitHub delivery: the build job's environment per tier; each build role trusts only its
# own environment's OIDC subject, as the deploy roles do, with the workflow file and the
# branches (terraform/oidc.py): a branch ref alone is no trust, since whoever may push
# creates one, nor an environment alone, which a workflow creates by naming it (issue 28)
BUILD_ENVIRONMENT = "build"
BUILD_RELEASE_ENVIRONMENT = "build-release"
# GitHub delivery: the workflow files (.github/workflows/<file>) whose jobs assume each
# OIDC role, which the roles' trust names (job_workflow_ref, at any ref: the run's
# branch is the ref claim; terraform/oidc.py)
GH_BUILD, GH_DEPLOY, GH_ZAP = "build.yml", "deploy.yml", "zap.yml"
GH_COMPLIANCE, GH_SUMMARY, GH_METRICS = "compliance.yml", "daily-summary.yml", "metrics.yml"
SIGN_BUILDSPEC = "sign.yml"  # one for both tiers: each sign project sets its key

# the packaged script (targets/scripts) each kind of delivery plan step runs; the
# approver's is each orchestrator's own (github_actions: approver-github.sh; the CodeBuild
# deploy looks it up in its finally phase, approver-codepipeline.sh)
STEP_SCRIPTS: dict[PlanStepKind, str] = {
    "build-once": "build-once.sh",
    "scan-gate": "ecr-scan-gate.sh",
    "registry-login": "ecr-login.sh",
    "verify-build": "verify-build.sh",
    "sign": "sign-once.sh",
    "attest": "attest.sh",
    "verify-signature": "verify-signature.sh",
    "verify-attestations": "verify-attestations.sh",
    "promotion-gate": "promotion-gate.sh",
    "sync-window": "sync-window.sh",
    "gitops-commit": "gitops-record.sh",
    "health-wait": "wait-healthy.sh",
    "audit": "audit-row.sh",
    "dast": "dast-scan.sh",
    "dast-mark": "dast-mark.sh",
}

# OWASP dependency-check --failOnCVSS thresholds by severity (CVSS v3 bands).
CVSS = {"critical": "9.0", "high": "7.0", "medium": "4.0", "low": "0.1"}
# SonarQube issue severities that count as at or above our severity.
SONAR = {
    "critical": "BLOCKER",
    "high": "BLOCKER,CRITICAL",
    "medium": "BLOCKER,CRITICAL,MAJOR",
    "low": "BLOCKER,CRITICAL,MAJOR,MINOR",
}


def glob_to_regex(glob: str) -> str:
    """Translate a GitHub branch filter glob into a POSIX ERE matching the whole name.

    ``*`` matches within one path segment, ``**`` across segments, ``?`` and
    ``+`` quantify the preceding character and ``[...]`` is a character class,
    as in GitHub's filter pattern cheat sheet.
    """
    out = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c in "?+":
            out.append(c if out else re.escape(c))
        elif c == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(r"\[")
            else:
                out.append("[" + glob[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        elif c in ".^$(){}|\\":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def branch_regexes(env: Environment) -> tuple[str, str]:
    """(include, exclude) anchored EREs for an environment's branch patterns."""
    inc = [glob_to_regex(b) for b in env.includes]
    exc = [glob_to_regex(b) for b in env.excludes]
    return ("^(" + "|".join(inc) + ")$", "^(" + "|".join(exc) + ")$" if exc else "")


# -- scripts: real files in targets/scripts/, with their inputs in a header -----------------

SCRIPTS = "scripts"  # the folder of the package's scripts, beside this module


def script_path(name: str) -> Path:
    """The packaged script ``name`` (``"build-once.sh"``) as a file, to run or to copy."""
    path = Path(__file__).with_name(SCRIPTS) / name
    if not path.is_file():
        raise KeyError(f"no packaged script {name!r} in {path.parent}")
    return path


# Where two scripts share commands, both source one packaged file beside them (tree-key.sh:
# the image key the build and the signing session must compute alike), and every text a
# target renders from them holds that file's body in place of the two lines below: a
# buildspec Terraform holds (sign.yml) or the branch supplies (build.yml), and a run:
# step, cannot read our files at run time, but they hold the same text from one file, so a
# fix is made once.  Run as files (the tests), the scripts source it.
INCLUDE = re.compile(
    r"^# shellcheck source=SCRIPTDIR/(?P<name>[a-z0-9-]+\.sh)\n"
    r'\. "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/(?P=name)"(?:  #.*)?\n',
    re.M,
)
STRICT = "set -euo pipefail\n"  # every packaged script's first command


@cache
def _raw(name: str) -> str:
    return script_path(name).read_text("utf-8")


def _split(text: str) -> tuple[str, str]:
    """(shebang and header comment, the commands from ``set -euo pipefail`` on)."""
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[:first]), "".join(lines[first:])


def inlined(name: str) -> str:
    """The text that stands for ``name`` where a packaged script sources it: a line naming
    it, then its commands (less ``set -euo pipefail``, which the sourcing script ran)."""
    body = script_body(name)
    if not body.startswith(STRICT):
        raise ValueError(f"{name}: a sourced script starts with {STRICT!r}")
    mark = f"# {name}: a packaged file, inlined where pipecompile renders this script\n"
    return mark + body.removeprefix(STRICT)


@cache
def script_text(name: str) -> str:
    """The whole text of a packaged script as the targets render it: shebang, header and
    body, with the body of each file it sources in place of the ``.`` command."""
    return _split(_raw(name))[0] + script_body(name)


@cache
def script_body(name: str) -> str:
    """A packaged script without its shebang and header comment: the commands a
    ``run:`` step or a buildspec command holds (they start at ``set -euo pipefail``),
    with the files it sources inlined (INCLUDE)."""
    return INCLUDE.sub(lambda m: inlined(m["name"]), _split(_raw(name))[1])


def packaged_scripts() -> list[str]:
    """Every packaged script's file name, sorted."""
    folder = script_path("build-once.sh").parent
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".sh", ".jq"))


def accepted_keys(ir: IR, env: Environment) -> str:
    """SIGNING_KEYS of the deploy check: the keys the IR says this environment admits."""
    return " ".join(env.accepted_keys)


# -- the deploy plan on CodeBuild: shared by the codebuild and terraform targets ------------
#
# Where each of the plan's parameters is set on CodeBuild: "pipeline" values in the
# buildspec, "environment" ones in the environment's deploy project (Terraform), the
# "deployment" ones in the CodePipeline action (1000 characters in all).  What the
# buildspec derives is never passed: the repository is the image URI's path.
DERIVED = {"ECR_REPOSITORY": '"${IMAGE_URI#*/}"'}


def codebuild_parameters(ir: IR, scope: str) -> list[str]:
    """The deploy's parameters of ``scope`` that CodeBuild gets from outside the buildspec:
    values and switches ("environment": also the secrets), in the plan's order."""
    sources = {i.name: i.source for s in ir.plan.deploy for i in s.step.inputs}
    switches = {s.switch for s in ir.plan.deploy if s.switch}
    out = []
    for name, where in ir.plan.parameters:
        if where != scope or name in DERIVED:
            continue
        if name in switches or sources.get(name) == "value" or sources.get(name) == "secret":
            out.append(name)
    return out


def sonar_key(ir: IR, service: str, release: bool) -> str:
    """The SonarQube project of a service in a build tier: the release tier's is its own,
    so a token that feature code can read cannot write the analysis a release is gated
    on (the token of each tier is granted its own projects only)."""
    key = f"{ir.project}_{service}"
    return f"{key}-release" if release else key


# -- the build on CodeBuild: one buildspec, each service's values from its project --------
#
# What varies by service, declared (never guessed from the values: adding a service moves
# no variable between the buildspec and the projects).  The build projects (Terraform)
# set these; the buildspec holds the rest, and the release pipeline's action the release
# tier's repository, key and prefix (an action's value wins over a project's, a
# project's over the buildspec's).
BUILD_SERVICE_VARIABLES = (
    "SERVICE",
    "SERVICE_PATH",
    "DOCKERFILE",
    "IMAGE_EXCLUDES",
    "ECR_REPOSITORY",
    "IMAGE_URI",
    "SONAR_PROJECT_KEY",
    "DC_PROJECT",
)


def build_values(ir: IR, svc: Service) -> dict[str, str]:
    """Every variable the build reads for ``svc`` (its dev tier), by name."""
    plan = ir.plan.build(svc.name)
    dev = next((t for t in plan.tiers if t.name == "dev"), plan.tiers[0])
    out: dict[str, str] = {"SERVICE": svc.name}
    for step in plan.steps:
        for i in step.inputs:
            if i.source == "value":
                out.setdefault(i.name, i.value)
            elif i.source == "tier" and getattr(dev, i.value):
                out.setdefault(i.name, getattr(dev, i.value))
    out.setdefault("SERVICE_PATH", svc.path)
    if ir.security.sast_fail_on:
        out["SONAR_PROJECT_KEY"] = sonar_key(ir, svc.name, False)  # the release: its own
    if ir.security.dependencies_fail_on:
        out["DC_PROJECT"] = f"{ir.project}-{svc.name}"
    return out


def build_project_variables(ir: IR, svc: Service) -> dict[str, str]:
    """What ``svc``'s build projects set (Terraform ``environment_variable`` blocks): the
    declared per-service variables, and the runtime's version where services of one
    language differ in it (``RUNTIME_VERSION_<LANGUAGE>``)."""
    values = build_values(ir, svc)
    out = {name: values[name] for name in BUILD_SERVICE_VARIABLES if name in values}
    language = svc.runtime.language
    if len({s.runtime.version for s in ir.services if s.runtime.language == language}) > 1:
        out[runtime_variable(language)] = runtime_version(svc)
    return out


def runtime_version(svc: Service) -> str:
    """The service's runtime as CodeBuild's runtime-versions names it (corretto21)."""
    from . import data

    _, fmt = data("codebuild", "runtimes.json")["runtime_versions"][svc.runtime.language]
    return str(fmt.format(v=svc.runtime.version))


def runtime_variable(language: str) -> str:
    return f"RUNTIME_VERSION_{language.upper()}"


def rollback_notifies(ir: IR) -> bool:
    """Whether a manual rollback (a start-build of a deploy project) tells the pipeline
    topic how it ended (rollback-notify.sh; the codebuild target's deploy buildspec;
    its project's TOPIC_ARN and sns:Publish, terraform's)."""
    return (
        ir.delivery == "codepipeline"
        and bool(ir.deployments_table)
        and bool(ir.notifications.sns_events)
    )
