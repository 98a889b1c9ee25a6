"""How check and diff describe a change: one line, a unified diff, a semantic summary."""

from __future__ import annotations

import difflib

from ..output.change import Change, Kind

_LABELS = {
    Kind.CREATE: "missing",
    Kind.UPDATE: "changed",
    Kind.DELETE: "stale",
    Kind.DEBRIS: "debris",
    Kind.CONFLICT: "conflict",
    Kind.KEPT: "stale (kept)",
    Kind.UNTRUSTED: "untrusted",
}


def describe(ch: Change) -> str:
    """``PC501 changed: ci/x.yml: hand edit``: the drift's code, as the machine formats give it."""
    return f"PC501 {_LABELS[ch.kind]}: {ch.path}: {ch.reason}"


def unified(ch: Change) -> str:
    old = (ch.old or "").splitlines(keepends=True)
    new = (ch.new or "").splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        f"a/{ch.path}" if ch.old is not None else "/dev/null",
        f"b/{ch.path}" if ch.new is not None else "/dev/null",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _load(text: str | None) -> list[object] | None:
    from ruamel.yaml import YAML

    if text is None:
        return None
    try:
        return list(YAML(typ="safe", pure=True).load_all(text))
    except Exception:
        return None


def semantic_summary(ch: Change, limit: int = 20) -> list[str]:
    """``jobs.deploy-production.environment: removed`` lines for YAML files."""
    if not str(ch.path).endswith((".yml", ".yaml")) or ch.old is None or ch.new is None:
        return []
    old, new = _load(ch.old), _load(ch.new)
    if old is None or new is None:
        return []
    from deepdiff import DeepDiff

    dd = DeepDiff(old, new, ignore_order=False, view="tree")
    out: list[str] = []
    labels = {
        "dictionary_item_added": "added",
        "dictionary_item_removed": "removed",
        "values_changed": "changed",
        "type_changes": "changed",
        "iterable_item_added": "added",
        "iterable_item_removed": "removed",
    }
    for kind, items in sorted(dd.items()):
        for item in items:
            path = item.path(output_format="list")
            if len(old) == 1 and path and path[0] == 0:
                path = path[1:]
            dotted = ".".join(str(p) for p in path)
            label = labels.get(kind, kind)
            if kind in ("values_changed", "type_changes"):
                out.append(f"{dotted}: {item.t1!r} -> {item.t2!r}")
            else:
                out.append(f"{dotted}: {label}")
    out.sort()
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more"]
    return out
