"""The registry: every target, in the order outputs are listed and rendered, and what
runs over all enabled targets (their checks, their renders, their defaults)."""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from ..errors import Path_
from ..ir import IR
from . import Finding, Target, data


def registry() -> dict[str, Target]:
    """Every target, in the order outputs are listed and rendered: the built-in ones,
    then those installed packages add (:func:`installed`)."""
    return {**builtin(), **installed()}


class Defaults:
    """A target module with the Protocol's optional members filled in (``delivery``:
    None, ``choices``: none); every other attribute is the module's, looked up on use."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.delivery: str | None = getattr(module, "delivery", None)
        self.delivers: str | None = getattr(module, "delivers", None)
        self.follows: str | None = getattr(module, "follows", None)
        self._choices = getattr(module, "choices", None)
        self._publishes = getattr(module, "publishes", None)
        self._origin = getattr(module, "origin", None)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module, attr)

    def publishes(self, folder: str, enabled: bool) -> dict[str, str]:
        return dict(self._publishes(folder, enabled)) if self._publishes is not None else {}

    def origin(self, job: str | None, step: str | None) -> Path_ | None:
        return self._origin(job, step) if self._origin is not None else None

    def choices(self, ir: IR) -> list[Finding]:
        return list(self._choices(ir)) if self._choices is not None else []


def _target(module: Any) -> Target:
    return cast(Target, Defaults(module))


@cache
def builtin() -> dict[str, Target]:
    """The targets that ship with pipecompile."""
    from . import argocd, codebuild, github_actions, helm, local, terraform

    return {m.name: _target(m) for m in (github_actions, codebuild, terraform, argocd, helm, local)}


ENTRY_POINTS = "pipecompile.targets"
_MEMBERS = ("name", "default_folder", "cost", "render", "check", "describe")


@cache
def installed() -> dict[str, Target]:
    """Targets other packages add through the ``pipecompile.targets`` entry point group,
    in name order; each is a module (or object) on the same :class:`Target` Protocol,
    rendered only when ``outputs.plugins`` names it.  Read once per process."""
    from importlib.metadata import entry_points

    from ..errors import UsageError

    found: dict[str, Target] = {}
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda ep: ep.name):
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin is the user's environment, not a bug here
            raise UsageError(
                f"target plugin '{ep.name}' ({ep.value}) fails to load: {exc}"
            ) from None
        missing = [m for m in _MEMBERS if not hasattr(target, m)]
        if missing or getattr(target, "name", None) != ep.name:
            problem = f"lacks {', '.join(missing)}" if missing else f"is named {target.name!r}"
            raise UsageError(
                f"target plugin '{ep.name}' ({ep.value}) {problem}: a target needs "
                f"{', '.join(_MEMBERS)} (pipecompile.targets.Target), named as its entry point"
            )
        if ep.name in builtin():
            raise UsageError(f"target plugin '{ep.name}' ({ep.value}) shadows a built-in target")
        found[ep.name] = _target(target)
    return found


def default_outputs(delivery: str | None = None) -> dict[str, str]:
    """Every target and its default folder, in registry order; given a delivery, only the
    built-in targets that delivery uses (a target may name the one it serves:
    ``delivery``). Installed targets are never on by default."""
    if delivery is None:
        return {name: target.default_folder for name, target in registry().items()}
    return {
        name: target.default_folder
        for name, target in builtin().items()
        if target.delivery in (None, delivery)
    }


class Layout:
    """What lowering may know of the targets, and no more (the front end imports no
    target: :mod:`pipecompile.compiler` passes this in).  Satisfies
    :class:`pipecompile.frontend.lower_rules.TargetLayout`."""

    def defaults(self, delivery: str | None = None) -> dict[str, str]:
        return default_outputs(delivery)

    def deliverer(self, delivery: str) -> str | None:
        """The target that generates this delivery's pipelines."""
        return next((n for n, t in registry().items() if t.delivers == delivery), None)

    def followers(self) -> dict[str, str]:
        """{target: the target whose output turns it on by default}."""
        return {n: t.follows for n, t in registry().items() if t.follows}

    def facts(self, outputs: dict[str, str]) -> dict[str, str]:
        """Every target's published facts, given the enabled targets' folders."""
        out: dict[str, str] = {}
        for name, target in registry().items():
            folder = outputs.get(name, target.default_folder)
            out.update(target.publishes(folder, name in outputs))
        return out


def default_actions() -> dict[str, dict[str, str]]:
    """The actions generated workflows use, pinned as shipped (pipecompile.lock overrides)."""
    table: dict[str, Any] = data("github_actions", "action-pins.json")["actions"]
    return {name: {"sha": v["sha"], "version": v["version"]} for name, v in table.items()}


def check_all(ir: IR) -> list[tuple[Finding, tuple[str, ...]]]:
    """Every enabled target's findings, the same finding of several targets merged."""
    targets = registry()
    merged: dict[Finding, list[str]] = {}
    for name, _ in ir.outputs:
        for finding in targets[name].check(ir):
            merged.setdefault(finding, []).append(name)
    return [(f, tuple(names)) for f, names in merged.items()]


def render_all(ir: IR, only: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """Render every enabled target: {path relative to the root: (target, body)}."""
    jobs = [(name, folder) for name, folder in ir.outputs if not only or name in only]
    targets = registry()
    out: dict[str, tuple[str, str]] = {}
    for name, folder in jobs:
        files = targets[name].render(ir)
        prefix = folder.rstrip("/") + "/" if folder not in ("", ".") else ""
        for rel, body in files.items():
            path = prefix + rel
            if path in out:
                raise RuntimeError(f"{path} is rendered by both {out[path][0]} and {name}")
            out[path] = (name, body)
    return out
