"""Which paths are pipecompile's, and the only operations that change them.

A path is ours only if all of these hold:

* it is relative, '/'-separated and normalised: no empty, ``.`` or ``..``
  component, no backslash, no control character;
* it lies inside an output folder of the pipeline, and no component is
  ``.git`` (nor is the folder pipecompile's own state folder);
* it is reached without following a symbolic link at any component, folder or file.

The first two are checked on the string (:func:`path_problem`,
:func:`folder_problem`, :func:`inside`).  The third holds by construction:
:class:`Tree` opens every folder from the root one component at a time with
``O_NOFOLLOW`` and creates, replaces and removes files relative to that
folder's descriptor, so a link anywhere on the way is an error, never a
detour.  :func:`scan` lists output folders the same way (it reports links and
never descends into them) so that a plan can say in advance what it may not
touch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

STATE_DIR = ".pipecompile"
TMP_SUFFIX = ".pipecompile-tmp"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CONTROL = {chr(c) for c in (*range(0x20), 0x7F)}
_ODD_PARTS = frozenset(("", ".", ".."))
# reads never block (a FIFO) and never take a terminal (a device)
_READ_FLAGS = (
    os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
)


class NotOurs(Exception):
    """A path that pipecompile may not write or remove (a link or a file in the way)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def path_problem(rel: object) -> str | None:
    """Why ``rel`` is not a relative, normalised, '/'-separated path outside ``.git``."""
    if not isinstance(rel, str) or not rel:
        return "not a path"
    if not rel.isprintable() and any(c in _CONTROL for c in rel):
        return "contains a control character"
    if "\\" in rel:
        return "contains a backslash"
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        return "is absolute"
    parts = rel.split("/")
    if not _ODD_PARTS.isdisjoint(parts):
        return "is not normalised (empty, '.' or '..' component)"
    if ".git" in rel.lower() and any(p.lower() == ".git" for p in parts):
        return "lies inside .git"
    return None


def folder_problem(folder: object) -> str | None:
    """Why ``folder`` cannot be an output folder (None when it can)."""
    problem = path_problem(folder)
    if problem is not None:
        return problem
    assert isinstance(folder, str)
    if fold(folder.split("/", 1)[0]) == STATE_DIR:  # one folder on macOS and Windows
        return f"lies inside {STATE_DIR}, pipecompile's state folder"
    return None


def inside(rel: str, folder: str) -> bool:
    return rel.startswith(folder + "/")


def fold(rel: str) -> str:
    """``rel`` as a case-insensitive, normalisation-insensitive file system sees it
    (macOS and Windows checkouts): NFC, then case-folded."""
    import unicodedata

    return unicodedata.normalize("NFC", rel).casefold()


def overlaps(folders: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(target, message) for every output folder that is, contains, lies inside or
    differs only in case or Unicode normalisation from an earlier one."""
    out: list[tuple[str, str]] = []
    seen: list[tuple[str, str]] = []
    for target, folder in folders:
        for other, theirs in seen:
            a, b = fold(folder), fold(theirs)
            same_text = folder == theirs or inside(folder, theirs) or inside(theirs, folder)
            if not (a == b or inside(a, b) or inside(b, a)):
                continue
            if not same_text:
                why = (
                    f"differs from the {other} output folder '{theirs}' only in case or "
                    "Unicode normalisation: on macOS and Windows they are one folder"
                )
            elif folder == theirs:
                why = f"is also the {other} output folder"
            elif inside(folder, theirs):
                why = f"lies inside the {other} output folder '{theirs}'"
            else:
                why = f"contains the {other} output folder '{theirs}'"
            out.append(
                (
                    target,
                    f"'{folder}' {why}; output folders may not overlap (a build of one "
                    "target would replace or remove the other's files)",
                )
            )
            break
        seen.append((target, folder))
    return out


def through_link(root: str, norm: str, kinds: dict[str, str]) -> bool:
    """Whether an existing component of ``root/norm`` is a symbolic link (one lstat per
    prefix, cached in ``kinds``: prefix -> link | other | missing).  Lowering asks it of
    every path the pipeline names, and check's fast path again of each one recorded."""
    base = os.path.join(root, "")
    prefix = ""
    for part in norm.split("/"):
        prefix = f"{prefix}/{part}" if prefix else part
        kind = kinds.get(prefix)
        if kind is None:
            try:
                kind = "link" if stat.S_ISLNK(os.lstat(base + prefix).st_mode) else "other"
            except OSError:
                kind = "missing"
            kinds[prefix] = kind
        if kind == "link":
            return True
        if kind == "missing":  # nothing below a missing folder exists
            return False
    return False


def leads_to(root: str, norm: str) -> str:
    """Where ``root/norm`` leads, relative to the real root ('..'-prefixed outside it)."""
    real = os.path.realpath(root)
    return os.path.relpath(os.path.realpath(os.path.join(root, norm)), real).replace(os.sep, "/")


def tmp_name(name: str) -> str:
    """The temporary file a write of ``name`` goes through (fixed: the next build finds it)."""
    return f".{name}{TMP_SUFFIX}"


def is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


class Listing:
    """What lies below some output folders, found without following a link.

    (A plain class: it is defined on check's fast path, where a dataclass's
    generated code costs start-up time.)
    """

    __slots__ = ("dirs", "files", "links", "nested", "other", "unlisted")

    def __init__(self) -> None:
        self.unlisted: dict[str, str] = {}  # folders the OS cannot list: why (e.g. too long)
        self.files: set[str] = set()  # regular files
        self.links: set[str] = set()  # symbolic links, to files or folders
        self.dirs: set[str] = set()  # real folders
        self.other: set[str] = set()  # fifos, sockets, devices
        # folders that hold a .git (a nested clone, a submodule, a worktree): another
        # repository's, never listed, so nothing in them is ever ours to replace or remove
        self.nested: set[str] = set()

    def blocked(self, rel: str) -> str | None:
        """Why ``rel`` cannot be written or removed by pipecompile (None when it can)."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.links:
                return f"'{prefix}' is a symbolic link; pipecompile never writes through one"
            if prefix in self.files or prefix in self.other:
                return f"'{prefix}' is a file where a folder must be"
        if rel in self.links:
            return "is a symbolic link; pipecompile never writes through one (remove the link)"
        if rel in self.dirs:
            return "a folder stands where the file must be"
        if rel in self.other:
            return "is not a regular file"
        return None


def scan(root: str, folders: list[str]) -> Listing:
    """List ``folders`` (relative to ``root``) and the components leading to them."""
    out = Listing()
    base = os.path.join(root, "")
    for folder in sorted(set(folders)):
        parts = folder.split("/")
        reachable = True
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in out.dirs:
                continue
            try:
                mode = os.lstat(base + prefix).st_mode
            except (FileNotFoundError, NotADirectoryError):
                reachable = False
                break
            except PermissionError:
                raise NotOurs(prefix, "cannot be read (permission denied)") from None
            except OSError as exc:  # a name too long, a loop: the caller says where it came from
                out.unlisted[folder] = exc.strerror or str(exc)
                reachable = False
                break
            if stat.S_ISLNK(mode):
                out.links.add(prefix)
            elif stat.S_ISDIR(mode):
                out.dirs.add(prefix)
                continue
            elif stat.S_ISREG(mode):
                out.files.add(prefix)
            else:
                out.other.add(prefix)
            reachable = False
            break
        if reachable:
            _walk(base, folder, out)
    return out


# what marks a pipeline's folder (output.sync refuses an output folder holding one)
_PIPELINE_MARKS = ("pipeline.yaml", "pipecompile.lock", STATE_DIR)


def _walk(base: str, folder: str, out: Listing) -> None:
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(base + current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            raise NotOurs(current, "cannot be listed (permission denied)") from None
        except OSError as exc:
            out.unlisted[current] = exc.strerror or str(exc)
            continue
        if current != folder and any(e.name.lower() == ".git" for e in entries):
            out.nested.add(current)  # another checkout's files carry the same headers
            for entry in entries:  # only what says it holds a pipeline (sync refuses it)
                if entry.name in _PIPELINE_MARKS:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    (out.dirs if is_dir else out.files).add(f"{current}/{entry.name}")
            continue
        for entry in entries:
            rel = f"{current}/{entry.name}"
            if rel in out.dirs:  # scanned already (one output folder inside another)
                continue
            if entry.is_symlink():
                out.links.add(rel)
            elif entry.is_dir(follow_symlinks=False):
                out.dirs.add(rel)
                if entry.name.lower() != ".git":  # another repository's: never ours
                    stack.append(rel)
            elif entry.is_file(follow_symlinks=False):
                out.files.add(rel)
            else:
                out.other.add(rel)


def read_file(root: str, rel: str, limit: int = -1) -> bytes | None:
    """The bytes of the regular file ``root/rel`` (the first ``limit`` with a limit), not
    following a link at the last component.

    For paths a :func:`scan` listed as regular files (so no folder on the way is
    a link); None when the file is gone or is not a regular file.  A FIFO, a
    socket, a device or a folder put there since the scan is never read: the
    file is opened without blocking and checked before the first read.
    """
    try:
        fd = os.open(f"{root}/{rel}", _READ_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if limit >= 0:
            return os.read(fd, limit)
        data = os.read(fd, st.st_size + 1)
        if len(data) <= st.st_size:
            return data
        chunks = [data]  # the file grew since fstat: read to its end
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


class Tree:
    """The root folder, changed only through descriptors opened without following links."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.made: list[str] = []  # folders created here, parents first
        self._real: set[str] = {""}  # folders verified to be real, for read_owned

    @contextlib.contextmanager
    def folder(self, rel: str, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the folder ``rel`` ('' is the root), reached without links."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            prefix = ""
            for part in rel.split("/") if rel else ():
                prefix = f"{prefix}/{part}" if prefix else part
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o777, dir_fd=fd)
                    self.made.append(prefix)
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise NotOurs(prefix, _what(fd, part)) from None
                    raise
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    def write(self, dfd: int, rel: str, data: bytes) -> None:
        """Replace the file ``rel`` (in the folder ``dfd``) atomically, keeping mode and owner."""
        name = rel.rsplit("/", 1)[-1]
        try:
            old: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise NotOurs(rel, _what(dfd, name))
        tmp = tmp_name(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o666, dir_fd=dfd)
        try:
            with open(fd, "wb") as fh:
                if old is not None:
                    os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode))
                    with contextlib.suppress(PermissionError):  # not ours to give away
                        os.fchown(fh.fileno(), old.st_uid, old.st_gid)
                fh.write(data)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise

    def remove(self, dfd: int, rel: str) -> None:
        """Remove the regular file ``rel`` from the folder ``dfd`` (gone already is fine)."""
        name = rel.rsplit("/", 1)[-1]
        try:
            mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise NotOurs(rel, _what(dfd, name))
        os.unlink(name, dir_fd=dfd)

    def prune(self, rel: str, stop: str) -> None:
        """Remove ``rel`` and its parents while they are empty, up to and including ``stop``."""
        while rel == stop or inside(rel, stop):
            parent, _, name = rel.rpartition("/")
            try:
                with self.folder(parent) as dfd:
                    os.rmdir(name, dir_fd=dfd)
            except (OSError, NotOurs):
                return
            rel = parent

    def undo_folders(self) -> None:
        """Remove the folders created here that are still empty (after a failed write)."""
        for rel in reversed(self.made):
            parent, _, name = rel.rpartition("/")
            with contextlib.suppress(OSError, NotOurs), self.folder(parent) as dfd:
                os.rmdir(name, dir_fd=dfd)
        self.made.clear()

    def read_owned(self, rel: str) -> bytes | None:
        """The bytes of ``rel``, or None when it is missing or reached through a link."""
        parts = rel.split("/")
        base = os.path.join(self.root, "")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self._real:
                continue
            try:
                if not stat.S_ISDIR(os.lstat(base + prefix).st_mode):
                    return None
            except OSError:
                return None
            self._real.add(prefix)
        return read_file(self.root, rel)


def _what(dfd: int, name: str) -> str:
    try:
        mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
    except OSError:
        return "cannot be reached"
    if stat.S_ISLNK(mode):
        return "is a symbolic link; pipecompile never writes through one (remove the link)"
    if stat.S_ISDIR(mode):
        return "a folder stands where the file must be"
    if stat.S_ISREG(mode):
        return "is a file where a folder must be"
    return "is not a regular file"
