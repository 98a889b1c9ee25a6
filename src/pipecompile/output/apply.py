"""Carry out a plan, crash-safe.

The journal lists every path before the first write, each file is replaced
through a temporary file and a rename, the manifest is written last and the
journal removed after it.  A build that is killed leaves the journal, and the
next build (or check) sees it and finishes the job; SIGINT and SIGTERM are held
until the file being written is complete, and then reported with what was and
was not written.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from itertools import groupby

from ..errors import Interrupted
from .change import REMOVALS, WRITES, Change, Plan
from .paths import Tree, inside
from .state import JOURNAL, MANIFEST, journal_text


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM: record them so the caller stops between two files."""
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    saved = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, hold)
    except ValueError:  # not the main thread: signals go elsewhere anyway
        pass
    try:
        yield pending
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _by_folder(changes: list[Change]) -> Iterator[tuple[str, list[Change]]]:
    ordered = sorted(changes, key=lambda c: c.path.rpartition("/")[::2])
    for folder, group in groupby(ordered, key=lambda c: c.path.rpartition("/")[0]):
        yield folder, list(group)


def apply(root: str, plan: Plan) -> None:
    """Carry out a plan: journal, writes, removals, manifest, then drop the journal.

    Raises :class:`Interrupted` when SIGINT or SIGTERM arrives (after the file
    being written is complete); the journal then stays for the next build.
    """
    tree = Tree(root)
    writes = [c for c in plan.changes if c.kind in WRITES]
    removals = [c for c in plan.changes if c.kind in REMOVALS and c.path != JOURNAL]
    total = len(writes) + len(removals)
    with _signals_held() as pending:
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            if pending:
                raise Interrupted(pending[0], done, total)

        if total:
            _write_state(tree, JOURNAL, journal_text([c.path for c in writes + removals]))
        try:
            for folder, group in _by_folder(writes):
                with tree.folder(folder, create=True) as dfd:
                    for ch in group:
                        tree.write(dfd, ch.path, (ch.new or "").encode("utf-8"))
                        step()
        except BaseException:
            # leave no empty folders behind a failed build (a folder that got files stays)
            tree.undo_folders()
            raise
        for folder, group in _by_folder(removals):
            try:
                with tree.folder(folder) as dfd:
                    for ch in group:
                        tree.remove(dfd, ch.path)
                        step()
            except FileNotFoundError:
                continue
            owning = [f for f in plan.folders if folder == f or inside(folder, f)]
            if owning:
                tree.prune(folder, max(owning, key=len))
        text = plan.manifest.text()
        if plan.recorded != text:
            _write_state(tree, MANIFEST, text)
        if total or plan.journal:
            with tree.folder(JOURNAL.rpartition("/")[0]) as dfd:
                tree.remove(dfd, JOURNAL)
        if pending:
            raise Interrupted(pending[0], done, total)


def _write_state(tree: Tree, rel: str, text: str) -> None:
    with tree.folder(rel.rpartition("/")[0], create=True) as dfd:
        tree.write(dfd, rel, text.encode("utf-8"))
