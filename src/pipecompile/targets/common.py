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

from ..ir import IR, Environment

# zizmor (PyPI): the version the test suite audits the generated workflows with, which
# the merge gate, the configuration review and the security review install
ZIZMOR = "1.32.0"

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


@cache
def script_text(name: str) -> str:
    """The whole text of a packaged script: shebang, header and body."""
    return script_path(name).read_text("utf-8")


def script_body(name: str) -> str:
    """A packaged script without its shebang and header comment: the commands a
    ``run:`` step or a buildspec command holds (they start at ``set -euo pipefail``)."""
    lines = script_text(name).splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[first:])


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
