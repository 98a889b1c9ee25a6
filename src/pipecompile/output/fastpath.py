"""The no-change answer: nothing can have changed since the last build.

:func:`fast_clean` is the make/ninja argument, made safe for a committed,
mergeable manifest: any doubt returns False and the caller renders and
compares in full.  It reads every generated file and compares its hash with
the manifest, unless the stat cache vouches for the file.

The stat cache (``.pipecompile/stat.cache``, never committed: the state
folder's ``.gitignore`` lists it) is git's index trick.  For each generated file
it records size, mtime, ctime and inode as they were when the file was last
hashed and matched the manifest, under the manifest's digest.  A file whose
stat data is unchanged is not read again.  Any write to a file changes its
ctime, which no user call can set, so an edit, a ``git checkout`` or a copy
is always re-read.  Only a build writes it (check and diff write nothing).
An entry whose file changed in the same clock tick as the cache was written
("racily clean", as git calls it) is never trusted.  A cache
that is missing, unreadable, for another manifest or malformed is ignored and
rewritten; it can make the answer faster, never greener.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable

from .._version import __version__
from .paths import STATE_DIR, leads_to, read_file, scan, through_link
from .state import JOURNAL, MARK, Manifest, StateError, read_manifest, read_state

CACHE = f"{STATE_DIR}/stat.cache"
_HEAD = "pipecompile-stat-cache 1 "
_MAX_CACHE = 64 * 1024 * 1024

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
# never blocks on a FIFO, never follows a link; what is opened is checked before reading
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _small_text(path: str, limit: int) -> str | None:
    """The text of the regular file ``path`` if it has at most ``limit`` bytes."""
    try:
        fd = os.open(path, _READ)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return os.read(fd, limit + 1).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(st: os.stat_result) -> Stat:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _load(root: str, digest: str) -> tuple[dict[str, tuple[str, Stat]], int]:
    """The cache's entries for the manifest ``digest`` and the cache's own mtime
    (({}, 0) when there is none that applies)."""
    try:
        fd = os.open(os.path.join(root, CACHE), _READ)
    except OSError:
        return {}, 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_CACHE:
            return {}, 0
        text = os.read(fd, st.st_size + 1).decode("utf-8", "replace")
    except OSError:
        return {}, 0
    finally:
        os.close(fd)
    head, _, body = text.partition("\n")
    if head != _HEAD + digest:
        return {}, 0
    entries: dict[str, tuple[str, Stat]] = {}
    for line in body.splitlines():
        fields = line.split(" ", 5)
        if len(fields) != 6 or not all(f.isdigit() for f in fields[1:5]):
            return {}, 0  # not what pipecompile writes: ignore it whole
        sha, size, mtime, ctime, ino, path = fields
        entries[path] = (sha, (int(size), int(mtime), int(ctime), int(ino)))
    return entries, st.st_mtime_ns


def _save(root: str, digest: str, entries: dict[str, tuple[str, Stat]]) -> None:
    """Write the cache (best effort: a read-only checkout just stays on the slow path).

    Only where the state folder's ``.gitignore`` keeps it out of commits."""
    ignore = _small_text(os.path.join(root, STATE_DIR, ".gitignore"), 4096)
    if ignore is None or "stat.cache" not in ignore.split():
        return
    tmp = os.path.join(root, STATE_DIR, f".stat.cache.{os.getpid()}.tmp")
    try:
        lines = [_HEAD + digest]
        for path, (sha, (size, mtime, ctime, ino)) in sorted(entries.items()):
            lines.append(f"{sha} {size} {mtime} {ctime} {ino} {path}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(root, CACHE))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # (a folder at stat.cache: leave no temporary file behind)


def _files_match(root: str, m: Manifest, refresh: bool) -> bool:
    """Every generated file has the bytes the manifest records (read, or vouched for by
    the stat cache); with ``refresh`` (a build), rewrites the cache when it had to read."""
    cached, written = _load(root, m.digest)
    fresh: dict[str, tuple[str, Stat]] = {}
    hashed = False
    for path, meta in m.files.items():
        sha = meta["sha256"]
        hit = cached.get(path)
        if hit is not None and hit[0] == sha:
            try:
                now = _stat(os.lstat(f"{root}/{path}"))
            except OSError:
                return False
            # trusted only when the file last changed strictly before the cache was written
            if now == hit[1] and now[1] < written and now[2] < written:
                fresh[path] = hit
                continue
        try:  # stat before reading, as git does: an edit after it changes what is recorded
            before = _stat(os.lstat(f"{root}/{path}"))
        except OSError:
            return False
        data = read_file(root, path)
        if data is None or hashlib.sha256(data).hexdigest() != sha:
            return False
        hashed = True
        fresh[path] = (sha, before)
    if refresh and (hashed or len(fresh) != len(cached)):
        _save(root, m.digest, fresh)
    return True


def _sources_same(root: str, sources: dict[str, str]) -> bool:
    """Every path the pipeline names is reached as at build time: without a symbolic link
    on the way, or through links that lead where they led (a link put at a service's
    folder or Dockerfile since can make the pipeline invalid)."""
    kinds: dict[str, str] = {}
    for norm, leads in sources.items():
        if through_link(root, norm, kinds):
            if leads_to(root, norm) != leads:
                return False
        elif leads:
            return False
    return True


def fast_clean(
    root: str, fingerprint: Callable[[], dict[str, str]], *, refresh: bool = False
) -> bool:
    """True when nothing can have changed since the last build (the make/ninja argument).

    The manifest's digest matches its parts (so no merge, checkout or hand
    edit changed one part alone); same pipeline bytes, same lock, same
    pipecompile (version and code); no journal of an interrupted build; no file
    left in place by an earlier build (kept) still on disk; the
    paths the pipeline names are reached as they were (no symbolic link put on the
    way since); the output folders hold exactly the files the manifest lists, generated or
    other (listed by name and type, without following a link: a file unknown
    to the manifest, a link, a FIFO or a temporary file is doubt); every
    generated file still has the bytes recorded at build time, and no other
    file starts with pipecompile's header.  Any doubt returns False and the
    caller does the full render-and-compare.
    """
    try:
        m = read_manifest(root)
        if m is None or read_state(root, JOURNAL) is not None:
            return False
    except StateError:
        return False  # the full path reports it
    if m.version != __version__ or not m.inputs or not m.consistent():
        return False
    # a file an earlier build left in place is said until it is gone; a build rewrites
    # the manifest without the ones that are
    if m.kept and (refresh or any(os.path.lexists(f"{root}/{p}") for p in m.kept)):
        return False
    if m.inputs != fingerprint():  # computed only now: it hashes pipecompile's code
        return False
    if not _sources_same(root, m.sources):
        return False
    listing = scan(root, list(m.outputs.values()))
    if listing.unlisted or listing.links or listing.other:
        return False
    if listing.files != set(m.files) | set(m.others):
        return False
    if not _files_match(root, m, refresh):
        return False
    mark = b"# " + MARK.encode()
    for path in m.others:
        data = read_file(root, path, len(mark))
        if data is None or data.startswith(mark):
            return False
    return True
