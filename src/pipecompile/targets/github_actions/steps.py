"""Steps and pieces every workflow shares: pinned actions, checkout, AWS, runtimes."""

from __future__ import annotations

import json
import re
from typing import Any

from ...ir import IR, Service
from ...serialize.emit import Pinned
from ..common import glob_to_regex

name = "github-actions"  # the target (the key under outputs:), set here for paths_filter
default_folder = ".github/workflows"  # under outputs: when the pipeline names no folder
cost = 58  # ms to render per 1000 services (bench/bench.py); balances parallel rendering
RUNNER = "ubuntu-24.04"


# Why a job holds a permission: written next to it (zizmor's undocumented-permissions).
PERMISSION_REASONS = {
    ("contents", "read"): "check out the repository",
    ("id-token", "write"): "OIDC token to assume this job's AWS role",
    ("actions", "read"): "read this run's approvals for the audit row",
}

# The GitHub environment of jobs that only talk to Slack: its secret lives there.
NOTIFY_ENVIRONMENT = "notifications"
# The GitHub environment of the CI job when it runs scanners (SonarQube, NVD key).
CI_ENVIRONMENT = "ci"


def permissions(**granted: str) -> dict[str, Pinned]:
    """``permissions:`` with each grant commented with its reason."""
    return {
        key.replace("_", "-"): Pinned(level, PERMISSION_REASONS[(key.replace("_", "-"), level)])
        for key, level in granted.items()
    }


def uses(ir: IR, action: str) -> Pinned:
    pin = ir.pins.action(action)
    return Pinned(f"{action}@{pin.sha}", pin.version)


def env_key(env: str) -> str:
    return env.upper().replace("-", "_")


def checkout(ir: IR, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Check out",
        "uses": uses(ir, "actions/checkout"),
        "with": {"persist-credentials": False, **extra},
    }


def aws_credentials(ir: IR, role_arn: str) -> dict[str, Any]:
    """OIDC credentials for ``role_arn``: the build role, or an environment's deploy role."""
    return {
        "name": "Configure AWS credentials (OIDC)",
        "uses": uses(ir, "aws-actions/configure-aws-credentials"),
        "with": {"role-to-assume": role_arn, "aws-region": ir.aws.region},
    }


# per language: its set-up action, the action's version input, its cache and the file
# the cache is keyed by (relative to the service's folder), and its name in the log
RUNTIMES: dict[str, tuple[str, str, dict[str, Any], str, str]] = {
    "node": (
        "actions/setup-node",
        "node-version",
        {"cache": "npm"},
        "package-lock.json",
        "Node.js",
    ),
    "python": (
        "actions/setup-python",
        "python-version",
        {"cache": "pip"},
        "requirements*.txt",
        "Python",
    ),
    "java": (
        "actions/setup-java",
        "java-version",
        {"distribution": "temurin", "cache": "maven"},
        "pom.xml",
        "Java",
    ),
    "go": ("actions/setup-go", "go-version", {"cache": True}, "go.sum", "Go"),
}


def dependency_file(svc: Service) -> str:
    """What the service's runtime cache is keyed by (``cache-dependency-path``)."""
    base = "" if svc.path == "." else svc.path + "/"
    return base + RUNTIMES[svc.runtime.language][3]


def setup_runtime(ir: IR, language: str, version: str, dependency_path: str) -> dict[str, Any]:
    """The pinned set-up action of ``language`` (``version`` and ``dependency_path`` may
    be expressions: ci.yml passes its inputs)."""
    action, key, cache, _, title = RUNTIMES[language]
    with_: dict[str, Any] = {}
    if "distribution" in cache:
        with_["distribution"] = cache["distribution"]
    with_[key] = version
    with_["cache"] = cache["cache"]
    with_["cache-dependency-path"] = dependency_path
    return {"name": f"Set up {title} {version}", "uses": uses(ir, action), "with": with_}


def slack_step(ir: IR, text: str, condition: str | None = None) -> dict[str, Any]:
    # no "channel": an incoming webhook posts to the channel it was created for and
    # ignores one in the payload (Slack's incoming-webhooks docs); explain names it
    payload = json.dumps({"text": text}, ensure_ascii=False)
    step: dict[str, Any] = {
        "name": "Notify Slack",
        "uses": uses(ir, "slackapi/slack-github-action"),
        "with": {
            "webhook": f"${{{{ secrets.{ir.secrets.slack_webhook} }}}}",
            "webhook-type": "incoming-webhook",
            "payload": payload,
        },
    }
    if condition:
        step = {"if": condition, **step}
    return step


def paths_filter(ir: IR, svc: Service, *workflows: str) -> dict[str, Any]:
    """The service's folder, minus other services' folders inside it, plus the workflows.

    Path isolation: GitHub applies the patterns in order, so a later '!' pattern
    removes what an earlier one added.
    """
    if not svc.trigger_includes and not svc.trigger_excludes:
        return {}
    folder = ir.output(name)
    patterns = [
        *(svc.trigger_includes or ("**",)),
        *(f"!{pattern}" for pattern in svc.trigger_excludes),
    ]
    # a workflow the patterns already match is not listed again ('**' matches them all)
    extra = [f"{folder}/{w}" for w in workflows if not path_matches(patterns, f"{folder}/{w}")]
    return {"paths": [*patterns, *extra]}


def path_matches(patterns: list[str], path: str) -> bool:
    """Whether a push that changed ``path`` passes the ``paths`` filter ``patterns``:
    GitHub applies them in order, the last that matches decides, a ``!`` one excludes
    (the workflow syntax's "Patterns to match file paths")."""
    hit = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if re.fullmatch(glob_to_regex(pattern.removeprefix("!")), path):
            hit = not negated
    return hit


def install_cosign(ir: IR) -> dict[str, Any]:
    """The installer, told to install the cosign of the lock (the one CodeBuild runs)."""
    return {
        "name": "Install cosign",
        "uses": uses(ir, "sigstore/cosign-installer"),
        "with": {"cosign-release": ir.pins.cosign_version},
    }


def workflow_ref(ir: IR, file: str) -> str:
    """A workflow of this repository at this commit (GitHub's self-repository syntax, $/:
    never a file a previous step wrote; every validator the tests run reads it)."""
    return f"$/{ir.output(name)}/{file}"
