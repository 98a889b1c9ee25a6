"""A build split across two processes must plan and write exactly what one process does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipecompile import cli, jobs, writer

from .conftest import build_sample
from .test_cli import snapshot_tree
from .test_fastpath import DRIFTS, planned

ALL = ["github-actions", "codebuild", "terraform", "argocd", "helm"]


def _split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "PARALLEL_MIN_DEPLOYMENTS", 0)


def test_groups_balance_the_targets_and_keep_registry_order() -> None:
    mine, theirs = jobs.groups(ALL)
    assert sorted(mine + theirs) == sorted(ALL)
    assert mine and theirs and not set(mine) & set(theirs)
    assert mine == [n for n in ALL if n in mine] and theirs == [n for n in ALL if n in theirs]
    cost = {n: jobs.COST[n] for n in ALL}
    assert sum(cost[n] for n in mine) <= sum(cost[n] for n in theirs)
    assert abs(sum(cost[n] for n in mine) - sum(cost[n] for n in theirs)) <= max(cost.values())
    assert jobs.groups(["helm"]) == ([], ["helm"])  # one target: nothing to split
    assert jobs.groups(["argocd", "helm"]) == (["argocd"], ["helm"])  # the lighter one here


def test_split_build_writes_the_same_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = build_sample("ecommerce", tmp_path / "serial")
    _split(monkeypatch)
    split = build_sample("ecommerce", tmp_path / "split")
    a = {k: v[0] for k, v in snapshot_tree(serial).items()}
    b = {k: v[0] for k, v in snapshot_tree(split).items()}
    assert a == b and len(a) > 30
    assert not list(split.rglob("*pipecompile-tmp"))


@pytest.mark.parametrize("drift", [*DRIFTS, "foreign", "edited-stale", "both-halves"])
def test_split_plan_equals_the_serial_plan(
    drift: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_sample("ecommerce", tmp_path)
    if drift == "foreign":  # a hand-written file where a workflow will be generated
        path = ".github/workflows/ci-order-service.yml"
        (root / path).write_text("name: mine\n")
        manifest = root / writer.MANIFEST
        manifest.write_text(manifest.read_text().replace(f'"{path}"', '"x"'))
    elif drift == "both-halves":  # changes from each process, interleaved by path
        for kind in ("version-skew", "hand-edit", "stale"):
            DRIFTS[kind](root)
    elif drift == "edited-stale":  # a file the pipeline no longer makes, edited since
        DRIFTS["stale"](root)
        p = root / ".github/workflows/ci-order-service.yml"
        p.write_text(p.read_text() + "# mine\n")
    else:
        DRIFTS[drift](root)
    pipeline = root / "pipeline.yaml"
    serial = planned(pipeline)
    _split(monkeypatch)
    split = planned(pipeline)
    assert split == serial
    if drift not in ("none", "lock-changed"):
        assert serial
    # without texts only the old and new bodies are left out
    light = planned(pipeline, texts=False)
    assert [(c.path, c.kind, c.reason) for c in light] == [
        (c.path, c.kind, c.reason) for c in serial
    ]


def test_split_build_applies_every_drift_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # removals and rewrites in both halves: a removed service touches every target
    serial = build_sample("ecommerce", tmp_path / "serial")
    split = build_sample("ecommerce", tmp_path / "split")
    for root in (serial, split):
        DRIFTS["stale"](root)
        DRIFTS["hand-edit"](root)
        DRIFTS["missing"](root)
    assert cli.main(["build", "-q", "-f", str(serial / "pipeline.yaml")]) == 0
    _split(monkeypatch)
    # removals happen in this process once every write is done: a child pruning a
    # folder could race with a write into it
    parent, real_prune = os.getpid(), writer._prune_empty

    def prune(root: Path, folder: Path) -> None:
        assert os.getpid() == parent, "the child removed a file"
        real_prune(root, folder)

    monkeypatch.setattr(writer, "_prune_empty", prune)
    assert cli.main(["build", "-q", "-f", str(split / "pipeline.yaml")]) == 0
    a = {k: v[0] for k, v in snapshot_tree(serial).items()}
    b = {k: v[0] for k, v in snapshot_tree(split).items()}
    assert a == b
    # the removed service's files are gone, except the one edited by hand
    assert [k for k in a if "order-service" in k] == [
        "kubernetes/apps/order-service/values-testing.yaml"
    ]
    assert cli.main(["check", "-f", str(split / "pipeline.yaml")]) == 0


def test_a_failed_write_in_the_child_keeps_the_old_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_sample("ecommerce", tmp_path)
    manifest = (root / writer.MANIFEST).read_bytes()
    shutil.rmtree(root / ".github")  # the child's group (github-actions) must write again
    DRIFTS["pipeline-changed"](root)
    parent = os.getpid()
    real = writer.atomic_write

    def failing(path: str | Path, text: str) -> None:
        if os.getpid() != parent:
            raise OSError(28, "No space left on device")
        real(path, text)

    _split(monkeypatch)
    monkeypatch.setattr(writer, "atomic_write", failing)
    assert cli.main(["build", "-q", "-f", str(root / "pipeline.yaml")]) == 4
    err = capsys.readouterr().err
    assert "No space left on device" in err and "manifest" in err
    assert (root / writer.MANIFEST).read_bytes() == manifest
    monkeypatch.setattr(writer, "atomic_write", real)
    assert cli.main(["check", "-f", str(root / "pipeline.yaml")]) == 1  # the next build's job
    assert cli.main(["build", "-q", "-f", str(root / "pipeline.yaml")]) == 0
    assert cli.main(["check", "-f", str(root / "pipeline.yaml")]) == 0


def test_one_usable_cpu_builds_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a container or taskset may allow one CPU on a many-core host
    _split(monkeypatch)

    def no_fork() -> int:
        raise AssertionError("forked with one usable CPU")

    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    else:  # pragma: no cover - not Linux
        monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(os, "fork", no_fork)
    root = build_sample("ecommerce", tmp_path)
    assert cli.main(["check", "-f", str(root / "pipeline.yaml")]) == 0
