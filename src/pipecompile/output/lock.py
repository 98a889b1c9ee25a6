"""One build at a time: an ``fcntl`` lock on ``.pipecompile/build.lock``.

A build holds the lock exclusively from reading the disk to dropping its
journal; check and diff hold it shared, so they wait for a build in progress
instead of reading half-written state, and never race a peer's temporary
files.  The lock file is created by the first build (with a ``.gitignore``
beside it, so it is never committed) and held only while a process runs: the
kernel drops it when the process ends, even by ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import sys
from collections.abc import Iterator

from .paths import STATE_DIR, NotOurs
from .state import StateError

LOCK = f"{STATE_DIR}/build.lock"
_IGNORE = f"{STATE_DIR}/.gitignore"
_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC


def _state_dir(root: str, create: bool) -> bool:
    path = os.path.join(root, STATE_DIR)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.mkdir(path)
        except FileExistsError:  # a peer build made it since the lstat: check what it is
            return _state_dir(root, create)
        return True
    if stat.S_ISLNK(mode):
        raise StateError(
            STATE_DIR,
            "is a symbolic link; pipecompile keeps its state only in a real folder",
            "remove the link and run pipecompile build",
        )
    if not stat.S_ISDIR(mode):
        raise StateError(
            STATE_DIR, "is not a regular folder", "remove it and run pipecompile build"
        )
    return True


def build_in_progress(root: str) -> bool:
    """True when a build holds the lock now (a shared probe that does not wait).

    The fast no-change paths call this first: while a peer builds, they answer
    nothing and leave the run to the full path, which waits for the build.
    """
    try:
        fd = os.open(
            os.path.join(root, LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        )
    except OSError:
        return False  # no lock file: no build has run here (or it cannot be a lock)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # not a lock (a FIFO, a device): the full path reports it
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


_IGNORED = (
    "# written by pipecompile: the lock, the stat cache, an interrupted build's journal\n"
    "# and temporary files are for this checkout only, never committed\n"
    "build.lock\nstat.cache\njournal.json\n.*.pipecompile-tmp\n*.tmp\n"
)


def _ignore(root: str) -> None:
    """Write the state folder's ``.gitignore``, or bring one pipecompile wrote up to date
    (an older one lists less); one written by a person is left alone."""
    path = os.path.join(root, _IGNORE)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        text = None
    except OSError:
        return
    else:
        if not stat.S_ISREG(mode):
            return  # a link, a FIFO, a device: not ours to read or replace
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            text = os.read(fd, 4096).decode("utf-8", "replace")
        finally:
            os.close(fd)
    if text == _IGNORED or (text is not None and not text.startswith("# written by pipecompile")):
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_IGNORED)
    os.replace(tmp, path)


@contextlib.contextmanager
def build_lock(root: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the build lock (exclusive for a build, shared to read); waits for a holder.

    A reader in a tree no build has touched yet takes no lock: there is no state
    to read half-written.
    """
    if not _state_dir(root, create=not shared):
        yield
        return
    path = os.path.join(root, LOCK)
    try:
        fd = os.open(path, _FLAGS | (0 if shared else os.O_CREAT), 0o666)
    except FileNotFoundError:
        yield  # no build has run since the lock was introduced
        return
    except OSError as exc:
        raise NotOurs(LOCK, f"cannot be opened ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device: a bad state file
            raise StateError(
                LOCK,
                "is not a regular file (a FIFO, socket or device)",
                "remove it: pipecompile creates its lock file again",
            )
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                "pipecompile: another build is in progress in this folder; waiting for it",
                file=sys.stderr,
            )
            fcntl.flock(fd, op)
        if not shared:
            _ignore(root)
        yield
    finally:
        os.close(fd)  # releases the lock
