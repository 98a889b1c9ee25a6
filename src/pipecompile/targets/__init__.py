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


# Below this many deployments (services x environments) a second process costs
# more than it saves.
PARALLEL_MIN_DEPLOYMENTS = 200


def _render_group(ir: IR, names: list[str]) -> list[Rendered]:
    targets = registry()
    return [targets[name].render(ir) for name in names]


def _render_targets(ir: IR, names: list[str]) -> list[Rendered]:
    """Render ``names`` in order; large pipelines use two forked worker processes.

    Rendering is pure, so splitting it across processes cannot change a byte:
    results are put back in registry order.
    """
    import multiprocessing
    import os

    big = len(ir.services) * len(ir.environments) >= PARALLEL_MIN_DEPLOYMENTS
    if (
        not big
        or len(names) < 2
        or (os.cpu_count() or 1) < 2
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return _render_group(ir, names)
    # Terraform alone weighs about as much as the YAML targets together.
    first = [n for n in names if n in ("terraform", "codebuild")] or names[:1]
    second = [n for n in names if n not in first]
    if not second:
        return _render_group(ir, names)
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        future = pool.submit(_render_group, ir, first)
        rest = _render_group(ir, second)
        done = dict(zip(first, future.result(), strict=True))
    done.update(zip(second, rest, strict=True))
    return [done[n] for n in names]


def render_all(ir: IR, only: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """Render every enabled target: {path relative to the root: (target, body)}."""
    jobs = [(name, folder) for name, folder in ir.outputs if not only or name in only]
    rendered = _render_targets(ir, [name for name, _ in jobs])
    out: dict[str, tuple[str, str]] = {}
    for (name, folder), files in zip(jobs, rendered, strict=True):
        prefix = folder.rstrip("/") + "/" if folder not in ("", ".") else ""
        for rel, body in files.items():
            path = prefix + rel
            if path in out:
                raise RuntimeError(f"{path} is rendered by both {out[path][0]} and {name}")
            out[path] = (name, body)
    return out
