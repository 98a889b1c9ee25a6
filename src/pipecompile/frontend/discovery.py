"""Where the pipeline file is when the command line names none."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError


def find_pipeline(start: Path) -> Path:
    """The nearest pipeline.yaml from ``start`` upward, stopping at the repository root
    (the first folder holding .git), as git and pre-commit find their files."""
    for folder in (start, *start.parents):
        candidate = folder / "pipeline.yaml"
        if os.path.lexists(candidate):
            # whatever it is (a FIFO, a folder, a dangling link), it is the one meant:
            # reading it says what is wrong, instead of "no pipeline.yaml" here
            return Path(os.path.relpath(candidate))
        if (folder / ".git").exists():
            break
    looked = f"{start} and its parents up to {folder}" if folder != start else str(start)
    raise UsageError(
        f"no pipeline.yaml in {looked}; run pipecompile in the repository that holds "
        "it, or name it with -f PATH"
    )
