"""Bring the output folders in line with the rendered files: plan, then apply.

Rendering is pure; this module decides what a build writes, what a check
reports and what a diff shows, from the rendered files, what is on disk and
the manifest of what pipecompile generated last time.

Generated files are recognised by their header (:mod:`.header`).

A plan touches only paths that are ours (see :mod:`.paths`).  Applying it is
crash-safe: the journal lists every path before the first write, each file is
replaced through a temporary file and a rename, the manifest is written last
and the journal removed after it.  A build that is killed leaves the journal,
and the next build (or check) sees it and finishes the job; SIGINT and
SIGTERM are held until the file being written is complete, and then reported
with what was and was not written.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby

from .._version import __version__
from ..errors import Interrupted
from .header import (
    MARK,
    drift_reason,
    header_line,
    intact,
    sha256,
    split_header,
    stale_reason,
)
from .paths import Listing, Tree, inside, is_tmp, read_file, scan
from .state import (
    JOURNAL,
    MANIFEST,
    Manifest,
    journal_text,
    parse_manifest,
    read_journal,
    read_state,
)


class Kind(StrEnum):
    """What a plan does with one path."""

    CREATE = "create"  # missing: write it
    UPDATE = "update"  # differs: rewrite it
    DELETE = "delete"  # generated earlier, no longer: remove it
    DEBRIS = "debris"  # left by an interrupted build: remove it
    CONFLICT = "conflict"  # should be generated, but is not ours to replace: left alone
    KEPT = "kept"  # no longer generated, but edited by hand: left alone


WRITES = (Kind.CREATE, Kind.UPDATE)
REMOVALS = (Kind.DELETE, Kind.DEBRIS)
UNRESOLVED = (Kind.CONFLICT, Kind.KEPT)


@dataclass(frozen=True, slots=True)
class Change:
    path: str  # relative to the root, '/'-separated
    kind: Kind
    reason: str
    old: str | None
    new: str | None


@dataclass
class Plan:
    """The changes that bring the tree in line, and the manifest to record after them."""

    changes: list[Change]
    manifest: Manifest
    folders: list[str]  # the output folders the plan may change, for pruning
    recorded: str | None = None  # the manifest's text on disk when planned
    journal: bool = False  # an interrupted build's journal was found

    @property
    def unresolved(self) -> list[Change]:
        return [c for c in self.changes if c.kind in UNRESOLVED]


def _decode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _infer_outputs(m: Manifest) -> dict[str, str]:
    """Output folders of a format-1 manifest: each target's deepest common folder."""
    out = dict(m.outputs)
    by_target: dict[str, list[list[str]]] = {}
    for path, meta in m.files.items():
        by_target.setdefault(meta["target"], []).append(path.split("/")[:-1])
    for target, folders in by_target.items():
        if target in out:
            continue
        common = folders[0]
        for f in folders[1:]:
            n = 0
            while n < min(len(common), len(f)) and common[n] == f[n]:
                n += 1
            common = common[:n]
        if common:
            out[target] = "/".join(common)
    return out


def plan(
    root: str,
    expected: dict[str, tuple[str, str]],
    outputs: dict[str, str],
    names: tuple[str, ...],
    inputs: dict[str, str],
    pipeline_file: str,
    *,
    force: bool = False,
) -> Plan:
    """What a build would do.

    ``expected`` maps paths (relative to ``root``) to (target, full text) for the
    targets ``names``; ``outputs`` maps every enabled target to its folder.
    """
    raw = read_state(root, MANIFEST)
    old = parse_manifest(raw) if raw is not None else None
    journal = read_journal(root)
    old_files = old.files if old else {}
    old_outputs = _infer_outputs(old) if old else {}
    full = set(names) == set(outputs)
    owner: dict[str, str] = {outputs[n]: n for n in names}  # folder -> target, for removals
    for target, folder in sorted(old_outputs.items()):
        if target in names or (full and target not in outputs):
            owner.setdefault(folder, target)
    listing = scan(root, list(owner))
    stale = stale_reason(old.inputs if old else None, inputs)
    journaled = set(journal or ())

    changes: list[Change] = []
    files: dict[str, dict[str, str]] = {
        p: m for p, m in old_files.items() if m["target"] not in names and m["target"] in outputs
    }
    for path, (target, text) in sorted(expected.items()):
        blocked = listing.blocked(path)
        if blocked:
            changes.append(Change(path, Kind.CONFLICT, blocked, None, text))
            continue
        current = _decode(read_file(root, path)) if path in listing.files else None
        files[path] = {"target": target, "sha256": sha256(text)}
        if current == text:
            continue
        if current is None:
            changes.append(Change(path, Kind.CREATE, "missing", None, text))
        elif path in old_files or path in journaled or split_header(current) is not None:
            changes.append(Change(path, Kind.UPDATE, drift_reason(current, stale), current, text))
        elif force:
            reason = "was not generated by pipecompile; overwritten (--force)"
            changes.append(Change(path, Kind.UPDATE, reason, current, text))
        else:
            reason = "exists and was not generated by pipecompile (use --force to overwrite)"
            changes.append(Change(path, Kind.CONFLICT, reason, current, text))
            del files[path]

    changes += _removals(
        root, listing, owner, expected, old_files, journaled, pipeline_file, files, force=force
    )
    if journal is not None:
        reason = "an interrupted build left its journal (build finishes the job)"
        changes.append(Change(JOURNAL, Kind.DEBRIS, reason, None, None))
    unresolved = any(c.kind in UNRESOLVED for c in changes)
    with_files = {m["target"] for m in files.values()}
    recorded = {t: f for t, f in old_outputs.items() if t in with_files}
    recorded.update(outputs)
    files = {
        p: m
        for p, m in files.items()
        if m["target"] in recorded and inside(p, recorded[m["target"]])
    }
    # a tree left with conflicts must never pass check's fast path: record no inputs
    manifest = Manifest({} if unresolved else inputs, __version__, files, recorded)
    return Plan(changes, manifest, sorted(owner), _decode(raw), journal is not None)


def _removals(
    root: str,
    listing: Listing,
    owner: dict[str, str],
    expected: dict[str, tuple[str, str]],
    old_files: dict[str, dict[str, str]],
    journaled: set[str],
    pipeline_file: str,
    files: dict[str, dict[str, str]],
    *,
    force: bool,
) -> list[Change]:
    """Stale files, orphans of interrupted builds and temporary files, found and judged.

    Candidates come from the old manifest (the rendered targets', and those of
    targets no longer enabled), the journal, and any file in an output folder
    whose first line is this pipeline's header.  Each must lie in an output
    folder and be reached without a link; it is removed only when it is
    provably a generated file nobody edited (or with --force, when it still
    carries the header).  Kept files stay in ``files``, so check keeps saying so.
    """
    mark = header_line(pipeline_file).encode()
    out: list[Change] = []
    candidates: dict[str, str] = {}  # path -> "manifest" | "journal" | "scan"
    scanned: dict[str, bytes] = {}  # the bytes read while scanning, not read twice
    for path, meta in old_files.items():
        if path not in expected and meta["target"] in owner.values():
            candidates[path] = "manifest"
    for path in journaled:
        if path not in expected:
            candidates.setdefault(path, "journal")
    for path in sorted(listing.files):
        if path in expected or path in candidates:
            continue
        if is_tmp(path.rsplit("/", 1)[-1]):
            reason = "temporary file of an interrupted build"
            out.append(Change(path, Kind.DEBRIS, reason, None, None))
            continue
        data = read_file(root, path)
        if data is not None and data.startswith(mark):
            candidates[path] = "scan"
            scanned[path] = data
    for path, source in sorted(candidates.items()):
        folder = max((f for f in owner if inside(path, f)), key=len, default=None)
        if folder is None:
            continue  # not in an output folder (a journal is untrusted input too)
        target = old_files[path]["target"] if source == "manifest" else owner[folder]
        blocked = listing.blocked(path)
        data = scanned.get(path) or (read_file(root, path) if path in listing.files else None)
        if blocked or data is None:
            if blocked and source == "manifest":
                out.append(Change(path, Kind.KEPT, blocked, None, None))
                files[path] = old_files[path]
            continue
        text = _decode(data) or ""
        generated = text.startswith(f"# {MARK}")
        if source != "manifest" and not generated:
            continue  # not something pipecompile wrote
        recorded = old_files.get(path, {}).get("sha256")
        if sha256(data) == recorded or intact(text):
            reason = (
                "no longer generated by the pipeline"
                if source != "journal"
                else "orphan of an interrupted build"
            )
            out.append(Change(path, Kind.DELETE, reason, text, None))
        elif force and generated:
            out.append(Change(path, Kind.DELETE, "edited by hand; removed (--force)", text, None))
        else:
            reason = (
                "no longer generated, but edited by hand since; left in place "
                "(use --force to remove it)"
                if generated
                else "no longer generated, and its pipecompile header is gone; left in "
                "place (delete it by hand if it is not yours)"
            )
            out.append(Change(path, Kind.KEPT, reason, text, None))
            files[path] = {"target": target, "sha256": recorded or sha256(data)}
    return out


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
