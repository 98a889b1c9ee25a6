"""One build session: the inputs read and fingerprinted once, compiled once, then
rendered, planned against the disk and applied (black's pipeline plus write-back).

Commands hold a :class:`Session` and only parse arguments and print.  Heavy
modules load on first use, so a no-change ``check`` (:meth:`Session.fast_clean`)
never compiles.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from .frontend.loader import Document
    from .ir import IR
    from .output.change import Plan


def repo_name(file: Path) -> str:
    """The pipeline's path relative to the repository root (the nearest folder upward
    holding .git, as discovery finds it), '/'-separated; its file name alone when no
    repository holds it.  Headers carry this name, and ownership needs it exactly: two
    pipelines in one repository never take each other's files."""
    import os

    folder = os.path.realpath(os.path.dirname(os.path.abspath(file)))
    here = folder
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            rel = os.path.relpath(os.path.join(folder, file.name), here)
            return rel.replace(os.sep, "/")
        up = os.path.dirname(here)
        if up == here:
            return file.name
        here = up


class Session:
    """One command's view of a pipeline: its inputs, read once, and what follows from them.

    (A plain class: it is built on check's fast path.)
    """

    def __init__(self, file: Path, raw: bytes, lock: bytes | None, name: str | None = None) -> None:
        self.file = file
        self.raw = raw  # the pipeline file's bytes
        self.lock = lock  # pipecompile.lock's bytes, None without one
        self._compiled: tuple[Document, IR] | None = None
        self._fingerprint: dict[str, str] | None = None
        # how headers name the pipeline (see repo_name)
        self.name = repo_name(file) if name is None else name

    @classmethod
    def open(cls, file: Path) -> Session:
        """Read the pipeline file and its lock (bounded), once."""
        from .frontend.pins import read_lock
        from .frontend.read import read

        name = repo_name(file)
        if not name.isprintable():
            from .errors import printable

            raise UsageError(
                f"{printable(name, one_line=True)}: the pipeline's path holds a "
                "control character; it is written into every generated file's header, "
                "so rename the file or its folder"
            )
        return cls(file, read(file), read_lock(file.parent), name)

    @property
    def root(self) -> Path:
        return self.file.parent

    @property
    def fingerprint(self) -> dict[str, str]:
        """What the outputs depend on (pipeline, lock, pipecompile), hashed once."""
        if self._fingerprint is None:
            from .output.header import inputs_fingerprint

            self._fingerprint = inputs_fingerprint(self.raw, self.lock, self.name)
        return self._fingerprint

    def fast_clean(self, *, refresh: bool = False) -> bool:
        """Nothing can have changed since the last build (see output.fastpath.fast_clean);
        False while a build is in progress (the full path then waits for it).  Only a
        build (``refresh``) writes the stat cache: check and diff write nothing."""
        from .output.fastpath import fast_clean
        from .output.lock import build_in_progress

        if build_in_progress(str(self.root)):
            return False
        return fast_clean(str(self.root), lambda: self.fingerprint, refresh=refresh)

    def compile(self) -> tuple[Document, IR]:
        """The Document (positions, for mapping findings home) and the IR, compiled once."""
        if self._compiled is None:
            from dataclasses import replace

            from .compiler import compile_document

            doc, ir = compile_document(str(self.file), self.raw, self.root, self.lock)
            self._compiled = doc, replace(ir, pipeline_file=self.name)
        return self._compiled

    @property
    def ir(self) -> IR:
        return self.compile()[1]

    def targets(self, only: tuple[str, ...] = ()) -> list[str]:
        """The enabled targets to render: all, or those named with ``-t``."""
        enabled = [name for name, _ in self.ir.outputs]
        for name in only:
            if name not in enabled:
                raise UsageError(
                    f"unknown or disabled target '{name}'{did_you_mean(name, enabled)};"
                    f" enabled targets: {', '.join(enabled)}"
                )
        return [n for n in enabled if not only or n in only]

    def plan(self, only: tuple[str, ...] = (), *, force: bool = False) -> Plan:
        """Render the targets (with headers) and compare with the disk; writes nothing."""
        from .errors import PipelineError
        from .jobs import render
        from .output.sync import FolderError, plan
        from .targets.registry import registry

        names = self.targets(only)
        # a partial build cannot vouch for the other targets: record no inputs
        partial = len(names) != len(self.ir.outputs)
        rendered = render(self.ir, names)
        self._no_collisions(rendered)
        try:
            return plan(
                str(self.root),
                rendered,
                dict(self.ir.outputs),
                tuple(names),
                {} if partial else self.fingerprint,
                self.ir.pipeline_file,
                force=force,
                known=tuple(registry()),
                sources=self.ir.sources,
            )
        except FolderError as exc:
            doc = self.compile()[0]
            raise PipelineError(
                [doc.error("PC203", ("outputs", exc.target), exc.message)]
            ) from None

    def _no_collisions(self, rendered: dict[str, tuple[str, str]]) -> None:
        """Every generated path against every other, as a case-insensitive checkout sees
        them: a collision is a located error naming both origins."""
        from .errors import PipelineError
        from .output.paths import fold

        seen: dict[str, str] = {}
        errors = []
        for path in sorted(rendered):
            key = fold(path)
            if key in seen:
                first = seen[key]
                target, other = rendered[path][0], rendered[first][0]
                errors.append(
                    self.compile()[0].error(
                        "PC202",
                        ("outputs", target),
                        f"{path} ({target}) and {first} ({other}) are one file on a "
                        "case-insensitive file system; rename what produces one of them",
                    )
                )
            seen.setdefault(key, path)
        if errors:
            raise PipelineError(errors)

    def building(self, *, shared: bool = False) -> AbstractContextManager[None]:
        """One build at a time in this folder (see output.lock); readers share it."""
        from .output.lock import build_lock

        return build_lock(str(self.root), shared=shared)

    def apply(self, plan: Plan) -> None:
        """Carry out a plan (this process makes every change; see output.apply.apply)."""
        from .output.apply import apply

        apply(str(self.root), plan)
