"""Diagnostics with identity: every diagnostic has a stable code, the rules page is
generated and drift-tested, SARIF's ruleId is the code, warnings can be ignored."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.compiler import compile_bytes, compile_file
from pipecompile.errors import Diagnostic, PipelineError
from pipecompile.rules import BY_CODE, DOCS_URL, RETIRED, RULES, markdown
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
        assert d.code in BY_CODE and d.code not in RETIRED, str(d)
        assert re.match(rf"pipeline\.yaml:\d+:\d+: {prefix}{d.code} ", line), line


SRC = ROOT / "src/pipecompile"
CODE = re.compile(r"\bPC[0-9]{3}\b")


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) in names or getattr(node.func, "attr", None) in names)
    ]


def test_every_code_the_source_names_is_registered_and_none_is_retired() -> None:
    named = {
        code
        for py in SRC.rglob("*.py")
        if py.name != "rules.py"
        for code in CODE.findall(py.read_text("utf-8"))
    }
    assert named, "the scan found no codes"
    # PC999 is the example of an unknown code in a suppression's message
    assert named - {"PC999"} <= set(BY_CODE), sorted(named - set(BY_CODE))
    assert not set(RETIRED) & set(BY_CODE)
    assert not set(RETIRED) & named


def test_every_diagnostic_is_given_its_code_where_it_is_made() -> None:
    """No wording decides a code: every Diagnostic, target Finding, error helper call and
    model validator's refusal in the source names a registered code literally."""
    seen = 0
    for py in SRC.rglob("*.py"):
        tree = ast.parse(py.read_text("utf-8"))
        where = py.relative_to(SRC)
        for call in _calls(tree, {"Diagnostic", "Finding"}):
            if where.parts[:1] == ("insight",) and getattr(call.func, "id", "") == "Finding":
                continue  # lint's own finding: its code is its checker's (CHECKER_CODES)
            seen += 1
            given = {k.arg: k.value for k in call.keywords}
            code = given.get("code", call.args[6] if len(call.args) > 6 else None)
            assert code is not None, f"{where}:{call.lineno}: no code"
            if isinstance(code, ast.Constant):
                assert code.value in BY_CODE, f"{where}:{call.lineno}: {code.value}"
        for call in _calls(tree, {"err", "warn", "error", "Invalid"}):
            method = getattr(call.func, "attr", None)
            if method is None and call.func.id != "Invalid":  # type: ignore[attr-defined]
                continue  # a local helper (pins.err: always PC108, checked above)
            if not call.args or (method == "error" and len(call.args) < 3):
                continue  # click's, logging's: not a diagnostic
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                seen += 1
                assert first.value in BY_CODE, f"{where}:{call.lineno}: {first.value}"
            else:  # compiler.check_targets passes the finding's (checked) code on
                assert getattr(first, "id", "") == "code", f"{where}:{call.lineno}: no code"
        raised = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", "") == "ValueError"
        ]
        # a model validator refuses with Invalid(code, ...), never a bare ValueError
        assert not (raised and str(where).startswith("frontend/model")), (where, raised)
    assert seen > 100, seen


def test_a_diagnostic_without_a_registered_code_is_refused() -> None:
    with pytest.raises(ValueError, match="no registered rule code"):
        Diagnostic("pipeline.yaml", 1, 1, (), "something new")
    with pytest.raises(ValueError, match="no registered rule code 'PC199'"):
        Diagnostic("pipeline.yaml", 1, 1, (), "something new", code="PC199")


def _corpus_diagnostics(tmp_path: Path) -> list[Diagnostic]:
    """Every diagnostic of the samples and of tests/invalid (errors and warnings)."""
    found: list[Diagnostic] = []
    for sample in sorted((ROOT / "samples").glob("*/pipeline.yaml")):
        found += compile_file(sample).warnings
    for case in sorted(CORPUS.glob("*.yaml")):
        try:
            found += compile_bytes("pipeline.yaml", case.read_bytes(), tmp_path).warnings
        except PipelineError as exc:
            found += exc.diagnostics
    return found


def test_no_diagnostic_of_the_corpus_has_a_catch_all_code(tmp_path: Path) -> None:
    found = _corpus_diagnostics(tmp_path)
    assert len(found) > len(list(CORPUS.glob("*.yaml")))
    for d in found:
        assert d.code in BY_CODE and d.code not in RETIRED, str(d)
        rule = BY_CODE[d.code]
        assert rule.summary and "\n" not in rule.summary and rule.fix, d.code
    # the corpus reaches most rules: a new rule comes with a case
    assert len({d.code for d in found}) >= 28, sorted({d.code for d in found})


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
