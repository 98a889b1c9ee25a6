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
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotOurs(LOCK, "is not a regular file")
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                "pipecompile: another build is in progress in this folder; waiting for it",
                file=sys.stderr,
            )
            fcntl.flock(fd, op)
        if not shared and not os.path.lexists(os.path.join(root, _IGNORE)):
            with open(os.path.join(root, _IGNORE), "x") as fh:
                fh.write("# written by pipecompile: the lock is never committed\nbuild.lock\n")
        yield
    finally:
        os.close(fd)  # releases the lock
