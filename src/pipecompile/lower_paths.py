"""Path checks of lowering: pipeline paths stay inside the root, and output folders
are folders pipecompile may own (see output/paths.py for the rule on writes)."""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path

from .errors import Diagnostic, Path_


class PathChecks:
    """Mixed into lowering: needs ``err``, ``errors``, ``root`` and a ``_kinds`` cache."""

    root: Path | None
    errors: list[Diagnostic]
    _kinds: dict[str, str]  # path prefix -> link | other | missing

    def err(self, path: Path_, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def rel_path(self, path: Path_, value: str, what: str) -> str:
        """Normalise a path inside the root; report one that escapes it."""
        if value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value) or "\\" in value:
            self.err(
                path,
                f"'{value}' must be a relative {what} using '/' inside the folder "
                "holding the pipeline file",
            )
            return "."
        norm = posixpath.normpath(value)
        if norm == ".." or norm.startswith("../"):
            self.err(path, f"'{value}' points outside the folder holding the pipeline file")
            return "."
        if self.root is not None and norm != "." and self._through_link(norm):
            real_root = self.root.resolve()
            target = (self.root / norm).resolve()
            if target != real_root and real_root not in target.parents:
                self.err(
                    path,
                    f"'{value}' resolves outside the folder holding the pipeline "
                    f"file (through a symbolic link, to {target})",
                )
                return "."
        return norm

    def output_folder(self, path: Path_, value: str) -> str | None:
        """A folder pipecompile may own: inside the root, not the root, not in .git or
        .pipecompile, and reached without a symbolic link (writes never follow one)."""
        from .output.paths import folder_problem

        reported = len(self.errors)
        norm = self.rel_path(path, value, "folder")
        if len(self.errors) > reported:
            return None
        problem = folder_problem(norm)
        if norm == ".":
            problem = "is the folder holding the pipeline file itself; name a subfolder"
        if problem is None and self.root is not None:
            link = self._link_in(norm)
            if link is not None:
                problem = (
                    f"is reached through the symbolic link '{link}'; pipecompile writes "
                    "only into real folders (replace the link by a folder)"
                )
        if problem is not None:
            self.err(path, f"'{value}' {problem}")
            return None
        return norm

    def _link_in(self, norm: str) -> str | None:
        """The first component of ``root/norm`` that is a symbolic link, if any."""
        prefix = ""
        for part in norm.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            if self._through_link(prefix):
                return prefix
        return None

    def _through_link(self, norm: str) -> bool:
        """Whether an existing part of ``root/norm`` is a symbolic link.

        Only then can a normalised relative path lead outside the root.  One
        lstat per distinct prefix, cached: a thousand services share 'services/'.
        """
        assert self.root is not None
        base = str(self.root)
        prefix = ""
        for part in norm.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            kind = self._kinds.get(prefix)
            if kind is None:
                try:
                    mode = os.lstat(os.path.join(base, prefix)).st_mode
                    kind = "link" if stat.S_ISLNK(mode) else "other"
                except OSError:
                    kind = "missing"
                self._kinds[prefix] = kind
            if kind == "link":
                return True
            if kind == "missing":  # nothing below a missing folder exists
                return False
        return False
