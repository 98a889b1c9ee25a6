"""The commands that say what the pipeline does: graph (its flow) and explain (an event's
run, a checklist, the trust and rollback reports)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError

if TYPE_CHECKING:
    from ..ir import IR
from .cli_shared import (
    EXIT_CODES_HELP,
    EXIT_OK,
    FILE_OPTION,
    MACHINE_FORMATS,
    QUIET_OPTION,
    _compiled,
    _count,
    _done,
    _echo_err,
    _emit_document,
    _format_option,
    _machine,
    _session,
    _warnings,
)


@click.command(epilog=EXIT_CODES_HELP)
@FILE_OPTION
@_format_option(
    *MACHINE_FORMATS,
    people=("mermaid", "dot", "text"),
    help_people="mermaid renders on GitHub, dot is for Graphviz; text is mermaid",
)
@QUIET_OPTION
def graph(file: Path, fmt: str, quiet: bool) -> int:
    """Draw the delivery flow: branches, environments, gates, rollout, rollback.

    The drawing goes to stdout (pipe it to a file or to Graphviz); the summary line
    goes to stderr, so it never ends up in the drawing.  --format json gives the
    nodes and edges as data."""
    from ..insight.graph import dot, flow, mermaid

    ir = _compiled(_session(file))
    if _machine():
        nodes, edges = flow(ir)
        report = {
            "nodes": [{"id": i, "shape": shape, "label": label} for i, shape, label in nodes],
            "edges": [{"from": a, "to": b, "style": style} for a, b, style in edges],
        }
        _emit_document(True, _warnings(ir), report=report)
        return EXIT_OK
    drawing = "dot" if fmt == "dot" else "mermaid"
    click.echo(mermaid(ir) if drawing == "mermaid" else dot(ir), nl=False)
    if not quiet:
        _echo_err(
            f"graph: {file}: {_count(len(ir.services), 'service')}, "
            f"{_count(len(ir.environments), 'environment')} ({drawing})"
        )
    return EXIT_OK


@click.command(epilog=EXIT_CODES_HELP)
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
@click.option(
    "--trust",
    is_flag=True,
    help="Per environment: who can build, sign, approve and deploy, and which GitOps "
    "repository and admission policy guard it.",
)
@click.option(
    "--local",
    "local",
    is_flag=True,
    help="Explain the local loop: what to install, tilt up, intercepts, links.",
)
@click.option(
    "--ruleset",
    is_flag=True,
    help="Print the GitHub repository ruleset JSON that gates merging "
    "(pipe it to: gh api repos/OWNER/REPO/rulesets --input -).",
)
@click.option(
    "--release-ruleset",
    is_flag=True,
    help="Print the GitHub ruleset JSON that lets only repository admins create an "
    "approval environment's branches (pipe it to: gh api repos/OWNER/REPO/rulesets --input -).",
)
@click.option(
    "--environments",
    is_flag=True,
    help="Print, as JSON, the GitHub REST requests that limit each GitHub environment to "
    "its own branches (deployment branch policies; delivery: github-actions).",
)
@click.option(
    "--rollback",
    nargs=2,
    metavar="SERVICE ENV",
    default=None,
    help="Print the manual rollback of SERVICE in ENV that works with this setup.",
)
@_format_option(*MACHINE_FORMATS)
@QUIET_OPTION
def explain(file: Path, fmt: str, quiet: bool, **asked: Any) -> int:
    """Explain in plain text what an event does, or what to set up outside the repository.

    \b
    Examples:
      pipecompile explain                               # the setup checklist
      pipecompile explain --event push --ref release/1.2
      pipecompile explain --event pull_request --ref main
      pipecompile explain --ref main                    # --ref alone: a push
      pipecompile explain --trust                       # who can build, sign, approve, deploy
      pipecompile explain --ruleset | gh api repos/OWNER/REPO/rulesets --input -
      pipecompile explain --release-ruleset | gh api repos/OWNER/REPO/rulesets --input -
      pipecompile explain --environments                # deployment branch policies
      pipecompile explain --rollback order-service production
      pipecompile explain --local                       # Tilt, Telepresence, OpenLens
    """
    ir = _compiled(_session(file))
    topic, lines, data, summary = _explanation(ir, file, **asked)  # the options, by name
    if _machine():
        report: dict[str, Any] = {"topic": topic}
        report |= {"lines": lines} if lines is not None else {"document": data}
        _emit_document(True, _warnings(ir), report=report)
        return EXIT_OK
    if lines is not None:
        click.echo("\n".join(lines))
    else:
        import json

        click.echo(json.dumps(data, indent=2))
    if topic == "ruleset":
        if not quiet:  # on stderr: stdout is the JSON document gh reads
            _echo_err(summary)
    elif summary:
        _done(summary, quiet)
    return EXIT_OK


def _explanation(
    ir: IR,
    file: Path,
    *,
    event: str | None,
    ref: str | None,
    trust: bool,
    ruleset: bool,
    release_ruleset: bool,
    environments: bool,
    rollback: tuple[str, str] | None,
    local: bool,
) -> tuple[str, list[str] | None, Any, str]:
    """What explain shows: (its topic, its lines or else its JSON document, the summary
    line; empty for the JSON documents that print none)."""
    from ..insight.explain import checklist, explain_event

    if local:
        if event is not None or ref is not None:
            raise UsageError("--local explains the local loop; it takes no --event or --ref")
        if "local" not in dict(ir.outputs):
            raise UsageError(
                "the local output is off (outputs.local: false, or the helm output is off)"
            )
        from ..targets.local import loop

        return "local", loop(ir), None, f"explain: {file}: the local loop"
    if trust:
        from ..insight.trust import trust_report

        return (
            "trust",
            trust_report(ir),
            None,
            f"explain: {file}: who can build, sign, approve and deploy",
        )
    if rollback:
        from ..insight.rollback import rollback_commands

        done = f"explain: {file}: the manual rollback of {rollback[0]} in {rollback[1]}"
        return "rollback", rollback_commands(ir, *rollback), None, done
    if ruleset:
        from ..insight.ruleset import ruleset as ruleset_of

        return "ruleset", None, ruleset_of(ir), f"explain: {file}: the ruleset for {ir.repository}"
    if release_ruleset:
        from ..insight.ruleset import release_ruleset as release_ruleset_of

        return "release-ruleset", None, release_ruleset_of(ir), ""
    if environments:
        from ..insight.environments import environment_requests

        return "environments", None, environment_requests(ir), ""
    if event is None and ref is not None:
        event = "push"  # a branch named without an event is a push to it
    if event is None:
        return (
            "setup",
            checklist(ir),
            None,
            f"explain: {file}: what to set up outside the repository",
        )
    if event != "schedule" and not ref:
        raise UsageError(f"--event {event} needs --ref BRANCH")
    done = f"explain: {file}: a {event}" + (f" to {ref}" if ref else "")
    return event, explain_event(ir, event, ref or ""), None, done
