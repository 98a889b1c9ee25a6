"""Rendering may run in two processes; every change to the disk is made by this one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipecompile import jobs
from pipecompile.commands import cli
from pipecompile.compiler import compile_file
from pipecompile.output.paths import Tree
from pipecompile.targets.registry import registry
from tests.conftest import DRIFTS, ROOT, build_sample, planned, snapshot_tree

ALL = ["github-actions", "codebuild", "terraform", "argocd", "helm"]


def _split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "PARALLEL_MIN_DEPLOYMENTS", 0)


def test_groups_balance_the_targets_and_keep_registry_order() -> None:
    mine, theirs = jobs.groups(ALL)
    assert sorted(mine + theirs) == sorted(ALL)
    assert mine and theirs and not set(mine) & set(theirs)
    assert mine == [n for n in ALL if n in mine] and theirs == [n for n in ALL if n in theirs]
    cost = {n: t.cost for n, t in registry().items()}
    assert sum(cost[n] for n in mine) <= sum(cost[n] for n in theirs)
    assert abs(sum(cost[n] for n in mine) - sum(cost[n] for n in theirs)) <= max(cost.values())
    assert jobs.groups(["helm"]) == ([], ["helm"])  # one target: nothing to split
    assert jobs.groups(["argocd", "helm"]) == (["argocd"], ["helm"])  # the lighter one here


def test_split_rendering_equals_serial_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    ir = compile_file(ROOT / "samples/ecommerce/pipeline.yaml")
    serial = jobs.render(ir, ALL)
    _split(monkeypatch)
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    assert jobs.render(ir, ALL) == serial and len(serial) > 30
    assert forks == [1]


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_split_plan_equals_the_serial_plan(
    drift: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_sample("ecommerce", tmp_path)
    DRIFTS[drift](root)
    pipeline = root / "pipeline.yaml"
    serial = planned(pipeline)
    _split(monkeypatch)
    assert planned(pipeline) == serial
    if drift not in ("none", "lock-changed"):
        assert serial


def test_only_this_process_writes_or_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = build_sample("ecommerce", tmp_path / "serial")
    split = build_sample("ecommerce", tmp_path / "split")
    for root in (serial, split):
        DRIFTS["stale"](root)
        DRIFTS["version-skew"](root)
        DRIFTS["missing"](root)
    assert cli.main(["build", "-q", "-f", str(serial / "pipeline.yaml")]) == 0
    _split(monkeypatch)
    # a forked child's calls would be recorded in the child's memory, out of sight:
    # record them in a file instead
    log = tmp_path / "pids"
    for name in ("write", "remove", "prune"):
        real = getattr(Tree, name)

        def logged(*args: object, _real: object = real) -> object:
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(Tree, name, logged)
    assert cli.main(["build", "-q", "-f", str(split / "pipeline.yaml")]) == 0
    assert set(log.read_text().split()) == {str(os.getpid())}
    a = {k: v[0] for k, v in snapshot_tree(serial).items()}
    b = {k: v[0] for k, v in snapshot_tree(split).items()}
    assert a == b
    assert cli.main(["check", "-f", str(split / "pipeline.yaml")]) == 0


def test_one_usable_cpu_renders_in_one_process(
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
