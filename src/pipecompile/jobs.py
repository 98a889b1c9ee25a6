"""Plan a build from the IR and carry it out, in two processes for large pipelines.

For a large pipeline the expensive steps after compiling -- rendering,
adding headers, comparing with the disk, writing -- split cleanly by target.
On a machine with two or more cores a forked child takes one group of
targets and this process the other (:func:`groups` balances them), so
neither the rendered text nor the work of comparing it crosses between
processes: the child sends back paths, kinds, reasons and fingerprints, the
texts of half of its writes (so that both processes write about as many
files), and all texts only when a diff is going to be shown.

The guarantees of a serial build still hold: nothing is written until both
halves have rendered and planned without error.  Then both processes write;
once every write succeeded this one removes stale files (never while the
child may still be writing into the same folder) and writes the manifest
last.  Tests compare the plans and trees of the two ways on every drift kind.
"""

from __future__ import annotations

import os
import pickle
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .ir import IR
from .targets import render_all
from .writer import Change, Manifest, apply, plan, with_header, write_manifest

# Below this many deployments (services x environments) a second process costs
# more than it saves.
PARALLEL_MIN_DEPLOYMENTS = 200

# What a target costs to render, compare and write, in milliseconds per 1000
# services (measured with bench/bench.py's pipeline); only the balance between
# the two groups depends on these numbers.
COST = {"terraform": 113, "github-actions": 58, "helm": 53, "argocd": 33, "codebuild": 14}
DEFAULT_COST = 50  # a target added later, until it is measured

_REMOVALS = ("delete", "edited-stale")


def groups(names: list[str]) -> tuple[list[str], list[str]]:
    """Split targets into two groups of about equal cost: (this process, the child).

    There are only a handful of targets, so every split is tried; the one
    with the smallest larger half wins, and this process, which also writes
    the manifest, takes the lighter half.  Each group keeps registry order.
    """
    costs = [COST.get(n, DEFAULT_COST) for n in names]
    total = sum(costs)
    best: tuple[int, int] = (total + 1, 0)
    for mask in range(1 << len(names)):
        ours = sum(c for i, c in enumerate(costs) if mask >> i & 1)
        if ours > total - ours:
            continue  # this process takes the lighter half
        best = min(best, (total - ours, mask))
    mask = best[1]
    mine = [n for i, n in enumerate(names) if mask >> i & 1]
    theirs = [n for i, n in enumerate(names) if not mask >> i & 1]
    return mine, theirs


@dataclass
class _Half:
    """What one process planned for its group of targets."""

    changes: list[Change]
    files: dict[str, dict[str, str]]  # manifest entries of this group's targets
    paths: set[str]  # every path the group renders (to catch collisions)
    handed: list[Change] = field(default_factory=list)  # writes the parent makes for the child


def expected(ir: IR, names: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """Every file the targets ``names`` (default: all) render, with its header.

    {path relative to the root: (target, full text)}.
    """
    return {
        path: (target, with_header(body, ir.pipeline_file))
        for path, (target, body) in render_all(ir, names).items()
    }


@dataclass(frozen=True)
class _Build:
    """What both halves of a build share: the IR, and where and how to compare."""

    ir: IR
    root: Path
    inputs: dict[str, str]
    force: bool

    def plan_half(self, names: list[str]) -> tuple[_Half, Manifest]:
        files = expected(self.ir, tuple(names))
        changes, manifest = plan(self.root, files, self.inputs, tuple(names), force=self.force)
        own = {p: meta for p, meta in manifest.files.items() if meta["target"] in names}
        return _Half(changes, own, set(files)), manifest


def _writes(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.kind in ("create", "update")]


def _hand_over(changes: list[Change]) -> tuple[list[Change], list[Change]]:
    """The child's writes, split into (kept, handed to the parent): every other one.

    Writing is the one step after the barrier, and the groups balance the work
    before it, not the number of files; handing over half of the child's writes
    (their texts cross the pipe) keeps both processes busy until the end.
    """
    writes = _writes(changes)
    return writes[0::2], writes[1::2]


@dataclass
class Plan:
    """The changes a build would make; :meth:`apply` makes them, :meth:`close` always."""

    root: Path
    changes: list[Change]
    manifest: Manifest
    _writes: list[Change] = field(default_factory=list)  # the writes this process makes
    _worker: _Worker | None = None

    def apply(self) -> None:
        if self._worker is None:
            apply(self.root, self.changes, self.manifest)
            return
        self._worker.send(b"w")  # the child writes its files while we write ours
        try:
            apply(self.root, self._writes, None)
            text = self.manifest.text()
        finally:
            status = self._worker.receive()
        if status != "ok":
            # our writes succeeded but the child's did not: say so, and leave the
            # manifest alone; the next build compares bytes and finishes the job
            raise OSError(
                f"writing generated files failed in a worker process: {status}; "
                "the manifest was not updated, so the next build finishes the job"
            )
        apply(self.root, [c for c in self.changes if c.kind == "delete"], None)
        write_manifest(self.root, text)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def plan_build(
    ir: IR,
    root: Path,
    inputs: dict[str, str],
    names: list[str],
    *,
    force: bool = False,
    texts: bool = True,
) -> Plan:
    """Render ``names`` and compare with ``root``; fork for large pipelines.

    ``texts=False`` drops the old and new texts of the child's changes (build
    and a check without --diff only need paths and reasons).
    """
    build = _Build(ir, root, inputs, force)
    mine, theirs = groups(names)
    big = len(ir.services) * len(ir.environments) >= PARALLEL_MIN_DEPLOYMENTS
    if not big or not mine or not theirs or not hasattr(os, "fork") or _cores() < 2:
        half, manifest = build.plan_half(names)
        return Plan(root, half.changes, manifest)
    worker = _Worker.start(build, theirs, texts)
    try:
        half, manifest = build.plan_half(mine)
        other: _Half = worker.receive()
        clash = sorted(half.paths & other.paths)
        if clash:
            raise RuntimeError(f"{clash[0]} is rendered by two targets")
    except BaseException:
        worker.close()
        raise
    files = {p: m for p, m in manifest.files.items() if m["target"] not in theirs}
    files.update(other.files)
    merged = half.changes + other.changes
    changes = sorted((c for c in merged if c.kind not in _REMOVALS), key=lambda c: c.path)
    changes += sorted((c for c in merged if c.kind in _REMOVALS), key=lambda c: c.path)
    writes = _writes(half.changes) + other.handed
    return Plan(root, changes, replace(manifest, files=files), writes, worker)


def _cores() -> int:
    """CPUs this process may run on (a container or taskset may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Worker:
    """A forked child that plans one group, then writes it when told to."""

    def __init__(self, pid: int, results: Any, commands: int) -> None:
        self.pid = pid
        self._results = results  # file object: pickled replies from the child
        self._commands = commands  # fd: one byte per command to the child

    @classmethod
    def start(cls, build: _Build, names: list[str], texts: bool) -> _Worker:
        results_r, results_w = os.pipe()
        commands_r, commands_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            os.close(results_r)
            os.close(commands_w)
            _child(build, names, texts, results_w, commands_r)
        os.close(results_w)
        os.close(commands_r)
        return cls(pid, os.fdopen(results_r, "rb"), commands_w)

    def send(self, command: bytes) -> None:
        os.write(self._commands, command)

    def receive(self) -> Any:
        try:
            kind, value = pickle.load(self._results)
        except (EOFError, pickle.UnpicklingError) as exc:
            raise RuntimeError("a worker process ended unexpectedly") from exc
        if kind == "error":
            error, where = value
            error.add_note(f"in the worker process:\n{where}")
            raise error
        return value

    def close(self) -> None:
        """Let the child go (it exits without writing unless told to write) and reap it."""
        try:
            os.close(self._commands)
        finally:
            self._results.close()
            os.waitpid(self.pid, 0)


def _child(build: _Build, names: list[str], texts: bool, results: int, commands: int) -> None:
    status = 0
    try:
        with os.fdopen(results, "wb") as out:

            def reply(kind: str, value: Any) -> None:
                pickle.dump((kind, value), out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()

            try:
                half, _ = build.plan_half(names)
            except BaseException as exc:
                reply("error", _portable(exc))
                return
            own, half.handed = _hand_over(half.changes)
            if not texts:
                half.changes = [replace(c, old=None, new=None) for c in half.changes]
            reply("ok", half)
            if os.read(commands, 1) != b"w":  # the parent gave up: write nothing
                return
            try:
                apply(build.root, own, None)
            except BaseException as exc:
                reply("ok", f"{type(exc).__name__}: {exc}")
                return
            reply("ok", "ok")
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _portable(exc: BaseException) -> tuple[BaseException, str]:
    """The exception and its traceback text, in a form that survives pickling."""
    where = traceback.format_exc()
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc, where
