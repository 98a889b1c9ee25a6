"""The targets: one module per output format, each a pure function of the IR.

A target module has a ``name`` (the key under ``outputs:`` in pipeline.yaml),
``render(ir) -> {relative path: text}`` (paths relative to the target's output
folder, texts without the header, which the build adds) and
``check(ir) -> [Finding]``: what this target cannot express for this pipeline,
located by the pipeline field it comes from (sqlglot's "unsupported" diagnostics),
and ``describe(ir) -> [line]``: what must exist outside the repository for its
files to work (``pipecompile explain``).
Lowering knows no target; the front end runs the enabled targets' checks and
maps each finding's field path to a line and column.
Adding a target means adding a module, its folder under ``targets/`` for
templates and data, a line in :func:`registry`, and its tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, Protocol

from ..errors import Path_
from ..ir import IR

# {path relative to the target's output folder, '/'-separated: text}
Rendered = dict[str, str]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a target cannot express, at the pipeline field it comes from.

    ``{outputs}`` in the message stands for the targets that report the same
    finding at the same place ("the github-actions and codebuild outputs"), so a
    rule several targets share reads as one error.
    """

    path: Path_
    message: str
    severity: Literal["error", "warning"] = "error"
    key: bool = False  # point at the key rather than the value


class Target(Protocol):
    name: str  # the key under outputs: in pipeline.yaml
    default_folder: str  # its output folder when the pipeline names none
    cost: int  # ms to render per 1000 services, to balance parallel rendering

    def render(self, ir: IR) -> Rendered: ...

    def check(self, ir: IR) -> list[Finding]: ...

    def describe(self, ir: IR) -> list[str]: ...


def check_all(ir: IR) -> list[tuple[Finding, tuple[str, ...]]]:
    """Every enabled target's findings, the same finding of several targets merged."""
    targets = registry()
    merged: dict[Finding, list[str]] = {}
    for name, _ in ir.outputs:
        for finding in targets[name].check(ir):
            merged.setdefault(finding, []).append(name)
    return [(f, tuple(names)) for f, names in merged.items()]


def gitops_required(ir: IR) -> list[Finding]:
    """The rule of every target that deploys through the GitOps repository."""
    if ir.gitops.repository is not None:
        scheme = ir.gitops.repository.startswith("https://")
        return [
            Finding(
                ("environments", env.name, "gitops", "repository"),
                f"'{env.gitops_repository}' must use the same scheme as gitops.repository "
                f"('{ir.gitops.repository}'): the deployers read one kind of credential",
            )
            for env in ir.environments
            if env.gitops_repository and env.gitops_repository.startswith("https://") != scheme
        ]
    return [
        Finding(
            ("gitops",),
            "gitops.repository is required: {outputs} deploy{s} through the GitOps "
            "repository (or turn {them} off)",
            key=True,
        )
    ]


def registry() -> dict[str, Target]:
    """Every target, in the order outputs are listed and rendered."""
    from . import argocd, codebuild, github_actions, helm, local, terraform

    targets: dict[str, Target] = {
        github_actions.name: github_actions,
        codebuild.name: codebuild,
        terraform.name: terraform,
        argocd.name: argocd,
        helm.name: helm,
        local.name: local,
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


@cache
def data(target_folder: str, file: str) -> Any:
    """Load a JSON data file shipped in ``targets/<target_folder>/``."""
    text = (resources.files(__name__) / target_folder / file).read_text("utf-8")
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
