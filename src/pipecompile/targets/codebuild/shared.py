"""What the buildspecs share: the build image's runtimes (runtimes.json), a packaged
script as one buildspec command, and the exports no action configuration carries."""

from __future__ import annotations

from typing import Any

from .. import data
from ..common import DERIVED, script_body


def _runtimes() -> dict[str, Any]:
    table: dict[str, Any] = data("codebuild", "runtimes.json")
    return table


def _sh(script: str) -> str:
    """A packaged script as one buildspec command, in a subshell (its exits stay its own)."""
    return f"(\n{script_body(script)})"


def _derived(passed: set[str], pipeline: bool = True) -> str:
    """What the action configuration (1000 characters at most) need not carry: the
    repository is the image URI's path, the pipeline is named by CODEBUILD_INITIATOR."""
    out = [f"{name}={value}" for name, value in DERIVED.items() if name in passed]
    if pipeline:
        out.append('PIPELINE_NAME="${CODEBUILD_INITIATOR#codepipeline/}"')
    return "export " + " ".join(out)
