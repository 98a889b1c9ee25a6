"""Command line interface.

Each command is a small function; heavy modules (pydantic, ruamel.yaml, jsonschema,
deepdiff) are imported inside the commands that need them, so a
no-change ``check`` -- the pre-commit hook -- starts about as fast as click.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from .._version import __version__
from ..errors import Interrupted, PipelineError, UsageError, printable
from .cli_explain import explain, graph
from .cli_shared import (
    EXIT_CODES_HELP,
    EXIT_DRIFT,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_IO,
    EXIT_OK,
    FILE_OPTION,
    MACHINE_FORMATS,
    QUIET_OPTION,
    Output,
    _changes,
    _compiled,
    _count,
    _done,
    _echo_err,
    _emit_document,
    _fail,
    _format_option,
    _machine,
    _session,
    _warnings,
)
from .cli_tools import completion, init, lint, pins, rules, schema
from .summary import check_summary

if TYPE_CHECKING:
    from ..output.change import Change, Plan


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "--version", prog_name="pipecompile")
@click.option("--debug", is_flag=True, help="Show full tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Compile one pipeline.yaml into every CI/CD file a service needs.

    \b
    Typical use, from the folder holding pipeline.yaml:
      pipecompile validate        check the pipeline file, write nothing
      pipecompile build           (re)generate the outputs listed under outputs:
      pipecompile check --full    CI drift check: exit 1 if generated files differ
      pipecompile diff            show what build would change
      pipecompile graph           the delivery flow as a Mermaid diagram
      pipecompile explain --event push --ref main
      pipecompile lint            actionlint + zizmor, findings mapped to pipeline.yaml
      pipecompile pins            pinned action SHAs and versions (pipecompile.lock)
      pipecompile init            write a starter pipeline.yaml
      pipecompile schema > pipeline.schema.json
      pipecompile rules           every diagnostic code (PC101 ...), its summary and fix

    Outputs go into the folders named under `outputs:` in the pipeline file,
    relative to its folder.  A manifest of generated files is kept in
    .pipecompile/manifest.json (commit it); build removes files it generated
    earlier that the pipeline no longer produces, and never touches files it
    did not generate.
    """
    ctx.ensure_object(Output)  # main() passes its own; CliRunner gets a fresh one


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def validate(file: Path, fmt: str, quiet: bool) -> int:
    """Check the pipeline file and report every error with file:line:col."""
    ir = _compiled(_session(file))
    if _machine():
        _emit_document(True, _warnings(ir))
        return EXIT_OK
    _done(
        f"{file}: valid ({_count(len(ir.services), 'service')}, "
        f"{_count(len(ir.environments), 'environment')}, "
        f"targets: {', '.join(t for t, _ in ir.outputs) or 'none'})",
        quiet,
    )
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="Only render this target (repeatable): github-actions, codebuild, "
    "terraform, argocd, helm.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite files pipecompile did not generate, and remove stale files "
    "that were edited by hand.",
)
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def build(file: Path, targets: tuple[str, ...], force: bool, fmt: str, quiet: bool) -> int:
    """Render every target and write the files that changed.

    Everything is rendered before anything is written; each file is written
    atomically, and unchanged files are not touched (their mtime stays).
    """
    from ..output.change import UNRESOLVED, Kind

    session = _session(file)
    if not targets and not force and session.fast_clean(refresh=True):
        # Same inputs, same version, every generated file intact: nothing to render.
        if _machine():
            _emit_document(True)
            return EXIT_OK
        _done("0 files changed (inputs and generated files unchanged)", quiet)
        return EXIT_OK
    ir = _compiled(session)
    with session.building():
        plan = session.plan(targets, force=force)
        session.apply(plan)
    if not targets:
        session.fast_clean(refresh=True)  # the stat cache for the next no-change check
    if _machine():
        # json lists every change made; sarif and github only what was left undone
        unresolved = [ch for ch in plan.changes if ch.kind in UNRESOLVED]
        shown = plan.changes if fmt == "json" else unresolved
        _emit_document(not unresolved, _warnings(ir), _changes(shown, False))
        return EXIT_DRIFT if unresolved else EXIT_OK
    verbs = {"create": "created", "update": "updated", "delete": "removed", "debris": "removed"}
    written = 0
    for ch in plan.changes:
        if ch.kind in UNRESOLVED or ch.kind == Kind.UNTRUSTED:
            _echo_err(f"{ch.kind.value}: {ch.path}: {ch.reason}")
        else:
            written += 1
            if ch.reason == "hand edit":  # said even with -q: someone's edit is gone
                _echo_err(
                    f"warning: {printable(ch.path)}: overwrote a hand edit (generated files are "
                    "rewritten from pipeline.yaml; make the change there, or see git diff)"
                )
            if not quiet:
                click.echo(printable(f"{verbs[ch.kind.value]} {ch.path}"))
    from ..insight.removal import consequences

    done = (Kind.UPDATE, Kind.DELETE)
    for note in consequences((c.path, c.old, c.new) for c in plan.changes if c.kind in done):
        _echo_err(printable(note))  # even with -q: it is work left outside the repository
    left = plan.unresolved
    if left:
        _echo_err(
            f"{len(left)} file{'s' if len(left) != 1 else ''} left as they are (see above): "
            "the tree is not yet what the pipeline generates"
        )
        return EXIT_DRIFT
    total = len(plan.manifest.files)
    _done(
        f"{written} file{'s' if written != 1 else ''} changed, "
        f"{total} generated file{'s' if total != 1 else ''} in total",
        quiet,
    )
    return EXIT_OK


def _report(changes: list[Change], show_diff: bool) -> int:
    from ..insight.report import describe

    for ch in changes:
        click.echo(printable(describe(ch)))
        if show_diff:
            from ..insight.report import semantic_summary, unified

            click.echo(unified(ch), nl=False)
            for line in semantic_summary(ch):
                click.echo(printable(f"    {line}"))
    return EXIT_DRIFT if changes else EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Also print unified diffs and a semantic summary for YAML files.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Render every target and compare it with the tree, never trusting the manifest "
    "(the default in CI, when the CI variable is set, and with --diff).",
)
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def check(file: Path, show_diff: bool, full: bool, fmt: str, quiet: bool) -> int:
    """Exit 1 if any generated file is missing, changed or stale (writes nothing).

    Each finding names the file and the reason: hand edit, pipeline changed,
    version skew (made by another pipecompile), missing, or stale.

    \b
    Outside CI, a check whose inputs and files match the manifest answers
    without rendering (fast enough for a pre-commit hook).  The manifest is
    committed, so anyone can edit it, digest included: in CI (CI=true, as
    GitHub Actions and CodeBuild set it), with --full or --diff, check renders
    every target and compares, trusting nothing recorded.
    """
    from .summary import in_ci

    session = _session(file)
    if not (full or show_diff or in_ci()) and session.fast_clean():
        if _machine():
            _emit_document(True)
            return EXIT_OK
        _done(check_summary(file), quiet)
        return EXIT_OK
    ir = _compiled(session)
    with session.building(shared=True):
        plan = session.plan()
    plan.changes += stale_manifest(plan)
    if _machine():
        _emit_document(not plan.changes, _warnings(ir), _changes(plan.changes, show_diff))
        return EXIT_DRIFT if plan.changes else EXIT_OK
    status = _report(plan.changes, show_diff)
    if status == EXIT_OK:
        _done(check_summary(file), quiet)
        return EXIT_OK
    from ..output.change import UNRESOLVED

    if all(ch.kind in UNRESOLVED for ch in plan.changes):  # build would leave them too
        _echo_err(
            "the tree is not what the pipeline generates: build leaves the files above as "
            "they are; resolve each as its line says"
        )
        return status
    from shlex import quote

    _echo_err(
        "generated files are out of date; run: pipecompile build"
        + (f" -f {quote(str(file))}" if str(file) != "pipeline.yaml" else "")
    )
    return status


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def diff(file: Path, fmt: str, quiet: bool) -> int:
    """Show what build would change, as unified diffs, without writing."""
    session = _session(file)
    ir = _compiled(session)
    with session.building(shared=True):
        plan = session.plan()
    changes = plan.changes + stale_manifest(plan)
    if _machine():
        _emit_document(not changes, _warnings(ir), _changes(changes, True))
        return EXIT_DRIFT if changes else EXIT_OK
    status = _report(changes, True)
    if status == EXIT_OK:
        _done(f"diff: {file}: build would change nothing", quiet)
    return status


for _command in (graph, explain, init, pins, lint, completion, schema, rules):
    cli.add_command(_command)


def stale_manifest(plan: Plan) -> list[Change]:
    """The manifest itself, when build would record another one and nothing else differs
    (a hand-written file committed in an output folder): check is not green then."""
    from ..output.change import Change, Kind
    from ..output.state import MANIFEST

    if plan.changes or not plan.records_another():
        return []
    reason = (
        "stale: build would record another manifest (the files in the output folders "
        "changed since it was written; run pipecompile build)"
    )
    return [Change(MANIFEST, Kind.UPDATE, reason, plan.recorded, plan.manifest.text())]


def _io_error(out: Output, message: str, path: str) -> None:
    """An exit-4 error: on stderr, or as the one document --format promises."""
    _fail(out, [f"error: {message}"], message, file=path, code="PC503")


def _prescan(args: list[str]) -> Output:
    """The run's Output as the command line asks for it, read before click parses: a
    usage error (an unknown option, a bad value) stops click before --format's callback,
    and the caller who asked for ``--format sarif > x.sarif`` still gets one document.
    The callbacks set the same fields again once parsing gets that far."""
    out = Output()
    rest = iter(args)
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name in ("--format", "-f", "--file") and not eq:
            value = next(rest, "")
        elif name.startswith("-f") and name != "-f" and not name.startswith("--"):
            name, value = "-f", arg[2:]
        if name == "--format" and value in ("text", *MACHINE_FORMATS):
            out.format = value
        elif name in ("-f", "--file") and value:
            out.pipeline = value
        elif not arg.startswith("-") and not out.command:
            out.command = arg
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every outcome to a documented exit code."""
    from ..output.paths import NotOurs
    from ..output.state import StateError

    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    out = _prescan(args)  # this run's --format, read again below if the run fails
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        previous = None
    try:
        result = cli.main(args=argv, prog_name="pipecompile", standalone_mode=False, obj=out)
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        _echo_err(
            f"interrupted ({name}) after {exc.done} of {exc.total} file changes; the rest "
            "were not made and the manifest was not updated. The journal "
            "(.pipecompile/journal.json) records them: run pipecompile build to finish"
        )
        return 128 + exc.signum
    except (KeyboardInterrupt, _Terminated, click.exceptions.Abort) as exc:
        signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
        _echo_err(f"interrupted ({signum.name}) before writing; nothing was written")
        return 128 + signum
    except StateError as exc:
        text = [f"error: {exc.where}: {exc.problem}", f"  to recover: {exc.fix}"]
        message = f"{exc.problem}; to recover: {exc.fix}"
        _fail(out, text, message, file=exc.file, line=exc.line, code="PC502")
        return EXIT_INVALID
    except NotOurs as exc:
        _io_error(out, f"{exc.path}: {exc.reason}; nothing there was changed", exc.path)
        return EXIT_IO
    except PipelineError as exc:
        if out.machine:  # the same errors, as the document the caller asked for
            from ..insight.machine import diagnostic

            _emit_document(False, [diagnostic(d) for d in exc.diagnostics], out=out)
            return EXIT_INVALID
        for d in exc.diagnostics:
            _echo_err(str(d))
        n = len(exc.diagnostics)
        _echo_err(f"{n} error{'s' if n != 1 else ''}; nothing was written")
        return EXIT_INVALID
    except UsageError as exc:
        _fail(out, [f"error: {exc}"], str(exc), code=exc.code)
        return EXIT_INVALID
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        if out.machine:  # even when click stopped before --format's own callback
            _fail(out, [], exc.format_message(), code="PC110")
            return EXIT_INVALID
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:  # click's usage line and --help hint, then the coded error
            click.echo(ctx.get_usage(), err=True)
            if ctx.command.get_help_option(ctx) is not None:
                click.echo(f"Try '{ctx.command_path} --help' for help.\n", err=True)
        _echo_err(f"error: PC110 {exc.format_message()}")
        return EXIT_INVALID
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        if debug:
            traceback.print_exc()
        _io_error(out, str(exc), exc.filename if isinstance(exc.filename, str) else "")
        return EXIT_IO
    except Exception as exc:
        if debug:
            traceback.print_exc()
        bug = (
            "This is a bug in pipecompile, not in your pipeline file. Please report it "
            "with the command you ran (add --debug for the full traceback)."
        )
        message = f"internal error: {type(exc).__name__}: {exc}"
        _fail(out, [message, bug], f"{message}. {bug}", code="PC504")
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


class _Terminated(BaseException):
    """SIGTERM outside a build's writes (which hold it until the file being written is done)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def run() -> NoReturn:
    """Console entry point: :func:`main`, then exit without tearing down the heap.

    A large build allocates millions of objects that live until the end, so
    the cyclic garbage collector runs rarely (as mypy does), and at exit the
    process leaves at once instead of freeing them one by one (0.2-0.3 s at
    1000 services).  Output is flushed first; pipecompile registers no atexit
    handlers.
    """
    gc.set_threshold(100_000, 50, 100)
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (| head): not an error
        pass
    os._exit(code)
