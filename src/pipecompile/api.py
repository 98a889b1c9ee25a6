"""The Python API: compile a pipeline file without the command line.

    >>> import pipecompile
    >>> result = pipecompile.compile("samples/ecommerce/pipeline.yaml")
    >>> result.ok, len(result.files) > 0
    (True, True)

Nothing is written: ``files`` is what ``pipecompile build`` would write, each
path relative to the folder holding the pipeline file, each text with its header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Diagnostic, PipelineError

if TYPE_CHECKING:
    from .ir import IR


@dataclass(frozen=True)
class Compilation:
    """What compiling a pipeline file gives: the IR, the files and the diagnostics.

    An invalid file gives ``ir=None``, no files and its errors; a valid one may
    still carry warnings.  ``ok`` is True when there is no error.
    """

    ir: IR | None
    files: dict[str, str] = field(default_factory=dict)  # {path from the root: text}
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def compile(path: str | PathLike[str]) -> Compilation:
    """Compile the pipeline file at ``path`` (and its pipecompile.lock) in memory."""
    from .jobs import expected
    from .session import Session

    try:
        session = Session.open(Path(path))
        ir = session.ir
    except PipelineError as exc:
        return Compilation(None, {}, tuple(exc.diagnostics))
    files = {p: text for p, (_, text) in expected(ir).items()}
    return Compilation(ir, files, ir.warnings)
