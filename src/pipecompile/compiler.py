"""The compiler: the front end, then the enabled targets' rules -> the IR every target
renders from.

The one module that knows both sides: the front end (:mod:`.frontend`) knows no
target, and the targets never see the pipeline file; what lowering needs from the
targets (their names and default folders, the action pins they ship) is passed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Diagnostic, PipelineError

if TYPE_CHECKING:
    from .frontend.loader import Document
    from .ir import IR


def compile_document(
    display: str, raw: bytes, root: Path | None = None, lock: bytes | None = None
) -> tuple[Document, IR]:
    """Compile a pipeline file's bytes (and its lock's): the Document and the IR."""
    from .frontend.loader import load
    from .frontend.lower import lower
    from .frontend.pins import resolve
    from .frontend.validate import validate
    from .targets.registry import Layout, default_actions

    doc = load(display, raw)
    model = validate(doc)
    pins = resolve(lock, default_actions())
    ir = check_targets(doc, lower(doc, model, pins, Layout(), root))
    return doc, suppress(doc, raw, ir)


def suppress(doc: Document, raw: bytes, ir: IR) -> IR:
    """Drop the warnings a ``# pipecompile: ignore[PC305]`` comment on their line names;
    an ignore that silences nothing is itself a warning (PC109)."""
    from dataclasses import replace

    from .rules import BY_CODE, suppressions

    text = raw.decode("utf-8", "replace")
    marks = suppressions(text)
    if not marks:
        return ir
    kept: list[Diagnostic] = []
    used: set[tuple[int, str]] = set()
    for w in ir.warnings:
        if w.code in marks.get(w.line, ()):
            used.add((w.line, w.code))
        else:
            kept.append(w)
    lines = text.splitlines()
    for line, codes in sorted(marks.items()):
        for code in sorted(c for c in codes if (line, c) not in used):
            col = lines[line - 1].rfind("#") + 1
            message = f"'# pipecompile: ignore[{code}]' silences no warning on this line"
            if code not in BY_CODE:
                message = (
                    f"'# pipecompile: ignore[{code}]': {code} is not a pipecompile rule code "
                    "(`pipecompile rules` lists them)"
                )
            kept.append(Diagnostic(doc.file, line, col, (), message, "warning", "PC109"))
    return replace(ir, warnings=tuple(kept))


def compile_bytes(
    display: str, raw: bytes, root: Path | None = None, lock: bytes | None = None
) -> IR:
    """Compile the bytes of a pipeline file named ``display`` (and of its lock) into the IR."""
    return compile_document(display, raw, root, lock)[1]


def check_targets(doc: Document, ir: IR) -> IR:
    """Run the enabled targets' rules; errors stop here, warnings join the IR's."""
    from dataclasses import replace

    from .rules import BY_CODE
    from .targets.registry import builtin, check_all

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
        code = finding.code
        if code not in BY_CODE:  # a plugin's own finding: it cannot register a code
            assert not set(names) & set(builtin()), (
                f"a built-in finding without its code: {finding}"
            )
            code = "PC312"
        d = doc.error(code, path, message, key=finding.key and bool(path))
        if finding.severity == "warning":
            warnings.append(replace(d, severity="warning"))
        else:
            errors.append(d)
    if errors:
        raise PipelineError(errors)
    return replace(ir, warnings=tuple(warnings)) if len(warnings) != len(ir.warnings) else ir


def compile_file(path: Path, display: str | None = None) -> IR:
    from .frontend.pins import read_lock
    from .frontend.read import read

    return compile_bytes(display or str(path), read(path), path.parent, read_lock(path.parent))
