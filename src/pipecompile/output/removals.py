"""What a build removes, and what it leaves in place and says (for :mod:`.sync`).

A file is removed only when the file itself proves it is this pipeline's: its
header names this pipeline and its fingerprint matches its content (or, with
``--force``, the header alone).  A manifest entry is never proof; a file kept
once is remembered in the manifest and said again until it is gone.
"""

from __future__ import annotations

import os

from .change import Change, Kind, decode
from .header import MARK, header_line, intact, sha256
from .paths import Listing, Tree, inside, is_tmp, read_file
from .state import MANIFEST


def removals(
    root: str,
    listing: Listing,
    owner: dict[str, str],
    expected: dict[str, tuple[str, str]],
    old_files: dict[str, dict[str, str]],
    journaled: set[str],
    pipeline_file: str,
    files: dict[str, dict[str, str]],
    untrusted: set[str],
    old_kept: dict[str, str],
    kept: dict[str, str],
    *,
    force: bool,
) -> list[Change]:
    """Stale files, orphans of interrupted builds and temporary files, found and judged.

    Candidates come from the old manifest (the rendered targets', those of
    targets no longer enabled, and the files kept earlier), the journal, and
    any file in an output folder whose first line is this pipeline's header.
    Each must lie in an output folder and be reached without a link; it is
    removed only when the file itself proves it: this pipeline's header and a
    fingerprint that matches its content (or with --force, the header alone).
    A manifest entry is never proof.  Kept files go into ``kept`` (the
    manifest's), so check keeps saying so until they are gone.
    """
    mark = header_line(pipeline_file).encode()
    foreign = f"# {MARK} from ".encode()
    out: list[Change] = []
    candidates: dict[str, str] = {}  # path -> "manifest" | "journal" | "scan"
    scanned: dict[str, bytes] = {}  # the bytes read while scanning, not read twice
    for path, meta in old_files.items():
        if path not in expected and meta["target"] in owner.values():
            candidates[path] = "manifest"
    for path in old_kept:
        candidates.setdefault(path, "kept")
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
        elif data is not None and data.startswith(foreign):
            folder = max((f for f in owner if inside(path, f)), key=len, default=None)
            if folder is not None and folder not in untrusted:
                first = decode(data.split(b"\n", 1)[0]) or ""
                reason = (
                    f"carries another pipeline's header ({first[2:120]!r}) in this "
                    "pipeline's output folder; left alone (give each pipeline its own "
                    "output folders)"
                )
                out.append(Change(path, Kind.CONFLICT, reason, None, None))
    for path, source in sorted(candidates.items()):
        folder = max((f for f in owner if inside(path, f)), key=len, default=None)
        if folder is None:
            continue  # not in an output folder (a journal is untrusted input too)
        listed = source in ("manifest", "kept")  # the manifest says pipecompile wrote it
        target = (
            old_files[path]["target"]
            if source == "manifest"
            else old_kept[path]
            if source == "kept"
            else owner[folder]
        )
        blocked = listing.blocked(path)
        data = scanned.get(path) or (read_file(root, path) if path in listing.files else None)
        if blocked or data is None:
            if blocked and listed:
                out.append(Change(path, Kind.KEPT, blocked, None, None))
                kept[path] = target
            continue
        text = decode(data) or ""
        generated = data.startswith(mark)  # this pipeline's header, nobody else's
        if folder in untrusted and not (generated and intact(text, path)):
            # only the file itself is proof in a folder only the manifest names: a file
            # with this pipeline's header, edited since, is kept and said (check is not
            # green on it); anything else there is not this pipeline's business
            if generated:  # even --force leaves it: only the manifest names this folder
                reason = (
                    "its target no longer writes here, but it was edited by hand (or copied "
                    "here: its fingerprint does not hold at this path) since; left in place "
                    "(delete it by hand if it is not yours)"
                )
                out.append(Change(path, Kind.KEPT, reason, text, None))
                kept[path] = target  # the folder leaves the manifest, the file does not
            continue
        if not listed and not generated:
            continue  # not something this pipeline wrote
        recorded = old_files.get(path, {}).get("sha256")
        if not generated and sha256(data) == recorded:
            # a generated file always starts with its header: an entry recording a
            # header-less file's bytes was written by hand, and proves nothing
            reason = (
                f"listed in the manifest, but {path} does not carry this pipeline's "
                "header: not pipecompile's; left alone (build drops the entry)"
            )
            out.append(Change(MANIFEST, Kind.UNTRUSTED, reason, None, None))
            continue
        if generated and intact(text, path):
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
                "not generated here: edited by hand since, or copied here (its "
                "fingerprint does not hold at this path); left in place (use --force to "
                "remove it)"
                if generated
                else "no longer generated, and its pipecompile header is gone; left in "
                "place (delete it by hand if it is not yours)"
            )
            out.append(Change(path, Kind.KEPT, reason, text, None))
            kept[path] = target
    return out


def kept_outside(
    root: str, path: str, target: str, pipeline_file: str, kept: dict[str, str], *, force: bool
) -> list[Change]:
    """A file an earlier build left in place whose folder no output folder covers now (its
    target was disabled or moved): said again while it is on disk, never removed (only
    with --force), forgotten once deleted or no longer carrying this pipeline's header."""
    parts = path.split("/")
    for i in range(1, len(parts)):  # another checkout's file is not this pipeline's
        if os.path.lexists(os.path.join(root, *parts[:i], ".git")):
            return []
    data = Tree(root).read_owned(path)  # None: gone, or reached through a link
    if data is None:
        return []
    if not data.startswith(header_line(pipeline_file).encode()):
        reason = (
            f"kept: {path} no longer carries this pipeline's header: not pipecompile's "
            "any more (build drops the entry)"
        )
        return [Change(MANIFEST, Kind.UNTRUSTED, reason, None, None)]
    text = decode(data) or ""
    proven = intact(text, path)
    if force and proven:  # outside every output folder: the file itself must prove it
        return [
            Change(path, Kind.DELETE, "left by a disabled target; removed (--force)", text, None)
        ]
    kept[path] = target
    if proven:
        fix = f"delete it (or use --force to remove it, or write {target}'s output here again)"
        edited = ""
    else:
        fix = f"delete it by hand if it is not yours (or write {target}'s output here again)"
        edited = (
            ", and it was edited by hand since (or copied here: its fingerprint does not "
            "hold at this path)"
        )
    reason = (
        f"generated for {target}, which no longer writes here (disabled, or its output "
        f"folder moved){edited}; left in place: {fix}"
    )
    return [Change(path, Kind.KEPT, reason, text, None)]
