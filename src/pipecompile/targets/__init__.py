"""The targets: one package per output format, each a pure function of the IR.

A target module has a ``name`` (the key under ``outputs:`` in pipeline.yaml),
``render(ir) -> {relative path: text}`` (paths relative to the target's output
folder, texts without the header, which the build adds) and
``check(ir) -> [Finding]``: what this target cannot express for this pipeline,
located by the pipeline field it comes from (sqlglot's "unsupported" diagnostics),
and ``describe(ir) -> [line]``: what must exist outside the repository for its
files to work (``pipecompile explain``).
Lowering knows no target; the front end runs the enabled targets' checks and
maps each finding's field path to a line and column.
Adding a target means adding a package here for its code, templates and data, a
line in :func:`.registry.builtin`, and its tests.  This module is what targets
share (the Protocol, findings, data files); :mod:`.registry` lists them.
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
    # its rule (PC3xx, pipecompile.rules): a built-in target always names it; a plugin's
    # finding without a registered code is PC312 (plugin-finding)
    code: str = ""


class Target(Protocol):
    """What a target provides. ``delivery``, ``delivers``, ``follows``, ``publishes``,
    ``origin`` and ``choices`` are optional in a target module: the registry fills in their
    defaults (:class:`.registry.Defaults`)."""

    name: str  # the key under outputs: in pipeline.yaml
    default_folder: str  # its output folder when the pipeline names none
    cost: int  # ms to render per 1000 services, to balance parallel rendering
    delivery: str | None  # the one delivery it serves (None: every delivery)
    delivers: str | None  # the delivery whose pipelines it generates (None: none)
    follows: str | None  # on by default whenever this other target is on (None: never)

    def origin(self, job: str | None, step: str | None) -> Path_ | None:
        """The pipeline field behind a generated job or step (``lint`` maps a checker's
        finding in this target's files home with it); None when unknown."""
        ...

    def publishes(self, folder: str, enabled: bool) -> dict[str, str]:
        """Facts other targets read through the IR (:data:`pipecompile.ir.FACTS`), given
        this target's folder (its default one when it is off)."""
        ...

    def render(self, ir: IR) -> Rendered: ...

    def check(self, ir: IR) -> list[Finding]: ...

    def describe(self, ir: IR) -> list[str]: ...

    def choices(self, ir: IR) -> list[Finding]:
        """The pipeline's own policy choices that skip a checker's check (lint notes)."""
        ...


def gitops_required(ir: IR) -> list[Finding]:
    """The rule of every target that deploys through the GitOps repository."""
    if ir.gitops.repository is not None:
        scheme = ir.gitops.repository.startswith("https://")
        return [
            Finding(
                ("environments", env.name, "gitops", "repository"),
                f"'{env.gitops_repository}' must use the same scheme as gitops.repository "
                f"('{ir.gitops.repository}'): the deployers read one kind of credential",
                code="PC311",
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
            code="PC301",
        )
    ]


@cache
def data(target_folder: str, file: str) -> Any:
    """Load a JSON data file shipped in ``targets/<target_folder>/``."""
    text = (resources.files(__name__) / target_folder / file).read_text("utf-8")
    return json.loads(text)
