"""The front end: read -> load (positions) -> validate (schema + models) -> lower (IR)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Diagnostic, PipelineError

if TYPE_CHECKING:  # the IR module is not needed to read a file (check's fast path)
    from ..ir import IR
    from .loader import Document


MAX_BYTES = 1024 * 1024  # the largest pipeline file (hand-written: far below this)


def read(path: Path) -> bytes:
    """Read the pipeline file, turning OS errors into a located user error."""
    from ..output.state import read_bounded

    try:
        # bounded: -f /dev/zero must not read gigabytes before the size check (which
        # reports a file larger than MAX_BYTES); a FIFO or a device is refused unread
        return read_bounded(str(path), MAX_BYTES, over=True)
    except ValueError as exc:
        raise PipelineError([Diagnostic(str(path), 1, 1, (), str(exc))]) from None
    except FileNotFoundError:
        raise PipelineError([Diagnostic(str(path), 1, 1, (), "file not found")]) from None
    except IsADirectoryError:
        raise PipelineError([Diagnostic(str(path), 1, 1, (), "is a folder, not a file")]) from None
    except OSError as exc:
        raise PipelineError(
            [Diagnostic(str(path), 1, 1, (), f"cannot read: {exc.strerror}")]
        ) from None


def compile_document(
    display: str, raw: bytes, root: Path | None = None, lock: bytes | None = None
) -> tuple[Document, IR]:
    """Compile a pipeline file's bytes (and its lock's): the Document and the IR."""
    from .loader import load
    from .lower import lower
    from .pins import resolve
    from .validate import validate

    doc = load(display, raw)
    model = validate(doc)
    pins = resolve(lock)
    return doc, check_targets(doc, lower(doc, model, pins, root))


def compile_bytes(
    display: str, raw: bytes, root: Path | None = None, lock: bytes | None = None
) -> IR:
    """Compile the bytes of a pipeline file named ``display`` (and of its lock) into the IR."""
    return compile_document(display, raw, root, lock)[1]


def check_targets(doc: Document, ir: IR) -> IR:
    """Run the enabled targets' rules; errors stop here, warnings join the IR's."""
    from dataclasses import replace

    from ..targets import check_all

    errors: list[Diagnostic] = []
    warnings = list(ir.warnings)
    for finding, names in check_all(ir):
        many = len(names) > 1
        listed = ", ".join(names[:-1]) + " and " + names[-1] if many else names[0]
        message = (
            finding.message.replace("{outputs}", f"the {listed} output{'s' if many else ''}")
            .replace("{s}", "" if many else "s")
            .replace("{them}", "those outputs" if many else "that output")
        )
        path = finding.path if finding.path[:1] == () or finding.path[0] in doc.data else ()
        d = doc.error(path, message, key=finding.key and bool(path))
        if finding.severity == "warning":
            warnings.append(replace(d, severity="warning"))
        else:
            errors.append(d)
    if errors:
        raise PipelineError(errors)
    return replace(ir, warnings=tuple(warnings)) if len(warnings) != len(ir.warnings) else ir


def compile_file(path: Path, display: str | None = None) -> IR:
    from .pins import read_lock

    return compile_bytes(display or str(path), read(path), path.parent, read_lock(path.parent))
