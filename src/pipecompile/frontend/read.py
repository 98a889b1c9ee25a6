"""Reading the pipeline file: bounded, with OS errors as located user errors.

The stages after it (load -> validate -> lower -> the targets' checks) run in
:mod:`pipecompile.compiler`, which alone knows both the front end and the targets."""

from __future__ import annotations

from pathlib import Path

from ..errors import Diagnostic, PipelineError

MAX_BYTES = 1024 * 1024  # the largest pipeline file (hand-written: far below this)


def read(path: Path) -> bytes:
    """Read the pipeline file, turning OS errors into a located user error."""
    from ..output.untrusted import read_bounded

    try:
        # bounded: -f /dev/zero must not read gigabytes before the size check (which
        # reports a file larger than MAX_BYTES); a FIFO or a device is refused unread
        return read_bounded(str(path), MAX_BYTES, over=True)
    except ValueError as exc:
        raise PipelineError([Diagnostic(str(path), 1, 1, (), str(exc), code="PC101")]) from None
    except FileNotFoundError:
        raise PipelineError(
            [Diagnostic(str(path), 1, 1, (), "file not found", code="PC101")]
        ) from None
    except IsADirectoryError:
        folder = Diagnostic(str(path), 1, 1, (), "is a folder, not a file", code="PC101")
        raise PipelineError([folder]) from None
    except OSError as exc:
        raise PipelineError(
            [Diagnostic(str(path), 1, 1, (), f"cannot read: {exc.strerror}", code="PC101")]
        ) from None
