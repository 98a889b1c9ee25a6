"""pipecompile's state files, read as untrusted input.

``.pipecompile/manifest.json`` records what the last build generated; it is
committed, so a pull request can carry any bytes in it.  ``.pipecompile/journal.json``
exists only while a build writes: it lists every path the build is about to
write or remove, so that the next build can finish or clean up after a
``kill -9``.

Both are read with a bounded size and nesting, validated field by field
(types, paths, hashes), and a bad one is a :class:`StateError` that names the
file, what is wrong and how to recover -- never silently treated as absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from typing import Any

from .._version import __version__
from .paths import STATE_DIR, Tree, folder_problem, inside, path_problem

MANIFEST = f"{STATE_DIR}/manifest.json"
JOURNAL = f"{STATE_DIR}/journal.json"
FORMAT = 2
MAX_STATE_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 16

_INPUT_KEYS = ("pipeline", "lock", "pipecompile")
# patterns, compiled on first use by re's cache (not at import: check's fast path)
_SHA256 = r"[0-9a-f]{64}"
_TARGET = r"[a-z][a-z0-9-]{0,39}"
_STRINGS = rb'"(?:[^"\\]|\\.)*"'
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class StateError(Exception):
    """A state file pipecompile cannot trust (exit 2): what is wrong, and how to recover."""

    def __init__(self, file: str, problem: str, fix: str) -> None:
        self.file, self.problem, self.fix = file, problem, fix
        super().__init__(f"{file}: {problem}; {fix}")


class JSONProblem(ValueError):
    """Why bytes are not acceptable JSON; ``line`` and ``col`` are 0 when no place applies."""

    def __init__(self, line: int, col: int, message: str) -> None:
        self.line, self.col, self.message = line, col, message
        super().__init__(message)

    def __str__(self) -> str:
        return f"line {self.line} column {self.col}: {self.message}" if self.line else self.message


def load_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON whose nesting is at most ``max_depth`` (checked before parsing)."""
    depth = deepest = 0
    for b in re.sub(_STRINGS, b"", raw, flags=re.DOTALL).translate(None, _NOT_BRACKETS):
        depth += 1 if b in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise JSONProblem(0, 0, f"nested deeper than {max_depth} levels")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise JSONProblem(0, 0, "invalid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise JSONProblem(exc.lineno, exc.colno, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise JSONProblem(0, 0, "nested too deeply") from None


def read_bounded(path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``; ValueError when it is longer."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    return data


class Manifest:
    """What a build generated: {path: {"target", "sha256"}}, the inputs and the output folders.

    (A plain class: it is defined on check's fast path.)
    """

    __slots__ = ("files", "inputs", "outputs", "version")

    def __init__(
        self,
        inputs: dict[str, str],
        version: str,
        files: dict[str, dict[str, str]],
        outputs: dict[str, str] | None = None,
    ) -> None:
        self.inputs = inputs
        self.version = version
        self.files = files
        self.outputs: dict[str, str] = outputs or {}

    def text(self) -> str:
        """``json.dumps(..., indent=2, sort_keys=True)`` of the manifest, written out by hand.

        The same bytes (a test holds it to that) six times faster: the json
        module's indenting encoder is pure Python, and a large build records
        ten thousand files.
        """
        enc = json.encoder.encode_basestring_ascii

        def obj(d: dict[str, str], pad: str) -> str:
            if not d:
                return "{}"
            inner = pad + "  "
            lines = [f"{inner}{enc(k)}: {enc(v)}" for k, v in sorted(d.items())]
            return "{\n" + ",\n".join(lines) + "\n" + pad + "}"

        entries = [f"    {enc(p)}: {obj(meta, '    ')}" for p, meta in sorted(self.files.items())]
        files = "{\n" + ",\n".join(entries) + "\n  }" if entries else "{}"
        return (
            "{\n"
            f'  "files": {files},\n'
            f'  "format": {FORMAT},\n'
            f'  "inputs": {obj(self.inputs, "  ")},\n'
            f'  "outputs": {obj(self.outputs, "  ")},\n'
            f'  "pipecompile": {enc(self.version)}\n'
            "}\n"
        )


_MANIFEST_FIX = (
    "delete it and run pipecompile build, which adopts the generated files by their "
    "headers (files of targets that are no longer enabled must then be removed by hand)"
)


def parse_manifest(raw: bytes) -> Manifest:
    """Validate the manifest's bytes: shape, types, hashes, and every path's ownership."""

    def bad(problem: str) -> StateError:
        return StateError(MANIFEST, problem, _MANIFEST_FIX)

    try:
        data = load_json(raw)
    except JSONProblem as exc:
        raise bad(str(exc)) from None
    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    known = {"files", "format", "inputs", "outputs", "pipecompile"}
    for key in data:
        if key not in known:
            raise bad(f"unknown key {key!r}")
    for key in ("files", "inputs", "pipecompile"):
        if key not in data:
            raise bad(f"missing key {key!r}")
    if data.get("format", 1) not in (1, FORMAT):
        raise bad(f"format {data.get('format')!r} is not one this pipecompile reads (1 or 2)")
    version = data["pipecompile"]
    if not (isinstance(version, str) and re.fullmatch(r"[0-9A-Za-z.+-]{1,100}", version)):
        raise bad("'pipecompile' must be a version string")
    inputs = data["inputs"]
    if not isinstance(inputs, dict) or not all(
        k in _INPUT_KEYS and isinstance(v, str) and len(v) <= 200 for k, v in inputs.items()
    ):
        raise bad(f"'inputs' must map {', '.join(_INPUT_KEYS)} to strings")
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        raise bad("'outputs' must map target names to folders")
    for target, folder in outputs.items():
        if not re.fullmatch(_TARGET, str(target)):
            raise bad(f"outputs: {target!r} is not a target name")
        problem = folder_problem(folder)
        if problem:
            raise bad(f"outputs.{target}: {folder!r} {problem}")
    files = data["files"]
    if not isinstance(files, dict):
        raise bad("'files' must be an object")
    checked: dict[str, dict[str, str]] = {}
    for path, meta in files.items():
        problem = path_problem(path)
        if problem:
            raise bad(f"files: {path!r} {problem}")
        if not isinstance(meta, dict) or set(meta) != {"target", "sha256"}:
            raise bad(f"files[{path!r}]: expected {{'target': ..., 'sha256': ...}}")
        target, digest = meta["target"], meta["sha256"]
        if not isinstance(target, str) or not re.fullmatch(_TARGET, target):
            raise bad(f"files[{path!r}].target: not a target name")
        if not isinstance(digest, str) or not re.fullmatch(_SHA256, digest):
            raise bad(f"files[{path!r}].sha256: expected 64 lowercase hex digits")
        if "format" in data and target not in outputs:
            raise bad(f"files[{path!r}]: its target {target!r} has no folder under 'outputs'")
        if target in outputs and not inside(path, outputs[target]):
            raise bad(f"files[{path!r}]: outside the {target} output folder {outputs[target]!r}")
        checked[path] = {"target": target, "sha256": digest}
    return Manifest(dict(inputs), version, checked, dict(outputs))


def parse_journal(raw: bytes) -> list[str]:
    """The paths an interrupted build was writing or removing."""

    def bad(problem: str) -> StateError:
        return StateError(
            JOURNAL,
            problem,
            "it is written by a build and removed when the build finishes; "
            "delete it and run pipecompile build",
        )

    try:
        data = load_json(raw)
    except JSONProblem as exc:
        raise bad(str(exc)) from None
    if not isinstance(data, dict) or set(data) != {"format", "paths"}:
        raise bad("expected {'format': 2, 'paths': [...]}")
    paths = data["paths"]
    if data["format"] != FORMAT or not isinstance(paths, list):
        raise bad("expected {'format': 2, 'paths': [...]}")
    for p in paths:
        problem = path_problem(p)
        if problem:
            raise bad(f"paths: {p!r} {problem}")
    return list(paths)


def journal_text(paths: list[str]) -> str:
    return json.dumps({"format": FORMAT, "paths": sorted(paths)}, indent=0) + "\n"


def read_state(root: str, rel: str) -> bytes | None:
    """A state file's bytes (bounded), None when absent; a link or a non-file is an error."""
    base = os.path.join(root, "")
    for part, kind, is_kind in ((STATE_DIR, "folder", stat.S_ISDIR), (rel, "file", stat.S_ISREG)):
        try:
            mode = os.lstat(base + part).st_mode
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            mode = 0
        if stat.S_ISLNK(mode):
            raise StateError(
                part,
                "is a symbolic link; pipecompile keeps its state only in a real folder",
                "remove the link and run pipecompile build",
            )
        if not is_kind(mode):
            raise StateError(
                part, f"is not a regular {kind}", "remove it and run pipecompile build"
            )
    try:
        return read_bounded(base + rel, MAX_STATE_BYTES)
    except ValueError as exc:
        raise StateError(rel, str(exc), "delete it and run pipecompile build") from None


def read_manifest(root: str) -> Manifest | None:
    raw = read_state(root, MANIFEST)
    return None if raw is None else parse_manifest(raw)


def read_journal(root: str) -> list[str] | None:
    raw = read_state(root, JOURNAL)
    return None if raw is None else parse_journal(raw)


def fast_clean(root: str, fingerprint: Callable[[], dict[str, str]]) -> bool:
    """True when nothing can have changed since the last build (the make/ninja argument).

    Same pipeline bytes, same lock, same pipecompile (version and code), no
    journal of an interrupted build, and every file the manifest lists is
    reached without a link and still has the bytes recorded at build time.
    Any doubt returns False and the caller does the full render-and-compare.
    """
    try:
        m = read_manifest(root)
        if m is None or read_state(root, JOURNAL) is not None:
            return False
    except StateError:
        return False  # the full path reports it
    if m.version != __version__ or not m.inputs:
        return False
    if m.inputs != fingerprint():  # computed only now: it hashes pipecompile's code
        return False
    tree = Tree(root)
    for path, meta in m.files.items():
        data = tree.read_owned(path)
        if data is None or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            return False
    return True
