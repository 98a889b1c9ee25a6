"""Diagnostics with identity: every diagnostic has a stable code, the rules page is
generated and drift-tested, SARIF's ruleId is the code, warnings can be ignored."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.rules import BY_CODE, DOCS_URL, RULES, classify, markdown
from tests.conftest import ROOT
from tests.frontend.test_errors import warns_only

CORPUS = ROOT / "tests/invalid"
MINIMAL = (ROOT / "samples/minimal/pipeline.yaml").read_text()
# 3 vCPU / 4 GiB is no CodeBuild size: a located warning, PC305, at the vcpu line
ODD_COMPUTE = MINIMAL + "build:\n  compute:\n    vcpu: 3\n"
VCPU_LINE = ODD_COMPUTE.count("\n")  # the last line


def test_the_rules_page_is_generated_and_committed() -> None:
    assert (ROOT / "docs/rules.md").read_text("utf-8") == markdown()


def test_codes_are_unique_well_formed_and_documented() -> None:
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes)) and len({r.name for r in RULES}) == len(RULES)
    page = markdown()
    for rule in RULES:
        assert re.fullmatch(r"PC[1-5][0-9]{2}", rule.code), rule.code
        assert rule.summary and rule.fix
        # the helpUri's anchor is the heading GitHub renders for the rule
        assert f"\n## {rule.code} {rule.name}\n" in page
        assert rule.anchor == f"{DOCS_URL}#{rule.code.lower()}-{rule.name}"


@pytest.mark.parametrize("case", sorted(p.stem for p in CORPUS.glob("*.yaml")))
def test_every_corpus_diagnostic_has_its_own_code(case: str, tmp_path: Path) -> None:
    raw = (CORPUS / f"{case}.yaml").read_bytes()
    expect = (CORPUS / f"{case}.expect").read_text("utf-8").splitlines()
    if warns_only(case):
        found = compile_bytes("pipeline.yaml", raw, tmp_path).warnings
        prefix = "warning: "
    else:
        with pytest.raises(PipelineError) as info:
            compile_bytes("pipeline.yaml", raw, tmp_path)
        found, prefix = info.value.diagnostics, ""
    for d, line in zip(found, expect, strict=True):
        assert d.code in BY_CODE and d.code not in ("PC199", "PC399"), str(d)
        assert re.match(rf"pipeline\.yaml:\d+:\d+: {prefix}{d.code} ", line), line


def test_classification_examples() -> None:
    assert (
        classify("canary weight 20 is below the previous step's 50; a canary never goes backwards")
        == "PC204"
    )
    assert classify("70000 is above 65535") == "PC107"
    assert classify("something new") == "PC199"
    assert classify("something new", target=True) == "PC399"
    assert classify("expected an object", "pipecompile.lock") == "PC108"


def test_sarif_rule_id_is_the_code_with_help_uri(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text(MINIMAL.replace("web: {}", "web: {port: 70000}"))
    assert cli.main(["validate", "--format", "sarif", "-f", str(bad)]) == 2
    log = json.loads(capsys.readouterr().out)
    (run,) = log["runs"]
    (result,) = run["results"]
    assert result["ruleId"] == "PC107" and result["level"] == "error"
    assert result["message"]["text"] == "services.web.port: 70000 is above 65535"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (15, 15)
    (rule,) = run["tool"]["driver"]["rules"]
    assert rule["id"] == "PC107" and rule["helpUri"] == BY_CODE["PC107"].anchor
    assert cli.main(["validate", "--format", "json", "-f", str(bad)]) == 2
    (d,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert d == {
        "file": str(bad),
        "line": 15,
        "column": 15,
        "path": "services.web.port",
        "message": "70000 is above 65535",
        "severity": "error",
        "code": "PC107",
    }


def test_github_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text(MINIMAL.replace("web: {}", "web: {prot: 80}"))
    assert cli.main(["validate", "--format", "github", "-f", str(bad)]) == 2
    out = capsys.readouterr().out
    file = str(bad).replace(":", "%3A").replace(",", "%2C")
    assert out == (
        f"::error file={file},line=15,col=9,title=PC104 unknown-key::"
        "services.web.prot: unknown key 'prot' (did you mean 'port'?)\n"
    )


def test_a_warning_is_ignored_on_its_line_and_an_unused_ignore_is_reported(
    tmp_path: Path,
) -> None:
    ir = compile_bytes("pipeline.yaml", ODD_COMPUTE.encode(), tmp_path)
    assert [(w.code, w.line) for w in ir.warnings] == [("PC305", VCPU_LINE)]
    assert str(ir.warnings[0]).startswith(
        f"pipeline.yaml:{VCPU_LINE}:5: warning: PC305 build.compute"
    )
    quiet = ODD_COMPUTE.replace("vcpu: 3\n", "vcpu: 3  # pipecompile: ignore[PC305]\n")
    assert compile_bytes("pipeline.yaml", quiet.encode(), tmp_path).warnings == ()
    wrong = ODD_COMPUTE.replace("vcpu: 3\n", "vcpu: 3  # pipecompile: ignore[PC301]\n")
    warnings = compile_bytes("pipeline.yaml", wrong.encode(), tmp_path).warnings
    assert [(w.code, w.line) for w in warnings] == [("PC305", VCPU_LINE), ("PC109", VCPU_LINE)]
    assert warnings[1].message == "'# pipecompile: ignore[PC301]' silences no warning on this line"


def test_an_error_cannot_be_ignored(tmp_path: Path) -> None:
    text = MINIMAL.replace("web: {}", "web: {port: 70000}  # pipecompile: ignore[PC107]")
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.encode(), tmp_path)
    assert [d.code for d in info.value.diagnostics] == ["PC107"]


@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_lint_prints_one_document_when_the_checkers_are_missing(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.insight import lint

    monkeypatch.setattr(lint, "_tool", lambda name: None)
    shutil.copytree(ROOT / "samples/minimal", tmp_path / "repo")
    pipeline = str(tmp_path / "repo/pipeline.yaml")
    assert cli.main(["lint", "--format", fmt, "-f", pipeline]) == 2
    out = capsys.readouterr().out
    if fmt == "github":
        assert out.startswith("::error ") and "title=PC403 checker-missing::" in out
        return
    body = json.loads(out)  # one document, never an empty file
    if fmt == "sarif":
        assert body["runs"][0]["results"][0]["ruleId"] == "PC403"
    else:
        assert body["ok"] is False and body["diagnostics"][0]["code"] == "PC403"


def test_check_reports_drift_as_pc501(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".git").mkdir()  # the headers name samples/minimal/pipeline.yaml
    repo = tmp_path / "samples/minimal"
    shutil.copytree(ROOT / "samples/minimal", repo)
    (repo / ".github/workflows/ci-web.yml").write_text("edited\n")
    assert cli.main(["check", "--format", "sarif", "-f", str(repo / "pipeline.yaml")]) == 1
    results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    assert [
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
        for r in results
    ] == [("PC501", ".github/workflows/ci-web.yml")]


def test_build_format_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pipeline.yaml").write_text(MINIMAL)
    assert cli.main(["build", "--format", "json", "-f", str(repo / "pipeline.yaml")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["command"] == "build" and body["ok"] is True
    assert {c["kind"] for c in body["changes"]} == {"create"} and len(body["changes"]) > 10


def test_a_lowercase_ignore_suppresses_and_an_unknown_code_is_reported(tmp_path: Path) -> None:
    lower = ODD_COMPUTE.replace("vcpu: 3\n", "vcpu: 3  # pipecompile: ignore[pc305]\n")
    assert compile_bytes("pipeline.yaml", lower.encode(), tmp_path).warnings == ()
    unknown = ODD_COMPUTE.replace("vcpu: 3\n", "vcpu: 3  # pipecompile: ignore[PC305, PC999]\n")
    warnings = compile_bytes("pipeline.yaml", unknown.encode(), tmp_path).warnings
    assert [(w.code, w.line) for w in warnings] == [("PC109", VCPU_LINE)]
    assert warnings[0].message == (
        "'# pipecompile: ignore[PC999]': PC999 is not a pipecompile rule code "
        "(`pipecompile rules` lists them)"
    )


@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_lint_documents_carry_the_pipelines_own_warnings(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.insight import lint

    monkeypatch.setattr(lint, "_tool", lambda name: None)
    shutil.copytree(ROOT / "samples/ecommerce", tmp_path / "repo")
    pipeline = str(tmp_path / "repo/pipeline.yaml")
    assert cli.main(["validate", "-q", "-f", pipeline]) == 0
    assert "PC208" in capsys.readouterr().err  # text shows the reference's PC208 warnings
    assert cli.main(["lint", "--format", fmt, "-f", pipeline]) == 2
    out = capsys.readouterr().out
    if fmt == "github":
        assert "title=PC208 shared-gitops-repository::" in out
        return
    body = json.loads(out)
    if fmt == "sarif":
        codes = [r["ruleId"] for r in body["runs"][0]["results"]]
    else:
        codes = [d["code"] for d in body["diagnostics"]]
    assert codes[0] == "PC403" and codes.count("PC208") == 2
