"""Cross-references checked on the raw document, so that a schema error elsewhere
never hides them: with schema errors the model does not exist and lowering cannot
run, but an unknown strategy or environment can still be named in the same run.

The messages are lowering's own (lowering reports them when the schema holds).
"""

from __future__ import annotations

from typing import Any

from ..errors import Diagnostic, did_you_mean
from .loader import Document

BUILTIN_STRATEGIES = ("rolling", "canary", "blue-green")
DEFAULT_ENVIRONMENTS = ("development", "testing", "staging", "production")
# the GitHub environments the generated workflows use besides the deploy environments
# (targets/github_actions/environments.py): with GitHub delivery every deploy
# environment is a GitHub environment of its name, so one of these names would share
# that environment's secrets and deployment branch policy
GITHUB_ENVIRONMENTS = {
    "ci": "the CI job of any branch",
    "ci-release": "the CI job of a release build",
    "build": "the build job of a feature-tier push",
    "build-release": "the build job of a release",
    "notifications": "Slack messages of release runs",
    "notifications-dev": "Slack messages of feature runs",
    "compliance": "the drift check and the security review",
    "daily-summary": "the daily deployment summary",
}


def reserved_message(name: str) -> str:
    return (
        f"'{name}' is the GitHub environment of {GITHUB_ENVIRONMENTS[name]}: a deploy "
        "environment of that name would share its secrets and its deployment branch "
        "policy; choose another name"
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def check(doc: Document) -> list[Diagnostic]:
    data = _dict(doc.data)
    out: list[Diagnostic] = []
    known = sorted(
        {*BUILTIN_STRATEGIES, *(k for k in _dict(data.get("strategies")) if isinstance(k, str))}
    )
    envs_raw = data.get("environments")
    envs = list(_dict(envs_raw)) if isinstance(envs_raw, dict) else list(DEFAULT_ENVIRONMENTS)

    def strategy(path: tuple[str | int, ...], name: Any) -> None:
        if isinstance(name, str) and name not in known:
            out.append(
                doc.error(
                    "PC201",
                    path,
                    f"unknown strategy '{name}'{did_you_mean(name, known)}; "
                    f"known: {', '.join(known)}",
                )
            )

    for name, env in _dict(envs_raw).items():
        strategy(("environments", name, "strategy"), _dict(env).get("strategy"))
        if data.get("delivery") not in (None, "codepipeline") and name in GITHUB_ENVIRONMENTS:
            out.append(doc.error("PC213", ("environments", name), reserved_message(name), key=True))
    for name, svc in _dict(data.get("services")).items():
        svc = _dict(svc)
        strategy(("services", name, "strategy"), svc.get("strategy"))
        for env_name in _dict(svc.get("replicas")):
            if isinstance(env_name, str) and env_name not in envs:
                out.append(
                    doc.error(
                        "PC201",
                        ("services", name, "replicas", env_name),
                        f"unknown environment '{env_name}'{did_you_mean(env_name, envs)}"
                        f"; known: {', '.join(envs)}",
                        key=True,
                    )
                )
    dast = _dict(_dict(data.get("security")).get("dast")).get("environment")
    if isinstance(dast, str) and dast not in envs:
        out.append(
            doc.error(
                "PC201",
                ("security", "dast", "environment"),
                f"unknown environment '{dast}'{did_you_mean(dast, envs)}; known: {', '.join(envs)}",
            )
        )
    return out
