"""--format on the commands that report (issue 23): explain, graph and pins give one
JSON document with what people read as data, SARIF and github annotations with the
pipeline's diagnostics; a place with no line is null in JSON, never 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest

from pipecompile.commands import cli
from pipecompile.commands.cli_shared import MACHINE_FORMATS
from pipecompile.compiler import compile_file
from pipecompile.insight.graph import flow
from pipecompile.insight.ruleset import ruleset
from tests.conftest import ROOT

MINIMAL = str(ROOT / "samples/minimal/pipeline.yaml")
ECOMMERCE = str(ROOT / "samples/ecommerce/pipeline.yaml")  # warns PC208 twice
# the commands that report nothing about a pipeline: a file, a script, the schema, the rules
NOT_REPORTING = {"init", "completion", "schema", "rules"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def document(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status, out, err = run(capsys, *args)
    assert (status, err) == (0, "")  # one document on stdout, nothing on stderr
    body: dict[str, Any] = json.loads(out)
    return body


def test_every_command_that_reports_has_the_shared_format_option() -> None:
    for name, command in cli.cli.commands.items():
        if name in NOT_REPORTING:
            continue
        (option,) = [p for p in command.params if p.name == "fmt"]
        assert isinstance(option.type, click.Choice), name
        assert {"text", *MACHINE_FORMATS} <= set(option.type.choices), name


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["explain"], "lines"),
        (["explain", "--event", "push", "--ref", "main"], "lines"),
        (["explain", "--trust"], "lines"),
        (["explain", "--ruleset"], "document"),
        (["explain", "--environments"], "document"),
    ],
)
def test_explain_json_is_what_text_prints(
    capsys: pytest.CaptureFixture[str], args: list[str], key: str
) -> None:
    status, text, _ = run(capsys, *args, "-q", "-f", MINIMAL)
    assert status == 0
    body = document(capsys, *args, "--format", "json", "-f", MINIMAL)
    assert (body["command"], body["ok"], body["diagnostics"]) == ("explain", True, [])
    report = body["explain"]
    if key == "lines":
        assert "\n".join(report["lines"]) + "\n" == text
    else:
        assert report["document"] == json.loads(text)
    if "--ruleset" in args:
        assert report == {"topic": "ruleset", "document": ruleset(compile_file(Path(MINIMAL)))}


def test_graph_json_is_the_flow(capsys: pytest.CaptureFixture[str]) -> None:
    body = document(capsys, "graph", "--format", "json", "-f", MINIMAL)
    nodes, edges = flow(compile_file(Path(MINIMAL)))
    assert body["command"] == "graph"
    assert [(n["id"], n["shape"], n["label"]) for n in body["graph"]["nodes"]] == nodes
    assert [(e["from"], e["to"], e["style"]) for e in body["graph"]["edges"]] == edges


def test_graph_text_is_the_mermaid_drawing(capsys: pytest.CaptureFixture[str]) -> None:
    status, text, err = run(capsys, "graph", "--format", "text", "-f", MINIMAL)
    assert (status, err.endswith("(mermaid)\n")) == (0, True)
    assert run(capsys, "graph", "-f", MINIMAL)[1] == text
    assert text.startswith("flowchart LR\n")


def test_pins_json_lists_every_pin_with_its_files(capsys: pytest.CaptureFixture[str]) -> None:
    status, text, _ = run(capsys, "pins", "-f", MINIMAL)
    assert status == 0
    body = document(capsys, "pins", "--format", "json", "-f", MINIMAL)
    pins = body["pins"]
    ir = compile_file(Path(MINIMAL))
    assert [a["action"] for a in pins["actions"]] == [p.action for p in ir.pins.actions]
    assert [v["key"] for v in pins["values"]] == [key for key, _ in ir.pins.sources]
    total = len(pins["actions"]) + len(pins["values"])
    assert f"pins: {total} pins, {pins['locked']} from the lock" in text
    for action in pins["actions"]:  # the text's "N files" is the JSON's list
        used = len(action["files"])
        shown = f"{used} file{'s' if used != 1 else ''}" if used else "unused"
        assert f"{action['sha']}  {action['source']:<16} {shown}\n" in text
    assert all(f"warning: {line}\n" in text for line in pins["by_tag_only"])


@pytest.mark.parametrize("command", [["explain"], ["graph"], ["pins"]])
@pytest.mark.parametrize("fmt", MACHINE_FORMATS)
def test_the_pipelines_warnings_are_in_every_machine_format(
    capsys: pytest.CaptureFixture[str], command: list[str], fmt: str
) -> None:
    status, out, err = run(capsys, *command, "--format", fmt, "-f", ECOMMERCE)
    assert (status, err) == (0, "")
    if fmt == "github":
        assert out.count("::warning ") == 2 and "title=PC208 shared-gitops-repository::" in out
        return
    body = json.loads(out)
    if fmt == "sarif":
        codes = [r["ruleId"] for r in body["runs"][0]["results"]]
        assert body["runs"][0]["tool"]["driver"]["name"] == f"pipecompile {command[0]}"
    else:
        codes = [d["code"] for d in body["diagnostics"]]
        assert body[command[0]]  # and the report itself
    assert codes == ["PC208", "PC208"]


@pytest.mark.parametrize("command", ["explain", "graph", "pins"])
def test_an_invalid_pipeline_is_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text(Path(MINIMAL).read_text().replace("web: {}", "web: {port: 70000}"))
    status, out, err = run(capsys, command, "--format", "json", "-f", str(bad))
    assert (status, err) == (2, "")
    body = json.loads(out)
    assert (body["command"], body["ok"]) == (command, False)
    assert [(d["code"], d["line"]) for d in body["diagnostics"]] == [("PC107", 15)]
    assert command not in body  # nothing to report


def test_a_place_with_no_line_is_null_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "--local", "--event", "push", "--format", "json", "-f", MINIMAL]
    status, out, err = run(capsys, *args)
    assert (status, err) == (2, "")
    (found,) = json.loads(out)["diagnostics"]
    assert found["code"] == "PC110" and found["message"].startswith("--local explains")
    assert (found["file"], found["line"], found["column"]) == ("", None, None)
    status, out, _ = run(capsys, *args[:-4], "--format", "sarif", "-f", MINIMAL)
    # every SARIF result has a location (github/codeql-action#2459): the pipeline file
    # given, with no region (this asserted no locations before, which upload refuses)
    [location] = json.loads(out)["runs"][0]["results"][0]["locations"]
    assert "region" not in location["physicalLocation"]
    assert location["physicalLocation"]["artifactLocation"]["uri"].endswith(
        "samples/minimal/pipeline.yaml"
    )
