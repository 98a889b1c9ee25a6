"""``--format json`` (and sarif, github) prints one document on every way a run ends:
also a state file pipecompile cannot trust (exit 2), a usage error (exit 2) and a
file that cannot be read or written (exit 4), which end the run before any report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipecompile.commands import cli
from tests.conftest import ROOT

MINIMAL = ROOT / "samples/minimal/pipeline.yaml"


def document(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out, err = capsys.readouterr()
    assert err == ""  # README: one document on stdout, nothing on stderr
    data: dict[str, Any] = json.loads(out)  # exactly one document, nothing else
    return data


@pytest.fixture()
def built(tmp_path: Path) -> Path:
    shutil.copy(MINIMAL, tmp_path / "pipeline.yaml")
    assert cli.main(["build", "-q", "-f", str(tmp_path / "pipeline.yaml")]) == 0
    return tmp_path


@pytest.mark.parametrize("command", ["check", "build", "diff"])
def test_a_state_file_error_is_one_document(
    built: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    manifest = built / ".pipecompile/manifest.json"
    manifest.write_text(manifest.read_text().replace('"format": 4', '"format": "four"'))
    capsys.readouterr()
    assert cli.main([command, "--format", "json", "-f", str(built / "pipeline.yaml")]) == 2
    doc = document(capsys)
    assert doc["ok"] is False and doc["command"] == command
    [found] = doc["diagnostics"]
    line = manifest.read_text().split("\n").index('  "format": "four",') + 1
    assert found["file"] == ".pipecompile/manifest.json"
    assert (found["line"], found["code"], found["severity"]) == (line, "PC502", "error")
    assert found["message"].startswith("format 'four' is not one this pipecompile reads")
    assert "to recover: delete it and run pipecompile build" in found["message"]


def test_a_control_character_in_the_path_is_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(MINIMAL, tmp_path / "ci\non: x.yaml")
    assert cli.main(["build", "--format", "json", "-f", str(tmp_path / "ci\non: x.yaml")]) == 2
    [found] = document(capsys)["diagnostics"]
    assert "the pipeline's path holds a control character" in found["message"]
    assert found["code"] == "PC110"


@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_a_failed_write_is_one_document(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    from pipecompile.output.paths import Tree

    shutil.copy(MINIMAL, tmp_path / "pipeline.yaml")

    def full_disk(self: Tree, dfd: int, rel: str, data: bytes) -> None:
        raise OSError(28, "No space left on device", rel.rsplit("/", 1)[-1])

    monkeypatch.setattr(Tree, "write", full_disk)
    assert cli.main(["build", "--format", fmt, "-f", str(tmp_path / "pipeline.yaml")]) == 4
    out, err = capsys.readouterr()
    assert err == ""
    if fmt == "github":
        [line] = out.splitlines()
        assert line.startswith("::error file=")
        assert "title=PC503 io-error::[Errno 28] No space left on device" in line
        return
    data = json.loads(out)
    if fmt == "sarif":
        [result] = data["runs"][0]["results"]
        assert result["ruleId"] == "PC503"
        # SARIF 2.1.0 (OASIS, sarif-schema-2.1.0.json, region.startLine: "minimum": 1):
        # an error with no line has no region rather than line 0
        assert "region" not in result["locations"][0]["physicalLocation"]
        return
    [found] = data["diagnostics"]
    assert found["code"] == "PC503"
    assert found["message"].startswith("[Errno 28] No space left on device")
