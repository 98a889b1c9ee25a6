"""The registry: every target, in the order outputs are listed and rendered, and what
runs over all enabled targets (their checks, their renders, their defaults)."""

from __future__ import annotations

from typing import Any

from ..ir import IR
from . import Finding, Target, data


def registry() -> dict[str, Target]:
    """Every target, in the order outputs are listed and rendered."""
    from . import argocd, codebuild, github_actions, helm, terraform

    targets: dict[str, Target] = {
        github_actions.name: github_actions,
        codebuild.name: codebuild,
        terraform.name: terraform,
        argocd.name: argocd,
        helm.name: helm,
    }
    return targets


def default_outputs(delivery: str | None = None) -> dict[str, str]:
    """Every target and its default folder, in registry order; given a delivery, only the
    targets that delivery uses (a target may name the one it serves: ``delivery``)."""
    return {
        name: target.default_folder
        for name, target in registry().items()
        if delivery is None or getattr(target, "delivery", delivery) == delivery
    }


def default_actions() -> dict[str, dict[str, str]]:
    """The actions generated workflows use, pinned as shipped (pipecompile.lock overrides)."""
    table: dict[str, Any] = data("github_actions", "action-pins.json")["actions"]
    return {name: {"sha": v["sha"], "version": v["version"]} for name, v in table.items()}


def check_all(ir: IR) -> list[tuple[Finding, tuple[str, ...]]]:
    """Every enabled target's findings, the same finding of several targets merged."""
    targets = registry()
    merged: dict[Finding, list[str]] = {}
    for name, _ in ir.outputs:
        for finding in targets[name].check(ir):
            merged.setdefault(finding, []).append(name)
    return [(f, tuple(names)) for f, names in merged.items()]


def render_all(ir: IR, only: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """Render every enabled target: {path relative to the root: (target, body)}."""
    jobs = [(name, folder) for name, folder in ir.outputs if not only or name in only]
    targets = registry()
    out: dict[str, tuple[str, str]] = {}
    for name, folder in jobs:
        files = targets[name].render(ir)
        prefix = folder.rstrip("/") + "/" if folder not in ("", ".") else ""
        for rel, body in files.items():
            path = prefix + rel
            if path in out:
                raise RuntimeError(f"{path} is rendered by both {out[path][0]} and {name}")
            out[path] = (name, body)
    return out
