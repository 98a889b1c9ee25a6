"""One small invalid document per rule: exact message, line and column, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "invalid"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


def warns_only(case: str) -> bool:
    """A case whose diagnostics are all warnings: it compiles, and says them."""
    lines = (CORPUS / f"{case}.expect").read_text("utf-8").splitlines()
    return all(re.match(r"pipeline\.yaml:\d+:\d+: warning: ", line) for line in lines)


ERRORS = [c for c in CASES if not warns_only(c)]
WARNINGS = [c for c in CASES if warns_only(c)]


@pytest.mark.parametrize("case", CASES)
def test_invalid_document_is_reported_with_its_location(case: str, tmp_path: Path) -> None:
    raw = (CORPUS / f"{case}.yaml").read_bytes()
    expected = (CORPUS / f"{case}.expect").read_text("utf-8").splitlines()
    if warns_only(case):
        # the exact list of warnings, and nothing else
        assert [str(d) for d in compile_bytes("pipeline.yaml", raw, tmp_path).warnings] == expected
        return
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", raw, tmp_path)
    # the exact list: a new diagnostic, a lost one or a reworded one all fail
    assert [str(d) for d in info.value.diagnostics] == expected


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", WARNINGS)
def test_a_warning_is_said_and_the_build_goes_on(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.commands.cli import main

    (tmp_path / "pipeline.yaml").write_bytes((CORPUS / f"{case}.yaml").read_bytes())
    assert main(["build", "-q", "-f", str(tmp_path / "pipeline.yaml")]) == 0
    err = capsys.readouterr().err
    expected = (CORPUS / f"{case}.expect").read_text("utf-8").splitlines()
    assert [line.removeprefix(f"{tmp_path}/") for line in err.splitlines()] == expected


@pytest.mark.parametrize("case", ERRORS)
def test_build_exits_2_without_traceback_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.commands.cli import main

    (tmp_path / "pipeline.yaml").write_bytes((CORPUS / f"{case}.yaml").read_bytes())
    assert main(["build", "-f", str(tmp_path / "pipeline.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nothing was written" in err
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline.yaml"]


def test_several_errors_are_reported_at_once(tmp_path: Path) -> None:
    raw = (CORPUS / "port-too-big.yaml").read_bytes().replace(b"project: shop", b"project: S")
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", raw, tmp_path)
    assert [d.line for d in info.value.diagnostics] == [2, 12]


def test_symlinked_output_folder_outside_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    (root / "deploy").symlink_to(outside)
    raw = (CORPUS / "output-escapes.yaml").read_bytes().replace(b"../elsewhere", b"deploy")
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", raw, root)
    assert "resolves outside the folder holding the pipeline file" in str(info.value)


def test_service_path_through_a_nested_link_is_checked(tmp_path: Path) -> None:
    # the link sits below an ordinary folder; only an existing link can lead outside
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    (root / "services").mkdir(parents=True)
    (root / "services" / "web").symlink_to(outside)
    (root / "services" / "inner").mkdir()
    (root / "services" / "api").symlink_to(root / "services" / "inner")
    raw = (ROOT / "samples" / "minimal" / "pipeline.yaml").read_bytes()
    escaping = raw.replace(b"  web: {}", b"  web:\n    path: services/web/src")
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", escaping, root)
    assert "resolves outside the folder holding the pipeline file" in str(info.value)
    inside = raw.replace(b"  web: {}", b"  web:\n    path: services/api/src")
    assert compile_bytes("pipeline.yaml", inside, root).services[0].path == "services/api/src"
    missing = raw.replace(b"  web: {}", b"  web:\n    path: services/not-yet/src")
    assert compile_bytes("pipeline.yaml", missing, root).services[0].path == "services/not-yet/src"


def test_alias_bomb_fails_fast() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", "\n".join(lines).encode())
    assert "aliases (*name) are not allowed" in str(info.value)


def test_huge_and_deep_documents_are_refused() -> None:
    with pytest.raises(PipelineError, match="the most a pipeline file may be"):
        compile_bytes("pipeline.yaml", b"# " + b"x" * (10 * 1024 * 1024) + b"\n")
    with pytest.raises(PipelineError, match="nest"):
        compile_bytes("pipeline.yaml", b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n")


@pytest.mark.parametrize(
    "path",
    [
        "samples/ecommerce/pipeline.yaml",
        "samples/minimal/pipeline.yaml",
        "tests/lint/pipeline.yaml",
        "tests/invalid/alias.yaml",
    ],
)
def test_libyaml_and_pure_composers_build_the_same_document(path: str) -> None:
    """The fast C composer is only an accelerator: same data, positions and errors."""
    from pipecompile.frontend.loader import load

    raw = (ROOT / path).read_bytes()
    results = []
    for fast in (True, False):
        try:
            d = load("pipeline.yaml", raw, fast=fast)
            results.append((d.data, d.value_pos, d.key_pos, d.scalars))
        except PipelineError as exc:
            results.append(str(exc))
    assert results[0] == results[1]


def test_terraform_alone_needs_no_gitops_but_warns_about_buildspecs() -> None:
    raw = (CORPUS / "gitops-required-by-deploy-steps.yaml").read_text("utf-8")
    raw = raw.replace("delivery: github-actions\n", "")  # CodePipeline delivers
    raw = raw.split("\noutputs:")[0] + "\noutputs:\n  terraform: infra\n"
    ir = compile_bytes("pipeline.yaml", raw.encode())
    assert ir.gitops.repository is None and [t for t, _ in ir.outputs] == ["terraform"]
    assert len(ir.warnings) == 1
    assert str(ir.warnings[0]).startswith("pipeline.yaml:")
    assert ir.warnings[0].severity == "warning" and ir.warnings[0].path == ("outputs",)
    assert "buildspecs from ci/codebuild/, but the codebuild output is off" in str(ir.warnings[0])


@pytest.mark.parametrize("key", ["<<", "!!merge '<<'", "!!merge x"])
def test_merge_keys_are_refused_however_written(key: str) -> None:
    with pytest.raises(PipelineError, match=r"merge keys \(<<\) are not allowed"):
        compile_bytes("pipeline.yaml", f"version: 1\n{key}: {{project: shop}}\n".encode())


def test_a_quoted_double_angle_key_is_only_an_unknown_key() -> None:
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", b"version: 1\n'<<': x\n")
    assert "merge keys" not in str(info.value)
