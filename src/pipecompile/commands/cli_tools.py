"""The commands around the build: init, pins, lint, completion, schema, rules (graph and
explain are in :mod:`.cli_explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UsageError, printable
from .cli_shared import (
    EXIT_CODES_HELP,
    EXIT_DRIFT,
    EXIT_INVALID,
    EXIT_OK,
    FILE_OPTION,
    MACHINE_FORMATS,
    QUIET_OPTION,
    _compiled,
    _count,
    _done,
    _emit_document,
    _format_option,
    _machine,
    _session,
    _warnings,
)


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def pins(file: Path, fmt: str, quiet: bool) -> int:
    """Show every pinned version, where it comes from and which generated files use it.

    Pins come from pipecompile.lock next to the pipeline file when it sets them,
    else from pipecompile's defaults; edit the lock (or let a bot) to update them.
    """
    ir = _compiled(_session(file))
    from ..frontend.pins import by_tag_only
    from ..jobs import expected

    rendered = expected(ir)
    folder_of = dict(ir.outputs)

    def files(needle: str) -> list[str]:
        return sorted(str(p) for p, (_, text) in rendered.items() if needle in text)

    def used_in(needle: str) -> str:
        hits = files(needle)
        return f"{len(hits)} file{'s' if len(hits) != 1 else ''}" if hits else "unused"

    values = {key: str(getattr(ir.pins, key)) for key, _ in ir.pins.sources}
    sources = [p.source for p in ir.pins.actions] + [source for _, source in ir.pins.sources]
    locked = sum(1 for source in sources if source != "default")
    if _machine():
        report = {
            "actions": [
                {
                    "action": p.action,
                    "version": p.version,
                    "sha": p.sha,
                    "source": p.source,
                    "files": files(f"{p.action}@{p.sha}"),
                }
                for p in ir.pins.actions
            ],
            "values": [
                {"key": key, "value": values[key], "source": source, "files": files(values[key])}
                for key, source in ir.pins.sources
            ],
            "by_tag_only": by_tag_only(ir.pins),
            "locked": locked,
        }
        _emit_document(True, _warnings(ir), report=report)
        return EXIT_OK
    click.echo(f"GitHub Actions (in {folder_of.get('github-actions', '-')}):")
    width = max(len(p.action) for p in ir.pins.actions)
    for p in ir.pins.actions:
        click.echo(
            f"  {p.action.ljust(width)}  {p.version:<8} {p.sha}  {p.source:<16} "
            f"{used_in(f'{p.action}@{p.sha}')}"
        )
    click.echo("Other pins:")
    for key, source in ir.pins.sources:
        click.echo(f"  {key:<24} {values[key]:<32} {source:<16} {used_in(values[key])}")
    for line in by_tag_only(ir.pins):
        click.echo(f"warning: {line}")
    _done(f"pins: {_count(len(sources), 'pin')}, {locked} from the lock", quiet)
    return EXIT_OK


@click.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@click.option(
    "--zizmor-persona",
    type=click.Choice(["regular", "pedantic", "auditor"]),
    default="regular",
    show_default=True,
    help="How picky zizmor is.",
)
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def lint(file: Path, zizmor_persona: str, fmt: str, quiet: bool) -> int:
    """Run actionlint and zizmor on the generated workflows; report findings in pipeline.yaml.

    Findings are located at the pipeline.yaml field that produced the step
    (a ci.steps[i].run line, or the security / notifications / gitops section),
    else at the generated file, once with every generated place it shows up in.
    Exit 1 when there are findings, 2 when a checker is missing (lint never
    passes having checked nothing): pip install 'pipecompile[lint]' brings both.
    """
    from ..insight.lint import lint as run_lint

    session = _session(file)
    ir = _compiled(session)
    doc = session.compile()[0]
    # the user's own policy choices that skip a check: listed, located, not findings
    from ..targets.registry import registry

    # the pipeline's own warnings (PC208, PC310, ...): in every format, as text lint shows them
    notes: list[dict[str, Any]] = _warnings(ir)
    for name, _ in ir.outputs:
        for choice in registry()[name].choices(ir):
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
                    "code": "PC306",
                }
            )
            if not _machine():
                click.echo(
                    printable(f"{doc.file}:{row}:{col}: PC306 {field}: choice: {choice.message}")
                )
    if "github-actions" not in dict(ir.outputs):
        if _machine():
            _lint_document(True, notes)
            return EXIT_OK
        click.echo("the github-actions output is off: nothing to lint")
        return EXIT_OK
    folder = dict(ir.outputs)["github-actions"]
    from ..jobs import expected

    rendered = {p: text for p, (target, text) in expected(ir, ("github-actions",)).items()}
    from ..targets.registry import registry

    workflows = registry()["github-actions"]
    findings, skipped = run_lint(doc, rendered, folder, workflows.origin, zizmor_persona)
    if skipped:
        problem = (
            f"{' and '.join(skipped)} {'is' if len(skipped) == 1 else 'are'} not installed, "
            "so lint would check nothing; install them with: pip install 'pipecompile[lint]'"
        )
        if _machine():  # still one document: `lint --format sarif > x.sarif || true`
            missing = {"file": doc.file, "line": 1, "column": 1, "path": "", "message": problem}
            _lint_document(False, [{**missing, "severity": "error", "code": "PC403"}, *notes])
            return EXIT_INVALID
        # its code in the text too, as the machine formats give it
        raise UsageError(f"PC403 {problem}", code="PC403")
    if _machine():
        found = [
            {
                "file": f.file,
                "line": f.line,
                "column": f.col,
                "path": ".".join(map(str, f.path)),
                "message": f.message,
                "severity": "error",
                "code": f.code,
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
    _emit_document(ok, diagnostics)


@click.command()
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
    root = click.get_current_context().find_root().command  # the whole command table

    click.echo(cls(root, {}, "pipecompile", "_PIPECOMPILE_COMPLETE").source())
    return EXIT_OK


@click.command()
def schema() -> int:
    """Print the JSON schema of pipeline files (the published pipeline.schema.json)."""
    from ..frontend.validate import schema_text

    click.echo(schema_text(), nl=False)
    return EXIT_OK


@click.command()
def rules() -> int:
    """Print every diagnostic code with its summary and fix (the page docs/rules.md).

    \b
    Codes: PC1xx the file, its YAML, the schema and the command line; PC2xx
    references and rules across fields; PC3xx what a target cannot express;
    PC4xx lint's checkers; PC5xx the generated tree and the run. Silence a
    warning on its line of pipeline.yaml with  # pipecompile: ignore[PC305]
    (errors cannot be ignored).
    """
    from ..rules import markdown

    click.echo(markdown(), nl=False)
    return EXIT_OK
