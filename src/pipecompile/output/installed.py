"""What the outputs depend on besides the pipeline, the lock and pipecompile's own code:
the installed distributions pipecompile runs with.

* the versions of the distributions pipecompile requires (ruamel.yaml's emitter,
  pydantic's validation, ...), as installed now;
* every installed target plugin (a ``pipecompile.targets`` entry point): its
  distribution's version and a hash of its code, since an editable install changes
  code without changing its version.

Read from the ``.dist-info`` folders on ``sys.path`` directly, as
``importlib.metadata`` finds them (the first on the path wins): importing
``importlib.metadata`` alone costs about 50 ms, more than the whole no-change
check.  Only the headers of pipecompile's own METADATA and each distribution's
``entry_points.txt`` are read (about 3 ms for a hundred distributions).
"""

from __future__ import annotations

import hashlib
import os
import sys

ENTRY_POINTS = "pipecompile.targets"  # also targets.registry.ENTRY_POINTS
_CODE = (".py", ".json", ".yaml", ".tpl", ".sh", ".jq", ".star")
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def normalise(name: str) -> str:
    """A distribution's name as PEP 503 compares them ('-', '_' and '.' alike)."""
    return "-".join(p for p in name.lower().replace("_", "-").replace(".", "-").split("-") if p)


def _text(path: str, limit: int = 1 << 16) -> str:
    try:
        fd = os.open(path, _READ)
    except OSError:
        return ""
    try:
        return os.read(fd, limit).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def distributions() -> dict[str, tuple[str, str]]:
    """Every ``.dist-info`` folder on ``sys.path``: normalised name -> (folder, version)."""
    found: dict[str, tuple[str, str]] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dist, _, version = name[: -len(".dist-info")].rpartition("-")
            if dist:
                found.setdefault(normalise(dist), (os.path.join(entry or ".", name), version))
    return found


def _requires(folder: str) -> list[str]:
    """The distributions a METADATA requires at run time (no extras), names normalised.

    Only its headers are read (they end at the first blank line; the long description,
    pipecompile's README, follows)."""
    path, size, head = os.path.join(folder, "METADATA"), 8192, ""
    while size <= 1 << 22:
        head = _text(path, size)
        if "\n\n" in head or len(head) < size:
            break
        size *= 4
    out = []
    for line in head.split("\n\n", 1)[0].splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            spec = line[len("Requires-Dist:") :].strip()
            for stop in "<>=!~;[( ":
                spec = spec.split(stop, 1)[0]
            if spec:
                out.append(normalise(spec))
    return out


def _plugins(folder: str) -> list[str]:
    """The ``module:attr`` values a distribution declares as target plugins."""
    text = _text(os.path.join(folder, "entry_points.txt"))
    if f"[{ENTRY_POINTS}]" not in text:
        return []
    section = text.split(f"[{ENTRY_POINTS}]", 1)[1].split("\n[", 1)[0]
    return [
        line.split("=", 1)[1].strip()
        for line in section.splitlines()
        if "=" in line and not line.lstrip().startswith(("#", ";"))
    ]


def _bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def code_hash(folders: list[str], files: tuple[str, ...] = ()) -> str:
    """sha256 over the code and data files below ``folders`` (and the single ``files``),
    each named relative to where it was found: the same code hashes the same wherever
    it is installed."""
    found = [(os.path.basename(f), f) for f in files]
    for base in folders:
        for folder, dirs, names in os.walk(base):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found += [
                (os.path.relpath(os.path.join(folder, n), base), os.path.join(folder, n))
                for n in names
                if n.endswith(_CODE)
            ]
    h = hashlib.sha256()
    for rel, path in sorted(found):
        h.update(rel.replace(os.sep, "/").encode("utf-8", "surrogateescape") + b"\0")
        h.update(_bytes(path))
    return h.hexdigest()


def _module_code(value: str) -> str:
    """A hash of the code of the top-level package or module an entry point names (found
    as an import would find it, without importing it)."""
    import importlib.util

    top = value.split(":", 1)[0].strip().split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "missing"
    if spec.submodule_search_locations:
        return code_hash(list(spec.submodule_search_locations))
    return code_hash([], (spec.origin,) if spec.origin else ())


def environment() -> str:
    """One line per distribution the outputs depend on: ``name==version`` for what
    pipecompile requires, ``plugin name==version <code hash>`` for each target plugin."""
    dists = distributions()
    own = dists.get("pipecompile")
    lines = []
    for name in sorted(set(_requires(own[0]) if own else ())):
        lines.append(f"{name}=={dists[name][1] if name in dists else '-'}")
    for name, (folder, version) in sorted(dists.items()):
        for value in _plugins(folder):
            lines.append(f"plugin {name}=={version} {value} {_module_code(value)}")
    return "\n".join(lines)


def environment_fingerprint() -> str:
    return hashlib.sha256(environment().encode("utf-8", "surrogateescape")).hexdigest()
