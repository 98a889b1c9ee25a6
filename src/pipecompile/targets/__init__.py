"""The targets: one module per output format, each a pure function of the IR.

A target module has a ``name`` (the key under ``outputs:`` in pipeline.yaml)
and ``render(ir) -> {relative path: text}``; paths are relative to the
target's output folder and texts carry no header (the writer adds it).
Adding a target means adding a module, its folder under ``targets/`` for
templates and data, a line in :func:`registry`, and its tests.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Protocol

from ..ir import IR

# {path relative to the target's output folder, '/'-separated: text}
Rendered = dict[str, str]


class Target(Protocol):
    name: str

    def render(self, ir: IR) -> Rendered: ...


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


@cache
def data(target_folder: str, file: str) -> Any:
    """Load a JSON data file shipped in ``targets/<target_folder>/``."""
    text = (resources.files("pipecompile._targets") / target_folder / file).read_text("utf-8")
    return json.loads(text)


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
