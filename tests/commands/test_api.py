"""The Python API: pipecompile.compile(path) -> the IR, the files and the diagnostics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pipecompile
from tests.conftest import ROOT


def test_a_valid_pipeline_gives_the_ir_and_exactly_the_files_build_writes() -> None:
    result = pipecompile.compile(ROOT / "samples/ecommerce/pipeline.yaml")
    # the reference's one GitOps repository for every environment: valid, and said so
    assert result.ok and [(d.code, d.severity) for d in result.diagnostics] == [
        ("PC208", "warning"),
        ("PC208", "warning"),
    ]
    assert result.ir is not None and result.ir.project == "ecommerce"
    committed = ROOT / "samples/ecommerce"
    # an admission policy per environment (issue 28), external_secrets.tf, clusters.tf
    # and the ServiceMonitor template (issue 27), the local target's 8 (dev/, issue 30),
    # issue 29's (and its phases.tf, four <env>.tfvars, reviews.tf and alerts.tf); one
    # deploy and one DAST buildspec for every environment, zap.yml (25); sign.yml, the sign
    # projects' (issue 28: signing is no longer the build session's)
    assert len(result.files) == 75  # review.yml: on CodePipeline delivery, reviews.tf's project
    for path, text in result.files.items():
        assert (committed / path).read_text("utf-8") == text, path


def test_an_invalid_pipeline_gives_its_located_errors(tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yaml"
    text = (
        (ROOT / "samples/minimal/pipeline.yaml").read_text().replace("web: {}", "web:\n    port: 0")
    )
    bad.write_text(text)
    result = pipecompile.compile(str(bad))
    assert not result.ok and result.ir is None and result.files == {}
    assert [(d.line, d.path, d.severity) for d in result.diagnostics] == [
        (16, ("services", "web", "port"), "error")
    ]
    assert "is below 1" in result.diagnostics[0].message


def test_warnings_are_diagnostics_of_a_valid_result(tmp_path: Path) -> None:
    text = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
    text = text.split("\noutputs:")[0] + "\noutputs:\n  terraform: infra\n"
    (tmp_path / "pipeline.yaml").write_text(text)
    result = pipecompile.compile(tmp_path / "pipeline.yaml")
    assert result.ok and result.files
    own = [d for d in result.diagnostics if d.code != "PC208"]  # the shared GitOps repository
    assert [d.severity for d in own] == ["warning"]
    assert own[0].path == ("outputs",)


def test_a_missing_file_is_a_diagnostic_not_an_exception(tmp_path: Path) -> None:
    result = pipecompile.compile(tmp_path / "nope.yaml")
    assert not result.ok and [d.message for d in result.diagnostics] == ["file not found"]


def test_importing_pipecompile_loads_no_compiler() -> None:
    code = (
        "import sys, pipecompile; "
        "print(sorted(m for m in sys.modules if m.startswith('pipecompile')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the version lives in a module of its own (every layer reads it)
    assert out.stdout.strip() == "['pipecompile', 'pipecompile._version']"


def test_the_api_diagnostic_and_the_json_output_share_field_names(tmp_path: Path) -> None:
    import dataclasses
    import json

    bad = tmp_path / "pipeline.yaml"
    bad.write_text("version: 1\nproject: x\n")
    (found,) = [d for d in pipecompile.compile(bad).diagnostics if "source" in d.message][:1]
    out = subprocess.run(
        [sys.executable, "-m", "pipecompile", "validate", "--format", "json", "-f", str(bad)],
        capture_output=True,
        text=True,
    ).stdout
    document = json.loads(out)["diagnostics"][0]
    assert [f.name for f in dataclasses.fields(found)] == list(document)
    assert found.col == found.column  # the old name still reads
