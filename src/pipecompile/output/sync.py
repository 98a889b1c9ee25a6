"""Bring the output folders in line with the rendered files: the plan (applied by
:mod:`.apply`).

Rendering is pure; this module decides what a build writes, what a check
reports and what a diff shows, from the rendered files, what is on disk and
the manifest of what pipecompile generated last time.

Generated files are recognised by their header (:mod:`.header`).

A plan touches only paths that are ours (see :mod:`.paths`).
"""

from __future__ import annotations

from .._version import __version__
from .change import REMOVALS, Change, Kind, Plan, decode
from .header import (
    MARK,
    drift_reason,
    header_line,
    sha256,
    stale_reason,
)
from .paths import STATE_DIR, Listing, NotOurs, inside, read_file, scan
from .removals import kept_outside, removals
from .state import (
    CONFLICT_FIX,
    JOURNAL,
    MANIFEST,
    Manifest,
    StateError,
    has_conflict,
    one_side,
    parse_manifest,
    read_journal,
    read_state,
)

# what marks another pipeline inside an output folder: its pipeline file, lock or state
_FOREIGN_ROOT = ("pipeline.yaml", "pipecompile.lock")


class FolderError(Exception):
    """An output folder pipecompile may not use (the session locates it in pipeline.yaml)."""

    def __init__(self, target: str, message: str) -> None:
        self.target, self.message = target, message
        super().__init__(f"outputs.{target}: {message}")


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
    known: tuple[str, ...] | None = None,
    sources: tuple[tuple[str, str], ...] = (),
) -> Plan:
    """What a build would do.

    ``expected`` maps paths (relative to ``root``) to (target, full text) for the
    targets ``names``; ``outputs`` maps every enabled target to its folder;
    ``known`` names every target pipecompile has (a manifest naming another one
    is not trusted); ``sources`` are the paths the pipeline names (recorded).
    """
    raw = read_state(root, MANIFEST)
    changes: list[Change] = []
    old = None
    if raw is not None:
        if has_conflict(raw):
            try:
                old = parse_manifest(one_side(raw))
            except StateError as exc:
                raise StateError(MANIFEST, exc.problem, CONFLICT_FIX, exc.line) from None
            reason = (
                "has unresolved merge-conflict markers; build takes one side and checks "
                "every generated file against the pipeline"
            )
            changes.append(Change(MANIFEST, Kind.UNTRUSTED, reason, None, None))
        else:
            old = parse_manifest(raw)
    journal = read_journal(root)
    old_files = dict(old.files) if old else {}
    old_outputs = _infer_outputs(old) if old else {}
    for target, folder in sorted(old_outputs.items()):
        if known is not None and target not in known and target not in outputs:
            reason = (
                f"outputs.{target}: {folder!r} is not a target of pipecompile; not trusted, "
                "nothing there is touched (build drops it from the manifest)"
            )
            changes.append(Change(MANIFEST, Kind.UNTRUSTED, reason, None, None))
            del old_outputs[target]
            old_files = {p: m for p, m in old_files.items() if m["target"] != target}
    full = set(names) == set(outputs)
    owner: dict[str, str] = {outputs[n]: n for n in names}  # folder -> target, for removals
    untrusted: set[str] = set()  # folders only the manifest names
    for target, folder in sorted(old_outputs.items()):
        if target in names and folder == outputs[target]:
            continue
        if target in names or (full and target not in outputs):
            # a folder the pipeline does not name now: only the manifest says it was ours,
            # and a manifest can be edited; it is scanned, and only files carrying this
            # pipeline's header with a matching fingerprint are removed there
            if folder not in owner and not any(inside(folder, f) for f in owner):
                untrusted.add(folder)
                reason = (
                    f"outputs.{target}: {folder!r} is not an output folder of the pipeline; "
                    "not trusted: only files carrying this pipeline's header and a matching "
                    "fingerprint are removed there (build drops it from the manifest)"
                )
                changes.append(Change(MANIFEST, Kind.UNTRUSTED, reason, None, None))
            owner.setdefault(folder, target)
    listing = scan(root, list(owner))
    for folder, why in sorted(listing.unlisted.items()):
        if not any(inside(folder, f) for f in owner if f not in untrusted):
            reason = (
                f"outputs: {folder!r} cannot be listed ({why}); not trusted, nothing "
                "there is touched (build drops it from the manifest)"
            )
            changes.append(Change(MANIFEST, Kind.UNTRUSTED, reason, None, None))
            untrusted.add(folder)
        else:
            raise NotOurs(folder, f"cannot be listed ({why})")
    _no_foreign_pipeline(listing, {outputs[n]: n for n in names})
    kept: dict[str, str] = {}  # files left in place, remembered until they are gone
    old_kept = {p: t for p, t in (old.kept if old else {}).items() if p not in expected}
    for path, target in sorted(old_kept.items()):
        if not any(inside(path, f) for f in owner):  # outside every folder: only said
            changes += kept_outside(root, path, target, pipeline_file, kept, force=force)
    stale = stale_reason(old.inputs if old else None, inputs)
    journaled = set(journal or ())
    mark = header_line(pipeline_file)

    files: dict[str, dict[str, str]] = {
        p: m for p, m in old_files.items() if m["target"] not in names and m["target"] in outputs
    }
    for path, (target, text) in sorted(expected.items()):
        blocked = listing.blocked(path)
        if blocked:
            changes.append(Change(path, Kind.CONFLICT, blocked, None, text))
            continue
        current = decode(read_file(root, path)) if path in listing.files else None
        files[path] = {"target": target, "sha256": sha256(text)}
        if current == text:
            continue
        if current is None:
            if path in listing.files:  # replaced by a FIFO, a device or a folder meanwhile
                changes.append(Change(path, Kind.CONFLICT, "is not a regular file", None, text))
                del files[path]
            else:
                changes.append(Change(path, Kind.CREATE, "missing", None, text))
        elif current.startswith(mark):
            changes.append(
                Change(path, Kind.UPDATE, drift_reason(current, path, stale), current, text)
            )
        elif force:
            reason = "was not generated by this pipeline; overwritten (--force)"
            changes.append(Change(path, Kind.UPDATE, reason, current, text))
        else:
            first = current.split("\n", 1)[0]
            reason = (
                f"carries another pipeline's header ({first[2:80]!r}), not this one's; "
                "left alone (use --force to overwrite)"
                if MARK in first
                else "exists and was not generated by pipecompile (use --force to overwrite)"
            )
            changes.append(Change(path, Kind.CONFLICT, reason, current, text))
            del files[path]

    changes += removals(
        root,
        listing,
        owner,
        expected,
        old_files,
        journaled,
        pipeline_file,
        files,
        untrusted,
        {p: t for p, t in old_kept.items() if p not in kept},
        kept,
        force=force,
    )
    if journal is not None:
        reason = "an interrupted build left its journal (build finishes the job)"
        changes.append(Change(JOURNAL, Kind.DEBRIS, reason, None, None))
    # a tree left with conflicts must never pass check's fast path: record no inputs (kept
    # files are in the manifest, and the fast path is not green while one is on disk)
    conflicted = any(c.kind == Kind.CONFLICT for c in changes)
    with_files = {m["target"] for m in files.values()}
    recorded = {t: f for t, f in old_outputs.items() if t in with_files and f not in untrusted}
    recorded.update(outputs)
    files = {
        p: m
        for p, m in files.items()
        if m["target"] in recorded and inside(p, recorded[m["target"]])
    }
    gone = {c.path for c in changes if c.kind in REMOVALS}
    enabled = [outputs[n] for n in names]
    others = [
        p
        for p in listing.files
        if p not in files and p not in gone and p not in kept and any(inside(p, f) for f in enabled)
    ]
    manifest = Manifest(
        {} if conflicted else inputs,
        __version__,
        files,
        recorded,
        others,
        kept,
        sources=dict(sources),
    )
    return Plan(changes, manifest, sorted(owner), decode(raw), journal is not None, old)


def _no_foreign_pipeline(listing: Listing, folders: dict[str, str]) -> None:
    """Refuse an output folder that holds another pipeline (its file, lock or state)."""
    for rel in sorted(listing.files | listing.dirs):
        name = rel.rsplit("/", 1)[-1]
        if name in _FOREIGN_ROOT or (name == STATE_DIR and rel in listing.dirs):
            folder = max((f for f in folders if inside(rel, f)), key=len, default=None)
            if folder is not None:
                raise FolderError(
                    folders[folder],
                    f"the output folder {folder!r} holds {rel!r}, another pipeline's "
                    f"{'state' if name == STATE_DIR else 'file'}; pipecompile would "
                    "replace and remove that pipeline's files. Give each pipeline its own "
                    "output folders (two pipelines may share a repository, not a folder)",
                )
