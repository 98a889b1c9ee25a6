"""Pinned versions: the package's defaults, overridden by the user's pipecompile.lock.

The lock is a small JSON file next to pipeline.yaml, meant to be edited by
Renovate/Dependabot-style bots (or by hand); the next build carries its pins
into every generated file, and ``check`` compares against the lock's pins, so
it never reverts an update made there::

    {
      "actions": {
        "actions/checkout": {"version": "v7.0.1",
                             "sha": "3d3c42e5aac5ba805825da76410c181273ba90b1"}
      },
      "terraform_aws_provider": ">= 5.70.0, < 7.0.0",
      "zap_image": "ghcr.io/zaproxy/zaproxy:stable",
      "cosign_version": "v2.4.1"
    }
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import Diagnostic, PipelineError, did_you_mean
from .ir import ActionPin, Pins

LOCK_NAME = "pipecompile.lock"
DEFAULTS = {
    "terraform_aws_provider": ">= 5.70.0, < 7.0.0",
    "zap_image": "ghcr.io/zaproxy/zaproxy:stable",
    "cosign_version": "v2.4.1",
}
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"v?[0-9]+(\.[0-9]+){0,2}")
_TEXT = re.compile(r"[^\x00-\x1f\x7f\"'\\\\$`]{1,200}")


def default_actions() -> dict[str, dict[str, str]]:
    from .targets import data

    table: dict[str, Any] = data("github_actions", "action-pins.json")["actions"]
    return {name: {"sha": v["sha"], "version": v["version"]} for name, v in table.items()}


def resolve(lock_path: Path | None) -> Pins:
    """Defaults overlaid with the lock at ``lock_path`` (when it exists)."""
    actions = default_actions()
    values = dict(DEFAULTS)
    lock: dict[str, Any] = {}
    display = str(lock_path)
    if lock_path is not None and lock_path.is_file():
        lock = _read(display, lock_path.read_bytes())
    errors: list[Diagnostic] = []

    def err(path: tuple[str | int, ...], msg: str) -> None:
        errors.append(Diagnostic(display, 1, 1, path, msg))

    known = {"actions", *DEFAULTS}
    for key in lock:
        if key not in known:
            err((key,), f"unknown key '{key}'{did_you_mean(key, known)}")
    from_lock: set[str] = set()
    for name, pin in (lock.get("actions") or {}).items():
        if name not in actions:
            err(
                ("actions", name),
                f"pipecompile does not use the action '{name}'{did_you_mean(name, actions)}",
            )
            continue
        if not isinstance(pin, dict) or set(pin) != {"sha", "version"}:
            err(("actions", name), 'expected {"version": "vX.Y.Z", "sha": "<40 hex>"}')
            continue
        if not isinstance(pin["sha"], str) or not _SHA.fullmatch(pin["sha"]):
            err(("actions", name, "sha"), "must be a full 40-character commit SHA")
            continue
        if not isinstance(pin["version"], str) or not _VERSION.fullmatch(pin["version"]):
            err(("actions", name, "version"), "must be a release tag such as 'v7.0.1'")
            continue
        actions[name] = {"sha": pin["sha"], "version": pin["version"]}
        from_lock.add(name)
    for key in DEFAULTS:
        if key in lock:
            if not isinstance(lock[key], str) or not _TEXT.fullmatch(lock[key]):
                err((key,), "must be a short string without quotes, '$' or backslashes")
                continue
            values[key] = lock[key]
            from_lock.add(key)
    if errors:
        raise PipelineError(errors)
    pins = tuple(
        ActionPin(name, v["sha"], v["version"], LOCK_NAME if name in from_lock else "default")
        for name, v in sorted(actions.items())
    )
    sources = {k: (LOCK_NAME if k in from_lock else "default") for k in DEFAULTS}
    return Pins(
        actions=pins,
        terraform_aws_provider=values["terraform_aws_provider"],
        zap_image=values["zap_image"],
        cosign_version=values["cosign_version"],
        sources=tuple(sorted(sources.items())),
    )


def _read(display: str, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PipelineError([Diagnostic(display, 1, 1, (), "invalid UTF-8")]) from None
    except json.JSONDecodeError as exc:
        raise PipelineError(
            [Diagnostic(display, exc.lineno, exc.colno, (), f"invalid JSON: {exc.msg}")]
        ) from None
    if not isinstance(data, dict):
        raise PipelineError([Diagnostic(display, 1, 1, (), "expected a JSON object")])
    return data
