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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from . import __version__
from .discovery import find_pipeline
from .errors import Interrupted, PipelineError, UsageError, printable

if TYPE_CHECKING:
    from .ir import IR
    from .output.sync import Change
    from .session import Session

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
    return find_pipeline(Path.cwd())


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


def _done(summary: str, quiet: bool) -> None:
    """The one-line summary every command prints on success (unless -q)."""
    if not quiet:
        click.echo(click.style(summary, fg="green") if colour_on() else summary)


QUIET_OPTION = click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")

# --format: text for people; json (and sarif for lint) for machines, documented in
# pipecompile/machine.py and the README. Set by the command, read by main()'s error path.
_OUTPUT = {"format": "text", "command": ""}
FC = TypeVar("FC", bound=Callable[..., Any])


def _format_option(*choices: str) -> Callable[[FC], FC]:
    def remember(ctx: click.Context, param: click.Parameter, value: str) -> str:
        _OUTPUT["format"], _OUTPUT["command"] = value, ctx.info_name or ""
        return value

    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", *choices]),
        default="text",
        show_default=True,
        is_eager=True,
        callback=remember,
        help="Output for people (text) or machines ("
        + ", ".join(choices)
        + "; one document on stdout, see the README).",
    )


def _machine() -> bool:
    return _OUTPUT["format"] != "text"


def _emit_document(ok: bool, diagnostics: Any = (), changes: Any = ()) -> None:
    from .machine import document

    click.echo(document(_OUTPUT["command"], ok, diagnostics, changes))


def _session(file: Path) -> Session:
    from .session import Session

    return Session.open(file)


def _compiled(session: Session) -> IR:
    """The session's IR; its warnings are printed once, here (in the document, for json)."""
    ir = session.ir
    if not _machine():
        for w in ir.warnings:
            _echo_err(str(w))
    return ir


def _warnings(ir: IR) -> list[dict[str, Any]]:
    from .machine import diagnostic

    return [diagnostic(w) for w in ir.warnings]


def _changes(changes: list[Change], with_diff: bool) -> list[dict[str, Any]]:
    from .report import unified

    out = []
    for ch in changes:
        entry: dict[str, Any] = {"file": ch.path, "kind": str(ch.kind), "reason": ch.reason}
        if with_diff:
            entry["diff"] = unified(ch)
        out.append(entry)
    return out


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
      pipecompile check --diff    CI drift check: exit 1 if generated files differ
      pipecompile diff            show what build would change
      pipecompile graph           the delivery flow as a Mermaid diagram
      pipecompile explain --event push --ref main
      pipecompile lint            actionlint + zizmor, findings mapped to pipeline.yaml
      pipecompile pins            pinned action SHAs and versions (pipecompile.lock)
      pipecompile init            write a starter pipeline.yaml
      pipecompile schema > pipeline.schema.json

    Outputs go into the folders named under `outputs:` in the pipeline file,
    relative to its folder.  A manifest of generated files is kept in
    .pipecompile/manifest.json (commit it); build removes files it generated
    earlier that the pipeline no longer produces, and never touches files it
    did not generate.
    """
    ctx.obj = {"debug": debug}


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@_format_option("json")
@QUIET_OPTION
def validate(file: Path, fmt: str, quiet: bool) -> int:
    """Check the pipeline file and report every error with file:line:col."""
    ir = _compiled(_session(file))
    if _machine():
        _emit_document(True, _warnings(ir))
        return EXIT_OK
    _done(
        f"{file}: valid ({len(ir.services)} services, {len(ir.environments)} "
        f"environments, targets: {', '.join(t for t, _ in ir.outputs)})",
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
@QUIET_OPTION
def build(file: Path, targets: tuple[str, ...], force: bool, quiet: bool) -> int:
    """Render every target and write the files that changed.

    Everything is rendered before anything is written; each file is written
    atomically, and unchanged files are not touched (their mtime stays).
    """
    from .output.sync import UNRESOLVED

    session = _session(file)
    if not targets and not force and session.fast_clean():
        # Same inputs, same version, every generated file intact: nothing to render.
        _done("0 files changed (inputs and generated files unchanged)", quiet)
        return EXIT_OK
    _compiled(session)
    plan = session.plan(targets, force=force)
    session.apply(plan)
    verbs = {"create": "created", "update": "updated", "delete": "removed", "debris": "removed"}
    written = 0
    for ch in plan.changes:
        if ch.kind in UNRESOLVED:
            _echo_err(f"{ch.kind.value}: {ch.path}: {ch.reason}")
        else:
            written += 1
            if not quiet:
                click.echo(printable(f"{verbs[ch.kind.value]} {ch.path}"))
    left = plan.unresolved
    if left:
        _echo_err(
            f"{len(left)} file{'s' if len(left) != 1 else ''} left as they are (see above): "
            "the tree is not yet what the pipeline generates"
        )
        return EXIT_DRIFT
    _done(
        f"{written} file{'s' if written != 1 else ''} changed, "
        f"{len(plan.manifest.files)} generated files in total",
        quiet,
    )
    return EXIT_OK


def _report(changes: list[Change], show_diff: bool) -> int:
    from .report import describe

    for ch in changes:
        click.echo(printable(describe(ch)))
        if show_diff:
            from .report import semantic_summary, unified

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
@_format_option("json")
@QUIET_OPTION
def check(file: Path, show_diff: bool, fmt: str, quiet: bool) -> int:
    """Exit 1 if any generated file is missing, changed or stale (writes nothing).

    Each finding names the file and the reason: hand edit, pipeline changed,
    version skew (made by another pipecompile), missing, or stale.
    """
    session = _session(file)
    if session.fast_clean():
        if _machine():
            _emit_document(True)
            return EXIT_OK
        _done(f"check: {file}: the generated files are up to date", quiet)
        return EXIT_OK
    ir = _compiled(session)
    plan = session.plan()
    if _machine():
        _emit_document(not plan.changes, _warnings(ir), _changes(plan.changes, show_diff))
        return EXIT_DRIFT if plan.changes else EXIT_OK
    status = _report(plan.changes, show_diff)
    if status == EXIT_OK:
        _done(f"check: {file}: the generated files are up to date", quiet)
        return EXIT_OK
    _echo_err(
        "generated files are out of date; run: pipecompile build"
        + (f" -f {file}" if str(file) != "pipeline.yaml" else "")
    )
    return status


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@_format_option("json")
@QUIET_OPTION
def diff(file: Path, fmt: str, quiet: bool) -> int:
    """Show what build would change, as unified diffs, without writing."""
    session = _session(file)
    ir = _compiled(session)
    changes = session.plan().changes
    if _machine():
        _emit_document(not changes, _warnings(ir), _changes(changes, True))
        return EXIT_DRIFT if changes else EXIT_OK
    status = _report(changes, True)
    if status == EXIT_OK:
        _done(f"diff: {file}: build would change nothing", quiet)
    return status


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid renders on GitHub; dot is for Graphviz.",
)
def graph(file: Path, fmt: str) -> int:
    """Draw the delivery flow: branches, environments, gates, rollout, rollback."""
    from .graph import dot, mermaid

    ir = _compiled(_session(file))
    click.echo(mermaid(ir) if fmt == "mermaid" else dot(ir), nl=False)
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@click.option(
    "--event",
    type=click.Choice(["push", "pull_request", "schedule"]),
    help="Explain what this event does (default: list what must exist outside the repository).",
)
@click.option(
    "--ref",
    default=None,
    help="Branch pushed to, or targeted by the pull request (alone: --event push).",
)
def explain(file: Path, event: str | None, ref: str | None) -> int:
    """Explain in plain text what an event does, or what to set up outside the repository.

    \b
    Examples:
      pipecompile explain                               # the setup checklist
      pipecompile explain --event push --ref release/1.2
      pipecompile explain --event pull_request --ref main
      pipecompile explain --ref main                    # --ref alone: a push
    """
    from .explain import checklist, explain_event

    ir = _compiled(_session(file))
    if event is None and ref is not None:
        event = "push"  # a branch named without an event is a push to it
    if event is None:
        lines = checklist(ir)
    else:
        if event != "schedule" and not ref:
            raise UsageError(f"--event {event} needs --ref BRANCH")
        lines = explain_event(ir, event, ref or "")
    click.echo("\n".join(lines))
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "-f",
    "--file",
    "file",
    default="pipeline.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to create.",
)
def init(file: Path) -> int:
    """Write a commented starter pipeline.yaml (never overwrites an existing file)."""
    from importlib import resources

    if file.exists():
        raise UsageError(f"{file} already exists; not overwriting it")
    text = (resources.files("pipecompile") / "data" / "starter.pipeline.yaml").read_text("utf-8")
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("x", encoding="utf-8") as fh:
        fh.write(text)
    click.echo(
        f"wrote {file}; edit it, then run: pipecompile build"
        + (f" -f {file}" if str(file) != "pipeline.yaml" else "")
    )
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
def pins(file: Path) -> int:
    """Show every pinned version, where it comes from and which generated files use it.

    Pins come from pipecompile.lock next to the pipeline file when it sets them,
    else from pipecompile's defaults; edit the lock (or let a bot) to update them.
    """
    ir = _compiled(_session(file))
    from .jobs import expected

    rendered = expected(ir)
    folder_of = dict(ir.outputs)

    def used_in(needle: str) -> str:
        hits = sorted(str(p) for p, (_, text) in rendered.items() if needle in text)
        return f"{len(hits)} file{'s' if len(hits) != 1 else ''}" if hits else "unused"

    click.echo(f"GitHub Actions (in {folder_of.get('github-actions', '-')}):")
    width = max(len(p.action) for p in ir.pins.actions)
    for p in ir.pins.actions:
        click.echo(
            f"  {p.action.ljust(width)}  {p.version:<8} {p.sha}  {p.source:<16} "
            f"{used_in(f'{p.action}@{p.sha}')}"
        )
    values = {key: str(getattr(ir.pins, key)) for key, _ in ir.pins.sources}
    click.echo("Other pins:")
    for key, source in ir.pins.sources:
        click.echo(f"  {key:<24} {values[key]:<32} {source:<16} {used_in(values[key])}")
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@click.option(
    "--zizmor-persona",
    type=click.Choice(["regular", "pedantic", "auditor"]),
    default="regular",
    show_default=True,
    help="How picky zizmor is.",
)
@_format_option("json", "sarif")
@QUIET_OPTION
def lint(file: Path, zizmor_persona: str, fmt: str, quiet: bool) -> int:
    """Run actionlint and zizmor on the generated workflows; report findings in pipeline.yaml.

    Findings are located at the pipeline.yaml field that produced the step
    (a ci.steps[i].run line, or the security / notifications / gitops section),
    else at the generated file, once with every generated place it shows up in.
    Exit 1 when there are findings, 2 when a checker is missing (lint never
    passes having checked nothing): pip install 'pipecompile[lint]' brings both.
    """
    from .lint import lint as run_lint

    session = _session(file)
    ir = _compiled(session)
    doc = session.compile()[0]
    # the user's own policy choices that skip a check: listed, located, not findings
    from .targets import registry

    notes: list[dict[str, Any]] = []
    for name, _ in ir.outputs:
        for choice in getattr(registry()[name], "choices", lambda ir: [])(ir):
            row, col = doc.pos(choice.path)
            field = ".".join(map(str, choice.path))
            notes.append(
                {
                    "file": doc.file,
                    "line": row,
                    "column": col,
                    "path": field,
                    "message": f"choice: {choice.message}",
                    "severity": "note",
                    "tool": "pipecompile",
                }
            )
            if not _machine():
                click.echo(printable(f"{doc.file}:{row}:{col}: {field}: choice: {choice.message}"))
    if "github-actions" not in dict(ir.outputs):
        if _machine():
            _lint_document(True, notes)
            return EXIT_OK
        click.echo("the github-actions output is off: nothing to lint")
        return EXIT_OK
    folder = dict(ir.outputs)["github-actions"]
    from .jobs import expected

    rendered = {p: text for p, (target, text) in expected(ir, ("github-actions",)).items()}
    findings, skipped = run_lint(doc, rendered, folder, zizmor_persona)
    if skipped:
        raise UsageError(
            f"{' and '.join(skipped)} {'is' if len(skipped) == 1 else 'are'} not installed, "
            "so lint would check nothing; install them with: pip install 'pipecompile[lint]'"
        )
    if _machine():
        found = [
            {
                "file": f.file,
                "line": f.line,
                "column": f.col,
                "path": ".".join(map(str, f.path)),
                "message": f.message,
                "severity": "error",
                "tool": f.tool,
                "places": list(f.places),
            }
            for f in findings
        ]
        _lint_document(not findings, found + notes)
        return EXIT_DRIFT if findings else EXIT_OK
    for line in findings:
        click.echo(printable(str(line)))
    if findings:
        return EXIT_DRIFT
    _done(
        f"lint: {len(rendered)} workflows checked with actionlint and zizmor "
        f"({zizmor_persona} persona): no findings",
        quiet,
    )
    return EXIT_OK


def _lint_document(ok: bool, diagnostics: list[dict[str, Any]]) -> None:
    if _OUTPUT["format"] == "sarif":
        from .machine import sarif

        click.echo(sarif(diagnostics))
    else:
        _emit_document(ok, diagnostics)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> int:
    """Print the shell completion script for SHELL.

    \b
    bash:  pipecompile completion bash > ~/.local/share/bash-completion/completions/pipecompile
    zsh:   pipecompile completion zsh > "${fpath[1]}/_pipecompile"
    fish:  pipecompile completion fish > ~/.config/fish/completions/pipecompile.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "pipecompile", "_PIPECOMPILE_COMPLETE").source())
    return EXIT_OK


@cli.command()
def schema() -> int:
    """Print the JSON schema of pipeline files (the published pipeline.schema.json)."""
    from .validate import schema_text

    click.echo(schema_text(), nl=False)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every outcome to a documented exit code."""
    from .output.paths import NotOurs
    from .output.state import StateError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        previous = None
    try:
        result = cli.main(args=argv, prog_name="pipecompile", standalone_mode=False)
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
        _echo_err(f"error: {exc.file}: {exc.problem}")
        _echo_err(f"  to recover: {exc.fix}")
        return EXIT_INVALID
    except NotOurs as exc:
        _echo_err(f"error: {exc.path}: {exc.reason}; nothing there was changed")
        return EXIT_IO
    except PipelineError as exc:
        if _machine():  # the same errors, as the document the caller asked for
            from .machine import diagnostic

            found = [diagnostic(d) for d in exc.diagnostics]
            if _OUTPUT["format"] == "sarif":
                from .machine import sarif

                click.echo(sarif([{**d, "tool": "pipecompile"} for d in found]))
            else:
                _emit_document(False, found)
            return EXIT_INVALID
        for d in exc.diagnostics:
            _echo_err(str(d))
        n = len(exc.diagnostics)
        _echo_err(f"{n} error{'s' if n != 1 else ''}; nothing was written")
        return EXIT_INVALID
    except UsageError as exc:
        _echo_err(f"error: {exc}")
        return EXIT_INVALID
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_INVALID
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        if debug:
            traceback.print_exc()
        _echo_err(f"error: {exc}")
        return EXIT_IO
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _echo_err(f"internal error: {type(exc).__name__}: {exc}")
        _echo_err(
            "This is a bug in pipecompile, not in your pipeline file. Please report it "
            "with the command you ran (add --debug for the full traceback)."
        )
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
