"""A delivery a reviewer reads once (issue 25): each script once per orchestrator in the
generated tree, and a change to one service's field changes a handful of lines."""

from __future__ import annotations

import difflib
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipecompile.commands.cli import main
from pipecompile.targets.common import INCLUDE, STRICT, inlined, script_body, script_path
from tests.conftest import ROOT, SAMPLES, folder, git

MIN_LINES = 5  # a script body of five lines or more: never twice in one orchestrator's tree


def _blocks(value: Any) -> list[str]:
    """The scripts a workflow or buildspec holds: ``run:`` values and multi-line commands."""
    out: list[str] = []
    if isinstance(value, dict):
        for key, v in value.items():
            if key == "run" and isinstance(v, str):
                out.append(v)
            else:
                out += _blocks(v)
    elif isinstance(value, list):
        for v in value:
            out += [v] if isinstance(v, str) and "\n" in v else _blocks(v)
    return out


def scripts(path: Path) -> list[str]:
    """The script bodies in a generated file (a shell file: its body after the header)."""
    text = path.read_text()
    if path.suffix == ".sh":
        return [text.split("\n", 3)[3]]
    if path.suffix in (".yml", ".yaml"):
        return _blocks(yaml.safe_load(text))
    return []


def body_lines(script: str) -> tuple[str, ...]:
    """A script's lines, without a buildspec's subshell or guard around a packaged one."""
    lines = [line for line in script.strip().splitlines() if line.strip()]
    if lines and lines[0].endswith("(") and lines[-1].startswith(")"):
        lines = lines[1:-1]
    return tuple(lines)


def duplicates(root: Path, sample: str) -> dict[str, dict[tuple[str, ...], list[str]]]:
    """Per orchestrator (target folder): each script body of MIN_LINES or more that
    appears twice, and the files it appears in."""
    out = {}
    for target in ("github-actions", "codebuild", "local"):
        where = folder(sample, target)
        if not where:
            continue
        seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for path in sorted((root / where).rglob("*")):
            if path.is_file():
                for script in scripts(path):
                    lines = body_lines(script)
                    if len(lines) >= MIN_LINES:
                        seen[lines].append(path.name)
        out[target] = {k: v for k, v in seen.items() if len(v) > 1}
    return out


@pytest.mark.parametrize("sample", SAMPLES)
def test_no_script_body_appears_twice_in_an_orchestrator(sample: str) -> None:
    root = ROOT / "samples" / sample
    found = duplicates(root, sample)
    # no exception: the scanners run in ci.yml (GitHub) and build.yml (CodeBuild) once
    assert found == {t: {} for t in found}, {
        t: [(files, lines[:3]) for lines, files in d.items()] for t, d in found.items()
    }
    # the delivery itself: every deploy, build and DAST script once per orchestrator
    if folder(sample, "github-actions") and (root / ".github/workflows/deploy.yml").exists():
        deliver = [scripts(p) for p in (root / ".github/workflows").glob("deliver-*.yml")]
        assert deliver and all(s == [] for s in deliver)  # the callers hold no script
    if folder(sample, "github-actions"):
        ci = [scripts(p) for p in (root / ".github/workflows").glob("ci-*.yml")]
        assert ci and all(s == [] for s in ci)  # ci-<svc>.yml: a call of ci.yml
    if folder(sample, "codebuild"):
        where = root / str(folder(sample, "codebuild"))
        assert sorted(p.name for p in where.glob("build*.yml")) == ["build.yml"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_caller_is_at_most_150_lines(sample: str) -> None:
    """Issue 25: a per-service delivery caller a reviewer reads once (a job's needs on
    one line: needs: [route, build])."""
    callers = (ROOT / "samples" / sample / ".github/workflows").glob("deliver-*.yml")
    sizes = {p.name: p.read_text("utf-8").count("\n") for p in callers}
    assert all(n <= 150 for n in sizes.values()), sizes


def test_the_duplicate_finder_finds_a_duplicate(tmp_path: Path) -> None:
    """The check above is not vacuous: a script copied into a second file is found."""
    root = tmp_path / "samples" / "storefront"
    shutil.copytree(ROOT / "samples" / "storefront", root)
    wf = root / ".github/workflows"
    (wf / "copy.yml").write_text((wf / "deploy.yml").read_text())
    found = duplicates(root, "storefront")["github-actions"]
    copied = [files for files in found.values() if "copy.yml" in files]
    assert copied and all(sorted(files) == ["copy.yml", "deploy.yml"] for files in copied)
    dev = root / "dev"
    (dev / "copy.sh").write_text((dev / "intercept.sh").read_text())
    assert duplicates(root, "storefront")["local"]


# -- five lines anywhere: a shared block is one file, not two copies ------------------------
#
# Whole bodies differ when two scripts share only a block (the tree key that build-once.sh
# and verify-build.sh held twice, 22 lines, before tree-key.sh): compare every window of
# MIN_LINES consecutive lines.  ``set -euo pipefail`` is every script's mandated first
# command, not shared logic, so it is left out of the windows.

PACKAGED = sorted(script_path("build-once.sh").parent.glob("*.sh")) + sorted(
    (ROOT / "src/pipecompile/targets/local").glob("*.sh")
)


def windows(lines: tuple[str, ...] | list[str]) -> list[tuple[str, ...]]:
    """Every MIN_LINES consecutive non-blank lines (indentation ignored)."""
    kept = [line.strip() for line in lines if line.strip() and line != STRICT.strip()]
    return [tuple(kept[i : i + MIN_LINES]) for i in range(len(kept) - MIN_LINES + 1)]


def shared_windows(texts: dict[str, list[str]]) -> dict[tuple[str, ...], list[str]]:
    """Each window that appears twice (in two texts, or twice in one), and where."""
    seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name, lines in texts.items():
        for window in windows(lines):
            seen[window].append(name)
    return {w: names for w, names in seen.items() if len(names) > 1}


def source_lines(path: Path) -> list[str]:
    """A packaged script's own lines after its header (what its file holds, not inlined)."""
    lines = path.read_text("utf-8").splitlines()
    return lines[next(i for i, line in enumerate(lines) if not line.startswith("#")) :]


def test_no_five_lines_appear_twice_in_the_packaged_scripts() -> None:
    assert {"tree-key.sh", "intercept.sh", "kubeconfig.sh"} <= {p.name for p in PACKAGED}
    found = shared_windows({p.name: source_lines(p) for p in PACKAGED})
    assert found == {}, [(names, w[0]) for w, names in found.items()]


def test_the_window_finder_finds_a_shared_block() -> None:
    """Not vacuous: the two scripts as they were before tree-key.sh (its body pasted in
    each, as their rendered text still is) share the key's 22 lines, though their
    bodies differ as wholes."""
    pasted = {n: script_body(n).splitlines() for n in ("build-once.sh", "verify-build.sh")}
    assert pasted["build-once.sh"] != pasted["verify-build.sh"]
    found = shared_windows(pasted)
    assert found and all(sorted(n) == ["build-once.sh", "verify-build.sh"] for n in found.values())
    key = windows(script_body("tree-key.sh").splitlines())
    assert set(key) <= set(found)


def inlined_windows() -> set[tuple[str, ...]]:
    """The windows of every file a packaged script sources: the targets inline it where a
    trust boundary keeps the file out of reach (sign.yml, build.yml), one source for all."""
    names = {m["name"] for p in PACKAGED for m in INCLUDE.finditer(p.read_text("utf-8"))}
    assert names, "no packaged script sources another"
    out: set[tuple[str, ...]] = set()
    for name in names:
        out |= set(windows(inlined(name).splitlines()))
    return out


def window_duplicates(root: Path, sample: str) -> dict[str, dict[tuple[str, ...], list[str]]]:
    """Per orchestrator: each window of MIN_LINES that two of its scripts share, less the
    windows of an inlined packaged file (INCLUDE)."""
    allowed = inlined_windows()
    out = {}
    for target in ("github-actions", "codebuild", "local"):
        where = folder(sample, target)
        if not where:
            continue
        texts = {}
        for path in sorted((root / where).rglob("*")):
            if path.is_file():
                for i, script in enumerate(scripts(path)):
                    texts[f"{path.relative_to(root)}#{i}"] = list(body_lines(script))
        found = shared_windows(texts)
        out[target] = {w: names for w, names in found.items() if w not in allowed}
    return out


@pytest.mark.parametrize("sample", SAMPLES)
def test_no_five_lines_appear_twice_in_an_orchestrator(sample: str) -> None:
    found = window_duplicates(ROOT / "samples" / sample, sample)
    assert found == {t: {} for t in found}, {
        t: [(names, w[0]) for w, names in d.items()] for t, d in found.items()
    }


def test_the_window_finder_finds_a_pasted_block(tmp_path: Path) -> None:
    """Not vacuous: five lines of the deploy workflow pasted into another step are found,
    though the step's whole body is its own."""
    root = tmp_path / "samples" / "storefront"
    shutil.copytree(ROOT / "samples" / "storefront", root)
    wf = root / ".github/workflows"
    run = next(s for s in scripts(wf / "deploy.yml") if len(body_lines(s)) > 12)
    pasted = "\n".join(["echo mine", *body_lines(run)[3:9], "echo mine too"])
    job = {"runs-on": "ubuntu-24.04", "steps": [{"run": pasted}]}
    (wf / "copy.yml").write_text(yaml.safe_dump({"jobs": {"copy": job}}))
    found = window_duplicates(root, "storefront")["github-actions"]
    assert found and all(any("copy.yml" in n for n in names) for names in found.values())


# -- a change to one service's field: a handful of lines -------------------------------------

PORTS = {
    "ecommerce": ("    port: 3000\n", "    port: 3001\n"),
    "shared-account": ("    port: 8080\n", "    port: 8081\n"),
    "storefront": ("    port: 8000\n", "    port: 8001\n"),
}


def _tree(root: Path) -> dict[str, list[str]]:
    """Every generated file (the manifest's list; the manifest itself is bookkeeping)."""
    manifest = json.loads((root / ".pipecompile/manifest.json").read_text())
    return {rel: (root / rel).read_text().splitlines() for rel in manifest["files"]}


def changed_lines(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, int]:
    out = {}
    for rel in sorted(set(before) | set(after)):
        a, b = before.get(rel, []), after.get(rel, [])
        diff = list(difflib.unified_diff(a, b, lineterm="", n=0))
        removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
        added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
        if removed or added:
            out[rel] = max(removed, added)
    return out


HANDFUL = 20  # the port in each environment's values and the local loop, and their headers


@pytest.mark.parametrize("sample", [s for s in SAMPLES if PORTS.get(s)])
def test_a_port_change_changes_a_handful_of_lines(sample: str, tmp_path: Path) -> None:
    edit = PORTS[sample]
    assert edit is not None
    trees = []
    for name, text in (("before", None), ("after", edit)):
        repo = tmp_path / name
        dest = repo / "samples" / sample
        dest.mkdir(parents=True)
        git(repo, "init", "-q")
        pipeline = (ROOT / "samples" / sample / "pipeline.yaml").read_text()
        if text:
            assert text[0] in pipeline
            pipeline = pipeline.replace(*text, 1)
        (dest / "pipeline.yaml").write_text(pipeline)
        assert main(["build", "-q", "-f", str(dest / "pipeline.yaml")]) == 0
        trees.append(_tree(dest))
    changed = changed_lines(*trees)
    assert changed, "the port reaches no generated file"
    assert sum(changed.values()) <= HANDFUL, changed
    # never the delivery: a port is the chart's and the local loop's business
    assert not [f for f in changed if "/workflows/" in f or "/codebuild/" in f], changed
