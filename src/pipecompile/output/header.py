"""The do-not-edit header of every generated file, and the fingerprints of what
the outputs depend on.

Every generated file starts with a header whose fingerprint hashes the
pipecompile version, the file's own path (relative to the pipeline's folder) and
its body: a copy saved under another name proves nothing.  That lets ``check`` say *why* a
file differs (hand edit, pipeline changed, other pipecompile version), and
lets a build recognise its own files when the manifest is lost or a build was
interrupted.  The inputs' fingerprint (pipeline, lock, pipecompile's own code)
is what the manifest records and check's fast path compares.
"""

from __future__ import annotations

import hashlib
import os

from .._version import __version__
from .state import MARK as MARK


def sha256(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def body_fingerprint(body: str, path: str, version: str = __version__) -> str:
    """The header's fingerprint of ``body`` generated at ``path``: bound to the path, so a
    file is this pipeline's only where it was generated (never a copy elsewhere)."""
    return sha256(f"{version}\0{path}\0{body}".encode("utf-8", "surrogateescape"))[:16]


def code_fingerprint() -> str:
    """Hash of pipecompile's own code and data, so a changed generator is never trusted.

    The version alone is not enough: a development install keeps its version
    while the code changes.  Only .py, data files and scripts count (not bytecode).
    Plain os.walk: this runs on every no-change check (about 2 ms).
    """
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    found = []
    for folder, dirs, names in os.walk(base):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            if name.endswith((".py", ".json", ".yaml", ".tpl", ".sh", ".jq", ".star")):
                found.append(os.path.join(folder, name))
    for path in sorted(found):
        h.update(os.path.relpath(path, base).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def inputs_fingerprint(pipeline: bytes, lock: bytes | None, name: str) -> dict[str, str]:
    """Everything the outputs depend on, hashed one by one so check can say what changed.

    The pipeline's repository-relative ``name`` counts too: every header carries it,
    so a renamed pipeline file is never green; so do the installed dependencies'
    versions and the target plugins' code (:mod:`.installed`).
    """
    from .installed import environment_fingerprint

    return {
        "pipeline": sha256(name.encode("utf-8", "surrogateescape") + b"\0" + pipeline),
        "lock": sha256(lock) if lock is not None else "",
        "pipecompile": f"{__version__} {code_fingerprint()}",
        "environment": environment_fingerprint(),
    }


_INPUT_REASONS = (
    ("pipeline", "pipeline changed"),
    ("lock", "pins changed (pipecompile.lock)"),
    ("pipecompile", "pipecompile changed"),
    ("environment", "pipecompile's dependencies or target plugins changed"),
)


def stale_reason(old: dict[str, str] | None, new: dict[str, str]) -> str:
    """Which input changed since the last build, in words."""
    if old:
        for key, words in _INPUT_REASONS:
            if old.get(key) != new.get(key):
                return f"{words} (regenerate with pipecompile build)"
    return "out of date (regenerate with pipecompile build)"


def header_line(pipeline_file: str) -> str:
    return f"# {MARK} from {pipeline_file}. DO NOT EDIT.\n"


def with_header(body: str, pipeline_file: str, path: str) -> str:
    """Prefix a YAML or HCL body (both use ``#`` comments) with the do-not-edit header."""
    from shlex import quote  # a command to paste: 'ci $HOME.yaml' stays one word

    return (
        header_line(pipeline_file)
        + f"# Regenerate with: pipecompile build -f {quote(pipeline_file)}\n"
        f"# pipecompile {__version__} fingerprint {body_fingerprint(body, path)}\n" + body
    )


def split_header(text: str) -> tuple[str, str, str] | None:
    """(version, fingerprint, body) of a generated file, or None without our header."""
    lines = text.split("\n", 3)
    if len(lines) < 4 or MARK not in lines[0] or not lines[2].startswith("# pipecompile "):
        return None
    parts = lines[2].split()
    if len(parts) != 5 or parts[3] != "fingerprint":
        return None
    return parts[2], parts[4], lines[3]


def intact(text: str, path: str) -> bool:
    """Whether ``text`` is a file generated at ``path`` that nobody edited since (its
    fingerprint holds there)."""
    head = split_header(text)
    return head is not None and body_fingerprint(head[2], path, head[0]) == head[1]


def drift_reason(
    on_disk: str, path: str, stale: str = "out of date (regenerate with pipecompile build)"
) -> str:
    """Why a generated file on disk is not what the pipeline produces now."""
    head = split_header(on_disk)
    if head is None:
        return "hand edit (the pipecompile header is gone)"
    version, fp, body = head
    if body_fingerprint(body, path, version) != fp:
        return "hand edit"
    if version != __version__:
        return f"version skew (made by pipecompile {version}, this is {__version__})"
    return stale
