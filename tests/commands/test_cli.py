"""The CLI as users run it: real subprocesses, exit codes, and what lands on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.frontend.validate import schema_text
from tests.conftest import ROOT, build_sample, remove_order_service, snapshot_tree

EXE = [sys.executable, "-m", "pipecompile"]


def pc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return build_sample("ecommerce", tmp_path / "repo")


def test_committed_schema_matches_the_models() -> None:
    assert (ROOT / "pipeline.schema.json").read_text("utf-8") == schema_text()


def test_schema_command_prints_it(tmp_path: Path) -> None:
    res = pc("schema", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == schema_text()


def test_version_and_help(tmp_path: Path) -> None:
    assert pc("--version", cwd=tmp_path).stdout.strip() == "pipecompile, version 0.1.0"
    help_text = pc("--help", cwd=tmp_path).stdout
    assert "1    check/diff found generated files" in help_text
    assert "3    internal error" in help_text and "130  interrupted" in help_text


def test_build_is_idempotent_and_check_passes(repo: Path) -> None:
    before = snapshot_tree(repo)
    res = pc("build", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("0 files changed")
    assert snapshot_tree(repo) == before  # same bytes and same mtimes
    assert pc("check", cwd=repo).returncode == 0


def test_invalid_pipeline_exits_2_and_writes_nothing(repo: Path) -> None:
    before = snapshot_tree(repo)
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("port: 3000", "port: 70000"))
    res = pc("build", cwd=repo)
    assert res.returncode == 2
    assert (
        "pipeline.yaml:106:11: PC107 services.product-service.port: 70000 is above 65535"
        in res.stderr
    )
    assert "Traceback" not in res.stderr
    after = snapshot_tree(repo)
    del before["pipeline.yaml"], after["pipeline.yaml"]
    assert after == before


def test_missing_file_and_bad_usage_exit_2(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # discovery stops here, whatever lies above tmp_path
    res = pc("validate", "-f", "pipeline.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "pipeline.yaml:1:1: PC101 file not found" in res.stderr
    res = pc("validate", cwd=tmp_path)  # none found upward either
    assert res.returncode == 2 and res.stderr.startswith("error: no pipeline.yaml in ")
    assert pc("build", "--nope", cwd=tmp_path).returncode == 2


def test_unknown_target_is_a_usage_error(repo: Path) -> None:
    res = pc("build", "--target", "helmm", cwd=repo)
    assert res.returncode == 2 and "did you mean 'helm'?" in res.stderr


def test_internal_error_exits_3_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*_: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli, "_session", boom)
    assert cli.main(["validate", "-f", "pipeline.yaml"]) == 3
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "Please report it" in err
    assert "Traceback" not in err


def test_check_reports_each_drift_kind(repo: Path) -> None:
    wf = repo / ".github/workflows/ci-order-service.yml"
    text = wf.read_text()
    assert "    name: Validate order-service\n" in text
    wf.write_text(text.replace("    name: Validate order-service\n", "    name: edited\n"))
    (repo / "kubernetes/argocd/project-production.yaml").unlink()
    pipeline = repo / "pipeline.yaml"
    remove_order_service(pipeline)
    res = pc("check", cwd=repo)
    assert res.returncode == 1
    out = res.stdout
    assert "missing: kubernetes/argocd/project-production.yaml: missing" in out
    assert (
        "stale: .github/workflows/ci-order-service.yml" in out
        or "stale (kept): .github/workflows/ci-order-service.yml" in out
    )
    assert "stale: kubernetes/argocd/order-service-production.yaml: no longer generated" in out
    assert "generated files are out of date" in res.stderr


def test_build_says_when_it_overwrites_a_hand_edit(repo: Path) -> None:
    wf = repo / ".github/workflows/ci.yml"  # the CI job (every ci-<svc>.yml calls it)
    wf.write_text(wf.read_text().replace("timeout-minutes: 30", "timeout-minutes: 31"))
    res = pc("build", "-q", cwd=repo)
    assert res.returncode == 0 and res.stdout == ""
    assert (
        "warning: .github/workflows/ci.yml: overwrote a hand edit (generated "
        "files are rewritten from pipeline.yaml; make the change there, or see git diff)"
    ) in res.stderr.splitlines()
    assert sum("overwrote a hand edit" in line for line in res.stderr.splitlines()) == 1
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    assert "hand edit" not in pc("build", cwd=repo).stderr  # a pipeline change is no edit


def test_explain_graph_and_pins_end_with_a_summary(repo: Path) -> None:
    pins = pc("pins", cwd=repo)
    assert pins.stdout.splitlines()[-1].startswith("pins: ") and " from the lock" in pins.stdout
    explain = pc("explain", "--ref", "main", cwd=repo)
    assert explain.stdout.splitlines()[-1] == "explain: pipeline.yaml: a push to main"
    graph = pc("graph", cwd=repo)  # the drawing alone on stdout, the summary on stderr
    assert graph.stdout.startswith("flowchart") and "graph:" not in graph.stdout
    # (the reference's PC208 warnings come first, as for every command that compiles)
    assert (
        graph.stderr.splitlines()[-1]
        == "graph: pipeline.yaml: 2 services, 4 environments (mermaid)"
    )
    ruleset = pc("explain", "--ruleset", cwd=repo)
    assert json.loads(ruleset.stdout)["name"]
    assert ruleset.stderr.splitlines()[-1].startswith("explain: ")
    for command in ("pins", "explain", "graph"):  # -q: the output alone
        quiet = pc(command, "-q", cwd=repo)
        assert quiet.returncode == 0 and "PC208" in quiet.stderr  # warnings are no summary
        assert not quiet.stderr.splitlines()[-1].startswith(f"{command}: ")
        assert not quiet.stdout.splitlines()[-1].startswith(f"{command}: ")


def test_check_tells_hand_edit_from_pipeline_change(repo: Path) -> None:
    wf = repo / ".github/workflows/ci.yml"  # the CI job (every ci-<svc>.yml calls it)
    wf.write_text(wf.read_text().replace("timeout-minutes: 30", "timeout-minutes: 31"))
    res = pc("check", "--diff", cwd=repo)
    assert res.returncode == 1
    assert "changed: .github/workflows/ci.yml: hand edit" in res.stdout
    assert "-    timeout-minutes: 31" in res.stdout and "+    timeout-minutes: 30" in res.stdout
    assert "jobs.validate.timeout-minutes: 31 -> 30" in res.stdout
    pc("build", cwd=repo)
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    res = pc("check", cwd=repo)
    assert "changed: .github/workflows/ci.yml: pipeline changed" in res.stdout


def test_build_removes_stale_files_but_never_foreign_ones(repo: Path) -> None:
    foreign = repo / "kubernetes/argocd/hand-written.yaml"
    foreign.write_text("kind: ConfigMap\n")
    pipeline = repo / "pipeline.yaml"
    remove_order_service(pipeline)
    res = pc("build", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert "removed kubernetes/argocd/order-service-production.yaml" in res.stdout
    assert not (repo / "kubernetes/argocd/order-service-production.yaml").exists()
    assert not (repo / "kubernetes/apps/order-service").exists()
    assert foreign.read_text() == "kind: ConfigMap\n"
    assert pc("check", cwd=repo).returncode == 0


def test_foreign_file_in_the_way_is_kept_unless_forced(repo: Path) -> None:
    target = repo / "kubernetes/argocd/project-production.yaml"
    target.unlink()
    manifest = repo / ".pipecompile/manifest.json"
    manifest.write_text(
        manifest.read_text().replace(
            '"kubernetes/argocd/project-production.yaml"', '"kubernetes/argocd/other.yaml"'
        )
    )
    target.write_text("mine: true\n")
    for _ in range(2):  # reported by every build and check until it is resolved
        res = pc("build", cwd=repo)
        assert res.returncode == 1
        assert (
            "conflict: kubernetes/argocd/project-production.yaml: exists and was not generated"
            in (res.stderr)
        )
        assert "1 file left as they are" in res.stderr
        assert target.read_text() == "mine: true\n"
        res = pc("check", cwd=repo)
        assert res.returncode == 1
        assert "conflict: kubernetes/argocd/project-production.yaml" in res.stdout
    assert pc("build", "--force", cwd=repo).returncode == 0
    assert target.read_text().startswith("# Generated by pipecompile")
    assert pc("check", cwd=repo).returncode == 0


def test_diff_shows_changes_without_writing(repo: Path) -> None:
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    before = snapshot_tree(repo)
    res = pc("diff", cwd=repo)
    assert res.returncode == 1
    assert "+    timeout-minutes: 45" in res.stdout
    assert snapshot_tree(repo) == before


def test_output_is_identical_across_hash_seeds_and_locales(tmp_path: Path) -> None:
    trees = []
    for i, (seed, lang) in enumerate((("0", "C"), ("123", "C.UTF-8"))):
        root = tmp_path / f"r{i}"
        root.mkdir()
        (root / "pipeline.yaml").write_bytes(
            (ROOT / "samples/ecommerce/pipeline.yaml").read_bytes()
        )
        env = {**os.environ, "PYTHONHASHSEED": seed, "LC_ALL": lang, "TZ": "Asia/Tokyo"}
        subprocess.run([*EXE, "build", "-q"], cwd=root, env=env, check=True)
        trees.append({k: v[0] for k, v in snapshot_tree(root).items()})
    assert trees[0] == trees[1]


@pytest.mark.parametrize("split", [False, True], ids=["one-process", "split"])
@pytest.mark.parametrize("broken_target", ["terraform", "github_actions"])
def test_a_render_error_leaves_existing_files_byte_identical(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    split: bool,
    broken_target: str,
) -> None:
    # split: the build runs in two processes, and the broken target renders in
    # one or the other (terraform here, github-actions in the child)
    import importlib

    from pipecompile import jobs

    if split:
        monkeypatch.setattr(jobs, "PARALLEL_MIN_DEPLOYMENTS", 0)
    before = snapshot_tree(repo)
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    before_pipeline = pipeline.read_bytes()

    def broken(ir: object) -> dict[str, str]:
        raise RuntimeError("template exploded")

    module = importlib.import_module(f"pipecompile.targets.{broken_target}")
    monkeypatch.setattr(module, "render", broken)
    assert cli.main(["build", "-f", str(pipeline)]) == 3
    assert "internal error: RuntimeError: template exploded" in capsys.readouterr().err
    after = snapshot_tree(repo)
    assert after.pop("pipeline.yaml")[0] == before_pipeline
    before.pop("pipeline.yaml")
    assert after == before  # other targets rendered fine, yet nothing was written


def test_a_file_where_an_output_folder_must_go_is_a_conflict(tmp_path: Path) -> None:
    shutil.copy(ROOT / "samples" / "minimal" / "pipeline.yaml", tmp_path / "pipeline.yaml")
    (tmp_path / "kubernetes").write_text("not a folder\n")
    res = pc("build", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "conflict: kubernetes/apps/web/values-production.yaml: 'kubernetes' is a file" in (
        res.stderr
    )
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "kubernetes").read_text() == "not a folder\n"
    assert pc("check", cwd=tmp_path).returncode == 1


def test_a_failed_write_exits_4_and_the_next_build_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.output.paths import Tree

    shutil.copy(ROOT / "samples" / "minimal" / "pipeline.yaml", tmp_path / "pipeline.yaml")
    real, calls = Tree.write, []

    def full_disk(self: Tree, dfd: int, rel: str, data: bytes) -> None:
        calls.append(rel)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        real(self, dfd, rel, data)

    monkeypatch.setattr(Tree, "write", full_disk)
    pipeline = str(tmp_path / "pipeline.yaml")
    assert cli.main(["build", "-q", "-f", pipeline]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno 28] No space left on device"), err
    assert "Traceback" not in err
    assert not (tmp_path / ".pipecompile/manifest.json").exists()  # only after every write
    assert (tmp_path / ".pipecompile/journal.json").exists()  # what the next build must see
    # no empty folders for the outputs that came after the failing one
    empty = [p for p in tmp_path.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert empty == []
    assert cli.main(["check", "-f", pipeline]) == 1
    monkeypatch.setattr(Tree, "write", real)
    assert cli.main(["build", "-q", "-f", pipeline]) == 0
    assert not (tmp_path / ".pipecompile/journal.json").exists()
    assert cli.main(["check", "-f", pipeline]) == 0


def test_commands_find_the_pipeline_from_a_subfolder(repo: Path) -> None:
    (repo / ".git").mkdir()
    deep = repo / "services" / "order" / "src"
    deep.mkdir(parents=True)
    res = pc("check", cwd=deep)
    assert res.returncode == 0, res.stderr
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("port: 3000", "port: 70000"))
    res = pc("validate", cwd=deep)
    assert res.returncode == 2
    assert res.stderr.startswith("../../../pipeline.yaml:"), res.stderr
    assert "port: 70000 is above 65535" in res.stderr


def test_discovery_stops_at_the_repository_root(tmp_path: Path) -> None:
    shutil.copy(ROOT / "samples/minimal/pipeline.yaml", tmp_path / "pipeline.yaml")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    res = pc("validate", cwd=repo / "sub")
    assert res.returncode == 2
    assert res.stderr == (
        f"error: no pipeline.yaml in {repo / 'sub'} and its parents up to {repo}; run "
        "pipecompile in the repository that holds it, or name it with -f PATH\n"
    )


def test_explain_ref_alone_is_a_push(repo: Path) -> None:
    alone = pc("explain", "--ref", "main", cwd=repo)
    push = pc("explain", "--event", "push", "--ref", "main", cwd=repo)
    assert alone.returncode == push.returncode == 0
    assert alone.stdout == push.stdout and "push to branch 'main':" in alone.stdout


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        ("validate", "pipeline.yaml: valid (2 services, 4 environments, targets: "),
        ("check", "check: pipeline.yaml: the generated files are up to date\n"),
        ("diff", "diff: pipeline.yaml: build would change nothing\n"),
        ("build", "0 files changed"),
    ],
)
def test_every_command_says_so_on_success_unless_quiet(
    repo: Path, command: str, summary: str
) -> None:
    res = pc(command, cwd=repo)
    assert res.returncode == 0 and res.stdout.startswith(summary), res.stdout + res.stderr
    assert res.stdout.count("\n") == 1
    quiet = pc(command, "-q", cwd=repo)
    assert quiet.returncode == 0 and quiet.stdout == ""
    # -q keeps the warnings: the reference's shared GitOps repository (PC208), nothing else
    assert all(" warning: PC208 " in x for x in quiet.stderr.splitlines()), quiet.stderr


def test_colour_only_on_a_terminal_and_never_with_no_color(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    pipeline = repo / "pipeline.yaml"
    text = pipeline.read_text().split("\noutputs:")[0] + "\noutputs:\n  terraform: infra\n"
    pipeline.write_text(text)  # a located warning: terraform without codebuild
    runner = CliRunner()
    args = ["validate", "-f", str(pipeline)]
    coloured = runner.invoke(cli.cli, args, color=True)  # as on a terminal
    assert coloured.exit_code == 0
    assert "\x1b[33m" in coloured.output and "\x1b[32m" in coloured.output
    plain = runner.invoke(cli.cli, args)  # piped: plain
    assert "warning: PC304 outputs:" in plain.output and "\x1b[" not in plain.output
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in runner.invoke(cli.cli, args, color=True).output


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(tmp_path: Path, shell: str) -> None:
    res = pc("completion", shell, cwd=tmp_path)
    assert res.returncode == 0 and "_PIPECOMPILE_COMPLETE" in res.stdout
    assert f"{shell}_source" in res.stdout or f"{shell}_complete" in res.stdout


def test_every_schema_property_has_a_description_examples_and_a_default() -> None:
    schema = json.loads((ROOT / "pipeline.schema.json").read_text())
    models = [("Pipeline", schema), *schema["$defs"].items()]
    checked = 0
    for model, node in models:
        required = set(node.get("required", []))
        for field, prop in node.get("properties", {}).items():
            where = f"{model}.{field}"
            assert prop.get("description"), where
            assert prop.get("examples"), where
            assert field in required or "default" in prop, where
            checked += 1
    assert checked > 100
    # the one default the models build in code is written down as it is
    from pipecompile.frontend.model import _default_environments

    built = {k: e.model_dump(exclude_defaults=True) for k, e in _default_environments().items()}
    assert schema["properties"]["environments"]["default"] == built


def test_one_calls_format_does_not_leak_into_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no module-global state: --format travels in click's context, one per run
    bad = tmp_path / "bad" / "pipeline.yaml"
    bad.parent.mkdir()
    bad.write_text("version: 1\nproject: x\n")
    (tmp_path / ".git").mkdir()  # the headers name samples/minimal/pipeline.yaml
    good = tmp_path / "samples/minimal"
    shutil.copytree(ROOT / "samples/minimal", good)
    assert cli.main(["validate", "--format", "json", "-f", str(bad)]) == 2
    first = json.loads(capsys.readouterr().out)
    assert first["command"] == "validate" and first["ok"] is False
    assert cli.main(["check", "-f", str(good / "pipeline.yaml")]) == 0
    capsys.readouterr()
    # build has no --format: its errors are text, not a document labelled "validate"
    assert cli.main(["build", "-f", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "3 errors; nothing was written" in captured.err


def test_validate_counts_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "-f", str(ROOT / "samples/minimal/pipeline.yaml")]) == 0
    assert "valid (1 service, 4 environments, targets: " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  web: {}", "  web:\n    port: 70000"),
        ("  web: {}", "  web:\n    prot: 80"),
        ('account_id: "012345678901"', "account_id: 123456789012"),
    ],
)
def test_the_readme_error_examples_are_what_validate_prints(
    old: str, new: str, tmp_path: Path
) -> None:
    text = (ROOT / "samples/minimal/pipeline.yaml").read_text()
    (tmp_path / "pipeline.yaml").write_text(text.replace(old, new))
    res = pc("validate", cwd=tmp_path)
    assert res.returncode == 2
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("Errors point at the value") :]
    block = block[block.index("```\n") + 4 : block.index("\n```", block.index("```\n") + 4)]
    assert res.stderr.splitlines()[0] in block.splitlines()


def test_an_error_with_no_file_is_placed_at_the_pipeline_file_in_sarif(tmp_path: Path) -> None:
    # github annotations may go without a place; code scanning's SARIF upload refuses a
    # result without a location (github/codeql-action#2459), so SARIF places it at the
    # pipeline file as given, with no region (this test asserted no locations before)
    github = pc("validate", "--format", "github", cwd=tmp_path)
    assert github.returncode == 2
    assert github.stdout.startswith("::error title=PC110 usage-error::no pipeline.yaml in ")
    sarif = pc("validate", "--format", "sarif", cwd=tmp_path)
    [result] = json.loads(sarif.stdout)["runs"][0]["results"]
    assert result["ruleId"] == "PC110"
    [location] = result["locations"]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "pipeline.yaml"
    assert "region" not in location["physicalLocation"]
    (tmp_path / "sub").mkdir()
    for args in (["validate", "-f", "sub"], ["build", "-t", "nope"], ["explain", "--nope"]):
        res = pc(*args, "--format", "sarif", cwd=tmp_path)
        assert res.returncode == 2, args
        for result in json.loads(res.stdout)["runs"][0]["results"]:
            assert len(result["locations"]) >= 1, args
    given = pc("validate", "-f", "sub", "--format", "sarif", cwd=tmp_path)
    [result] = json.loads(given.stdout)["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "sub"


@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_a_usage_error_is_one_document_in_the_format_asked_for(fmt: str, tmp_path: Path) -> None:
    # click stops at --ful before --format's callback runs; the document is still there
    res = pc("check", "--format", fmt, "--ful", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr == ""
    assert "PC110" in res.stdout and "--ful" in res.stdout
    if fmt != "github":
        json.loads(res.stdout)
    res = pc("check", f"--format={fmt}", "--diff", "--ful", cwd=tmp_path)
    assert res.returncode == 2 and "PC110" in res.stdout


def test_a_usage_error_in_text_names_its_code(tmp_path: Path) -> None:
    res = pc("check", "--ful", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert "Usage: pipecompile check [OPTIONS]" in res.stderr
    assert "error: PC110 No such option '--ful'" in res.stderr
