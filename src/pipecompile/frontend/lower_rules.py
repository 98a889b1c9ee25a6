"""Rules of lowering that stand on their own: paths stay inside the root, output
folders are folders pipecompile may own (see output/paths.py for the rule on
writes), strategies are complete and referenced by known names; the Terraform
backend; every user string by field path; a service's runtime and path isolation."""

from __future__ import annotations

import posixpath
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from .. import ir
from ..errors import Diagnostic, Path_, did_you_mean
from .defaults import BUILTIN_CANARY, DEFAULT_STEPS, ROLLOUT_MARGIN_MINUTES
from .loader import Document
from .model import Outputs, Pipeline
from .model import Service as ModelService
from .model_base import Runtime

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def duration_ms(text: str) -> int:
    """``"10m"`` -> 600000."""
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h)?", text)
    assert m, text  # the model's pattern guarantees the shape
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def rollout_minutes(strategy: ir.Strategy) -> int:
    """The rollout's pauses plus the margin of the defaults table."""
    paused_ms = sum(duration_ms(step.pause) for step in strategy.steps if step.pause)
    paused_ms += strategy.promotion_wait_seconds * 1000  # a person's promotion
    return ROLLOUT_MARGIN_MINUTES + -(-paused_ms // 60000)


class TargetLayout(Protocol):
    """What lowering may know of the targets (the registry's :class:`Layout`, passed in
    by :mod:`pipecompile.compiler`): lowering imports no target and names none."""

    def defaults(self, delivery: str | None = None) -> dict[str, str]:
        """Every target and its default folder, in registry order (given a delivery,
        only the built-in targets that delivery uses)."""
        ...

    def deliverer(self, delivery: str) -> str | None:
        """The target that generates this delivery's pipelines."""
        ...

    def followers(self) -> dict[str, str]:
        """{target: the target whose output turns it on by default}."""
        ...

    def facts(self, outputs: dict[str, str]) -> dict[str, str]:
        """The facts the targets publish for each other (ir.FACTS), given the folders."""
        ...


# Argo CD fails a sync that would take over a resource another Application applied
# (Argo CD v3.5.0, controller/sync.go: "FailOnSharedResource=true" and
# hasSharedResourceCondition): a rewritten folder cannot adopt another environment's
# objects. On unless the pipeline sets it itself.
FAIL_ON_SHARED = "FailOnSharedResource=true"


def sync_options(given: list[str]) -> tuple[str, ...]:
    """gitops.sync.options, plus FailOnSharedResource=true unless it names that option."""
    if any(o.startswith("FailOnSharedResource=") for o in given):
        return tuple(given)
    return (*given, FAIL_ON_SHARED)


class Rules:
    """Mixed into lowering: needs ``m``, ``err``, ``errors``, ``root`` and a ``_kinds`` cache."""

    m: Pipeline
    doc: Document
    root: Path | None
    errors: list[Diagnostic]
    _kinds: dict[str, str]  # path prefix -> link | other | missing
    # every path the pipeline names, and where it leads when a link is on the way ('' when
    # none is): the manifest records them, and check's fast path looks at them again
    sources: dict[str, str]
    layout: TargetLayout  # the registry's, passed in (lowering imports no target)

    def err(self, code: str, path: Path_, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def warn(self, code: str, path: Path_, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def shared_gitops(self, result: ir.IR) -> None:
        """An approval environment whose GitOps repository another environment's deployer
        writes: its approval can be bypassed there (issue 28, item 2)."""
        for env in result.environments:
            if not env.approval or env.gitops_repository is None:
                continue
            unapproved, approved = result.gitops_sharers(env)
            if not unapproved and not approved:
                continue
            own = self.m.environments[env.name].gitops is not None
            where: Path_ = (
                ("environments", env.name, "gitops", "repository")
                if own
                else ("gitops", "repository")
            )
            who = unapproved or approved
            how = (
                "without an approval"
                if unapproved
                else f"with {', '.join(approved)}'s approval only"
            )
            self.warn(
                "PC208",
                where,
                f"{env.name} shares its GitOps repository with {', '.join(who)}: a deploy key "
                f"or token cannot be limited to a folder, so {'their' if len(who) > 1 else 'its'} "
                f"deploy credential can rewrite {env.name}'s folder (chart, values and "
                f"image file) and Argo CD syncs it {how}: that changes {env.name}'s "
                "workloads, not only their images (command, service account, environment, "
                "volumes, probes, the canary's analysis), or rolls them back to an older "
                f"digest signed for {env.name}; the admission policy refuses only images not "
                f"signed for {env.name}, its AppProject only kinds the chart never renders; "
                f"give {env.name} a repository of its own: "
                f"environments.{env.name}.gitops.repository",
            )

    def outputs(self) -> list[tuple[str, str]]:
        """(target, folder) for every enabled target, in registry order."""
        given = self.m.outputs
        defaults = self.layout.defaults()  # every target, in registry order
        folders: dict[str, Any] = (
            given.model_dump(by_alias=True, exclude_none=True)
            if given
            else self.layout.defaults(self.m.delivery)  # the targets this delivery uses
        )
        where_of: dict[str, Path_] = {t: ("outputs", t) for t in folders}
        plugins = folders.pop("plugins", None) or {}
        for name, folder in plugins.items():  # installed targets: named under plugins:
            if name not in defaults or name in folders:
                builtin = {f.alias or n for n, f in Outputs.model_fields.items()}
                installed = [t for t in defaults if t not in builtin]
                self.err(
                    "PC201",
                    ("outputs", "plugins", name),
                    f"no installed target '{name}'{did_you_mean(name, installed)}; installed: "
                    + (", ".join(installed) or "none (pipecompile.targets entry points)"),
                    key=True,
                )
                continue
            folders[name], where_of[name] = folder, ("outputs", "plugins", name)
        if (
            given is not None
            and plugins
            and not any(folders.get(t) not in (None, False) for t in defaults if t not in plugins)
        ):  # naming outputs: turns the delivery's defaults off, the built-ins with them
            keep = ", ".join(f"{t}: {f}" for t, f in self.layout.defaults(self.m.delivery).items())
            self.warn(
                "PC210",
                ("outputs",),
                f"outputs: names only plugins ({', '.join(plugins)}), so every built-in "
                "output is off and build removes the files they generated; to keep them, "
                f"name them beside plugins: (the defaults: {keep})",
                key=True,
            )
        outputs: list[tuple[str, str]] = []
        implicit: dict[str, str] = {}  # follower -> the output it is on with
        for follower, leader in self.layout.followers().items():
            if folders.get(follower) is False:
                del folders[follower]  # outputs.local: false turns local development off
            elif follower not in folders and leader in folders:
                folders[follower] = defaults[follower]  # on with the output it follows
                where_of[follower] = where_of.get(leader, ("outputs",))  # its errors: there
                implicit[follower] = leader
        for target in defaults:
            if target in folders:
                where = where_of.get(target, ("outputs",)) if given is not None else ("outputs",)
                folder = self.output_folder(where, folders[target])
                if folder is not None:
                    outputs.append((target, folder))
        from ..output.paths import overlaps

        for target, message in overlaps(outputs):
            if target in implicit:  # located at the output it follows: name it
                message = (
                    f"the {target} output (on with {implicit[target]}; set outputs.{target} "
                    f"to move it, or to false): {message}"
                )
            self.err("PC203", where_of[target] if given is not None else ("outputs",), message)
        return outputs

    def rel_path(self, path: Path_, value: str, what: str) -> str:
        """Normalise a path inside the root; report one that escapes it."""
        if value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value) or "\\" in value:
            self.err(
                "PC203",
                path,
                f"'{value}' must be a relative {what} using '/' inside the folder "
                "holding the pipeline file",
            )
            return "."
        norm = posixpath.normpath(value)
        if norm == ".." or norm.startswith("../"):
            self.err(
                "PC203", path, f"'{value}' points outside the folder holding the pipeline file"
            )
            return "."
        if self.root is not None and norm != "." and self._through_link(norm):
            real_root = self.root.resolve()
            target = (self.root / norm).resolve()
            if target != real_root and real_root not in target.parents:
                self.err(
                    "PC203",
                    path,
                    f"'{value}' resolves outside the folder holding the pipeline "
                    f"file (through a symbolic link, to {target})",
                )
                return "."
            from ..output.paths import leads_to

            self.sources[norm] = leads_to(str(self.root), norm)
        elif self.root is not None and norm != ".":
            self.sources.setdefault(norm, "")
        return norm

    def output_folder(self, path: Path_, value: str) -> str | None:
        """A folder pipecompile may own: inside the root, not the root, not in .git or
        .pipecompile, and reached without a symbolic link (writes never follow one)."""
        from ..output.paths import folder_problem

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
            self.err("PC203", path, f"'{value}' {problem}")
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
        from ..output.paths import through_link

        assert self.root is not None
        return through_link(str(self.root), norm, self._kinds)

    def strategies(self) -> dict[str, ir.Strategy]:
        out: dict[str, ir.Strategy] = {
            "rolling": ir.Strategy("rolling", "rolling"),
            "canary": ir.Strategy("canary", "canary", steps=BUILTIN_CANARY),
            "blue-green": ir.Strategy("blue-green", "blue-green", auto_promote=False),
        }
        for name, s in self.m.strategies.items():
            p: Path_ = ("strategies", name)
            if name == "rolling":
                self.err("PC204", p, "'rolling' is built in and takes no parameters", key=True)
                continue
            kind = s.type or (name if name in ("canary", "blue-green") else None)
            if kind is None:
                self.err(
                    "PC204",
                    p,
                    f"custom strategy '{name}' needs 'type: canary' or 'type: blue-green'",
                    key=True,
                )
                continue
            if name in ("canary", "blue-green") and s.type and s.type != name:
                self.err("PC204", (*p, "type"), f"strategy '{name}' cannot have type '{s.type}'")
                continue
            if kind == "canary":
                for field in (
                    "auto_promote",
                    "preview_replicas",
                    "scale_down_delay",
                    "promotion_wait",
                ):
                    if getattr(s, field) is not None:
                        self.err(
                            "PC204",
                            (*p, field),
                            f"'{field}' is a blue-green setting; a canary takes 'steps'",
                            key=True,
                        )
                if not s.steps:
                    self.err(
                        "PC204", p, "a canary strategy needs 'steps' (a list of {weight, pause})"
                    )
                    continue
                prev = 0
                for i, step in enumerate(s.steps):
                    if step.weight < prev:
                        self.err(
                            "PC204",
                            (*p, "steps", i, "weight"),
                            f"canary weight {step.weight} is below the previous step's "
                            f"{prev}; a canary never goes backwards",
                        )
                    prev = max(prev, step.weight)
                steps = tuple(ir.CanaryStep(st.weight, st.pause) for st in s.steps)
                out[name] = ir.Strategy(name, "canary", steps=steps)
            else:
                if s.steps is not None:
                    self.err(
                        "PC204",
                        (*p, "steps"),
                        "'steps' is a canary setting; a blue-green "
                        "strategy takes auto_promote, preview_replicas, "
                        "scale_down_delay",
                        key=True,
                    )
                strategy = ir.Strategy(name, "blue-green", auto_promote=bool(s.auto_promote))
                # unset values keep the IR's defaults (one table: ir.Strategy)
                if s.preview_replicas is not None:
                    strategy = replace(strategy, preview_replicas=s.preview_replicas)
                if s.scale_down_delay:
                    delay = duration_ms(s.scale_down_delay) // 1000
                    strategy = replace(strategy, scale_down_delay_seconds=delay)
                if s.promotion_wait and s.auto_promote:
                    self.err(
                        "PC204",
                        (*p, "promotion_wait"),
                        "'promotion_wait' is a blue-green setting for a person's promotion; "
                        "this strategy promotes itself (auto_promote: true)",
                    )
                elif s.promotion_wait:
                    wait = duration_ms(s.promotion_wait) // 1000
                    strategy = replace(strategy, promotion_wait_seconds=wait)
                out[name] = strategy
        return out

    def strategy_ref(self, path: Path_, name: str, known: dict[str, ir.Strategy]) -> ir.Strategy:
        if name in known:
            return known[name]
        self.err(
            "PC201",
            path,
            f"unknown strategy '{name}'{did_you_mean(name, known)}; "
            f"known: {', '.join(sorted(known))}",
        )
        return known["rolling"]

    # -- the whole pipeline ------------------------------------------------------------------

    def backend(self) -> ir.Backend:
        """Terraform's state backend; S3 settings only with ``type: s3``."""
        be = self.m.terraform.backend
        where = ("terraform", "backend")
        if be.type == "local":
            for key in ("bucket", "key", "region", "dynamodb_table"):
                if getattr(be, key) is not None:
                    self.err("PC211", (*where, key), f"'{key}' applies only to 'type: s3'")
            return ir.Backend("local")
        if be.bucket is None:
            self.err("PC211", (*where, "type"), "an S3 backend needs 'bucket' (the state bucket)")
        if be.lock == "dynamodb" and be.dynamodb_table is None:
            self.err("PC211", (*where, "lock"), "'lock: dynamodb' needs 'dynamodb_table'")
        if be.lock == "lockfile" and be.dynamodb_table is not None:
            self.err(
                "PC211",
                (*where, "dynamodb_table"),
                "a DynamoDB lock table applies only to 'lock: dynamodb'",
            )
        return ir.Backend(
            "s3",
            bucket=be.bucket,
            key=be.key or f"{self.m.project}/cicd.tfstate",
            region=be.region or self.m.aws.region,
            lock_table=be.dynamodb_table if be.lock == "dynamodb" else None,
        )

    def texts(self) -> tuple[tuple[Path_, str], ...]:
        """Every string the user wrote, with its field path, for the targets' rules."""
        out: list[tuple[Path_, str]] = []

        def walk(value: object, path: Path_) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, (*path, k))
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(v, (*path, i))
            elif isinstance(value, str):
                out.append((path, value))

        walk(self.doc.data, ())
        return tuple(out)


def nested_folders(svc: ir.Service, services: list[ir.Service]) -> tuple[str, ...]:
    """Other services' folders inside this one's (all of them for a service at '.').

    Path isolation: a change only inside another service's folder never starts this one.
    """
    inside = [
        other.path
        for other in services
        if other.path != svc.path and (svc.path == "." or other.path.startswith(svc.path + "/"))
    ]
    return tuple(f"{path}/**" for path in sorted(set(inside)))


def runtime_of(model: Runtime) -> ir.Runtime:
    language = next(k for k in ("node", "python", "java", "go") if getattr(model, k))
    return ir.Runtime(language, getattr(model, language))  # type: ignore[arg-type]


def service_ci(
    svc: ModelService, ci: tuple[ir.Runtime, tuple[ir.Step, ...]]
) -> tuple[ir.Runtime, tuple[ir.Step, ...]]:
    """A service's runtime and CI steps (LANGUAGE.md, additions in 1.1): its own steps;
    else the pipeline's steps when it keeps the pipeline's runtime; else the default
    steps of its own runtime."""
    runtime = runtime_of(svc.runtime) if svc.runtime else ci[0]
    if svc.steps is not None:
        return runtime, tuple(ir.Step(step.name, step.run) for step in svc.steps)
    if runtime == ci[0]:
        return runtime, ci[1]
    return runtime, tuple(ir.Step(n, r) for n, r in DEFAULT_STEPS[runtime.language])


def short(name: str, limit: int) -> str:
    """``name`` if it fits, else a prefix and a stable hash that keep it unique."""
    if len(name) <= limit:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"
