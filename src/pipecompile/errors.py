"""User-facing diagnostics.

Every mistake in a pipeline file becomes a :class:`Diagnostic` with the file,
the 1-based line and column of the offending value, the dotted path of the
field, a message and a stable code (:mod:`pipecompile.rules`).
:class:`PipelineError` carries one or more of them; the CLI prints them and exits 2.
Anything else that escapes is a bug (exit 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Path_ = tuple[str | int, ...]

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x0A}
# line and paragraph separators and the bidirectional controls: a terminal or an editor
# breaks the line or reorders the text there ("Trojan Source", CVE-2021-42574)
_ESCAPES |= {
    c: f"\\u{c:04x}"
    for c in (0x2028, 0x2029, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
_ESCAPES_ALL = {**_ESCAPES, 0x0A: "\\n"}


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` with terminal control characters escaped (``\\x1b``), so that a key or
    value in a message can never move the cursor, recolour or retitle the terminal.
    With ``one_line`` newlines are escaped too."""
    return text.translate(_ESCAPES_ALL if one_line else _ESCAPES)


def dotted(path: Path_) -> str:
    """Render a field path the way users write it: ``services.api.ports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int
    column: int
    path: Path_
    message: str
    severity: str = "error"
    code: str = ""  # the rule (PC107): always given, and registered in pipecompile.rules

    def __post_init__(self) -> None:
        from .rules import BY_CODE

        if self.code not in BY_CODE:  # a bug in pipecompile: every diagnostic names its rule
            raise ValueError(f"no registered rule code {self.code!r} for: {self.message}")

    @property
    def col(self) -> int:
        """The column (``column``, as in the JSON output; ``col`` before 0.2)."""
        return self.column

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        field = dotted(self.path)
        prefix = "warning: " if self.severity == "warning" else ""
        text = f"{where}: {prefix}{self.code} {field + ': ' if field else ''}{self.message}"
        return printable(text, one_line=True)


class PipelineError(Exception):
    """One or more located errors in the user's input (exit code 2)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.line, d.column, dotted(d.path)))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while applying; ``done`` of ``total`` changes were made."""

    def __init__(self, signum: int, done: int, total: int) -> None:
        self.signum, self.done, self.total = signum, done, total
        super().__init__(f"interrupted by signal {signum} after {done} of {total} changes")


class UsageError(Exception):
    """A mistake on the command line or in the environment (exit code 2); its rule is
    PC110 unless it names another (lint's missing checkers: PC403)."""

    def __init__(self, message: str, code: str = "PC110") -> None:
        super().__init__(message)
        self.code = code


class Invalid(ValueError):
    """A model validator's refusal with its rule code (pydantic keeps the exception in
    the error's context, where validate reads the code back)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` when a close choice exists, else ``""``."""
    import difflib

    options = list(choices)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not matches and len(word) >= 3:
        matches = [c for c in options if c.startswith(word)][:1]
    return f" (did you mean '{matches[0]}'?)" if matches else ""
