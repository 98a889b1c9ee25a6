"""What every command shares: exit codes, the common options, output and the session."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import printable
from ..frontend.discovery import find_pipeline

if TYPE_CHECKING:
    from ..ir import IR
    from ..output.change import Change
    from ..session import Session

EXIT_OK, EXIT_DRIFT, EXIT_INVALID, EXIT_INTERNAL, EXIT_IO = 0, 1, 2, 3, 4

EXIT_CODES_HELP = """\b
Exit codes:
  0    success (check: the tree is exactly what pipeline.yaml generates)
  1    check/diff found generated files that differ from pipeline.yaml;
       build left files it may not replace or remove (listed as conflict or
       kept; lint: the checkers reported findings)
  2    invalid pipeline file, lock, manifest or command-line usage;
       nothing was written
  3    internal error in pipecompile (please report it)
  4    a file could not be read or written (permissions, disk full); the
       manifest is only updated after every write succeeded
  130  interrupted (SIGINT; 143 for SIGTERM): says what was written, and
       the next build finishes the job"""


def _file_option(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None or ctx.resilient_parsing:
        return value
    found = find_pipeline(Path.cwd())
    ctx.ensure_object(Output).pipeline = str(found)
    return found


FILE_OPTION = click.option(
    "-f",
    "--file",
    "file",
    default=None,
    callback=_file_option,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pipeline file; outputs are written relative to its folder. "
    "Default: the nearest pipeline.yaml upward from here, within the repository.",
)


_COLOURS = (("error", "red"), ("conflict", "red"), ("kept", "yellow"), ("warning", "yellow"))


def colour_on() -> bool:
    """Colour unless NO_COLOR is set (https://no-color.org); click adds it only on a TTY."""
    return not os.environ.get("NO_COLOR")


def _echo_err(msg: str) -> None:
    text = printable(msg)  # escape first: the colour codes are ours, never the input's
    if colour_on():
        for word, fg in _COLOURS:
            if text.startswith(f"{word}:") or f": {word}: " in text[:200]:
                text = click.style(text, fg=fg)
                break
    click.echo(text, err=True)


def _count(n: int, noun: str) -> str:
    """``1 service``, ``2 services`` (never "1 services")."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _done(summary: str, quiet: bool) -> None:
    """The one-line summary every command prints on success (unless -q)."""
    if not quiet:
        click.echo(click.style(summary, fg="green") if colour_on() else summary)


QUIET_OPTION = click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")

FC = TypeVar("FC", bound=Callable[..., Any])


@dataclass
class Output:
    """How one run reports: --format (text for people; json, sarif, github for machines,
    documented in insight/machine.py and the README) and the command that reports.

    One per run, carried in click's context (``obj``): main() makes it and reads it
    again on its error path, so nothing survives from one in-process call to the next."""

    format: str = "text"
    command: str = ""
    pipeline: str = "pipeline.yaml"  # as given (-f) or found: where a placeless error goes

    @property
    def machine(self) -> bool:
        return self.format in MACHINE_FORMATS


def output() -> Output:
    """This run's :class:`Output` (a default one outside main(), e.g. CliRunner)."""
    ctx = click.get_current_context(silent=True)
    return Output() if ctx is None else ctx.ensure_object(Output)


MACHINE_FORMATS = ("json", "sarif", "github")


def _format_option(
    *choices: str, people: tuple[str, ...] = ("text",), help_people: str = ""
) -> Callable[[FC], FC]:
    """--format: ``people``'s formats (text; graph's drawings), then the machines'."""

    def remember(ctx: click.Context, param: click.Parameter, value: str) -> str:
        out = ctx.ensure_object(Output)
        out.format, out.command = value, ctx.info_name or ""
        return value

    return click.option(
        "--format",
        "fmt",
        type=click.Choice([*people, *choices]),
        default=people[0],
        show_default=True,
        is_eager=True,
        callback=remember,
        help=f"Output for people ({help_people or ', '.join(people)}) or machines ("
        + ", ".join(choices)
        + "; one document on stdout, see the README). Every diagnostic carries its "
        "code (pipecompile rules).",
    )


def _machine() -> bool:
    return output().machine


def _emit_document(
    ok: bool,
    diagnostics: Any = (),
    changes: Any = (),
    out: Output | None = None,
    report: dict[str, Any] | None = None,
) -> None:
    """The run's one document, in its --format (json, sarif or github)."""
    from ..insight.machine import emit

    out = out or output()
    document = emit(
        out.format, out.command, ok, list(diagnostics), list(changes), report, out.pipeline
    )
    click.echo(document)


def _fail(
    out: Output,
    text: list[str],
    message: str,
    *,
    file: str = "",
    line: int = 0,
    code: str,
) -> None:
    """An error that ends the run before any report (a state file, an I/O error, the
    command line): the ``text`` lines on stderr, or with a machine ``--format`` the one
    document it promises, and nothing on stderr.  ``out`` is main()'s: click's context
    is gone by then."""
    if not out.machine:
        for line_ in text:
            _echo_err(line_)
        return
    # no line: null, never 0 (JSON has no line 0; SARIF and github leave the region out)
    found = {"file": file, "line": line or None, "column": 1 if line else None, "path": ""}
    _emit_document(
        False, [{**found, "message": message, "severity": "error", "code": code}], out=out
    )


def _session(file: Path) -> Session:
    from ..session import Session

    return Session.open(file)


def _compiled(session: Session) -> IR:
    """The session's IR; its warnings are printed once, here (in the document, for json)."""
    ir = session.ir
    if not _machine():
        for w in ir.warnings:
            _echo_err(str(w))
    return ir


def _warnings(ir: IR) -> list[dict[str, Any]]:
    from ..insight.machine import diagnostic

    return [diagnostic(w) for w in ir.warnings]


def _changes(changes: list[Change], with_diff: bool) -> list[dict[str, Any]]:
    from ..insight.report import unified

    out = []
    for ch in changes:
        entry: dict[str, Any] = {"file": ch.path, "kind": str(ch.kind), "reason": ch.reason}
        if with_diff:
            entry["diff"] = unified(ch)
        out.append(entry)
    return out
