"""The front end: read -> load (positions) -> validate (schema + models) -> lower (IR)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Diagnostic, PipelineError

if TYPE_CHECKING:  # the IR module is not needed to read a file (check's fast path)
    from .ir import IR


def read(path: Path) -> bytes:
    """Read the pipeline file, turning OS errors into a located user error."""
    from .loader import MAX_BYTES

    try:
        with open(path, "rb") as fh:
            # bounded: -f /dev/zero must not read gigabytes before the size check
            return fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise PipelineError([Diagnostic(str(path), 1, 1, (), "file not found")]) from None
    except IsADirectoryError:
        raise PipelineError([Diagnostic(str(path), 1, 1, (), "is a folder, not a file")]) from None
    except OSError as exc:
        raise PipelineError(
            [Diagnostic(str(path), 1, 1, (), f"cannot read: {exc.strerror}")]
        ) from None


def compile_bytes(
    display: str, raw: bytes, root: Path | None = None, lock: bytes | None = None
) -> IR:
    """Compile the bytes of a pipeline file named ``display`` (and of its lock) into the IR."""
    from .loader import load
    from .lower import lower
    from .pins import resolve
    from .validate import validate

    doc = load(display, raw)
    model = validate(doc)
    pins = resolve(lock)
    return lower(doc, model, pins, root)


def compile_file(path: Path, display: str | None = None) -> IR:
    from .pins import read_lock

    return compile_bytes(display or str(path), read(path), path.parent, read_lock(path.parent))
