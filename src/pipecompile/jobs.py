"""Render the targets, with headers; large pipelines render in two processes.

Rendering is pure, so it is the one step that may run in parallel.  For a
large pipeline on a machine with two usable cores a forked child renders one
group of targets (:func:`groups` balances them by measured cost) while this
process renders the other; the child sends its texts back through a pipe and
exits.  Nothing else happens in the child: comparing with the disk and every
change to it are made by this process alone (:mod:`.output.sync`).
"""

from __future__ import annotations

import os
import pickle
import traceback
from typing import Any

from .ir import IR
from .output.header import with_header
from .targets.registry import registry, render_all

# Below this many deployments (services x environments) a second process costs
# more than it saves.
PARALLEL_MIN_DEPLOYMENTS = 200


Expected = dict[str, tuple[str, str]]  # {path relative to the root: (target, full text)}


def groups(names: list[str]) -> tuple[list[str], list[str]]:
    """Split targets into two groups of about equal cost: (this process, the child).

    There are only a handful of targets, so every split is tried; the one
    with the smallest larger half wins, and this process, which also reads
    the child's result, takes the lighter half.  Each group keeps registry order.
    """
    targets = registry()
    costs = [targets[n].cost for n in names]
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


def expected(ir: IR, names: tuple[str, ...] = ()) -> Expected:
    """Every file the targets ``names`` (default: all enabled) render, with its header."""
    return {
        path: (target, with_header(body, ir.pipeline_file, path))
        for path, (target, body) in render_all(ir, names).items()
    }


def render(ir: IR, names: list[str]) -> Expected:
    """:func:`expected` for ``names``, in two processes when the pipeline is large."""
    mine, theirs = groups(names)
    big = len(ir.services) * len(ir.environments) >= PARALLEL_MIN_DEPLOYMENTS
    if not big or not mine or not theirs or not hasattr(os, "fork") or _cores() < 2:
        return expected(ir, tuple(names))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns from here
        os.close(read_end)
        _child(ir, theirs, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as results:
        try:
            out = expected(ir, tuple(mine))
            kind, value = pickle.load(results)
        except (EOFError, pickle.UnpicklingError) as exc:
            raise RuntimeError("the rendering process ended unexpectedly") from exc
        finally:
            # close before reaping: when our own rendering failed, the child may be
            # blocked writing into the pipe, and only a closed read end frees it
            results.close()
            os.waitpid(pid, 0)
    if kind == "error":
        error, where = value
        error.add_note(f"in the rendering process:\n{where}")
        raise error
    clash = sorted(set(out) & set(value))
    if clash:
        raise RuntimeError(f"{clash[0]} is rendered by two targets")
    out.update(value)
    return out


def _cores() -> int:
    """CPUs this process may run on (a container or taskset may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _child(ir: IR, names: list[str], results: int) -> None:
    status = 0
    try:
        with os.fdopen(results, "wb") as out:
            try:
                reply: tuple[str, Any] = ("ok", expected(ir, tuple(names)))
            except BaseException as exc:
                reply = ("error", _portable(exc))
            pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
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
