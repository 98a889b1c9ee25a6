"""A delivery workflow as GitHub runs it: each job that calls a reusable workflow of the
same repository (``uses: $/<path>``) replaced by the called workflow's jobs, with the
caller's ``with:`` as ``inputs`` (and the called workflow's defaults for the rest).

GitHub evaluates the called workflow's expressions with the caller's inputs (docs,
"Reusing workflows": inputs, secrets and outputs); here an expression that reads only
``inputs`` is evaluated (a step whose ``if`` is false for these inputs is left out, or
for the runner, ``runner=True``, kept with ``if: false``: it skips and records it),
anything else is kept with the inputs
written into it.  The called
workflow's first job takes the caller's id, ``needs`` and ``if``; its other jobs are
``<caller>/<job>``.  A job runs with its own workflow's ``defaults`` (the called
workflow's, not the caller's: docs, "Reusing workflows", and the job message's defaults,
actions/runner v2.336.0 JobExtension.cs): :func:`defaults_of` gives them."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .runner import _translate

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
INPUT = re.compile(r"\binputs\.([A-Za-z_][\w-]*)")


class _Unknown(Exception):
    """The expression reads something other than ``inputs``: known only at run time."""


def _constant(expr: str, inputs: dict[str, Any]) -> Any:
    def get(path: str) -> Any:
        head, _, rest = path.partition(".")
        if head != "inputs":
            raise _Unknown(path)
        value = inputs.get(rest, "")
        if isinstance(value, str) and "${{" in value:
            raise _Unknown(path)  # the caller passed an expression: known at run time
        return value

    def unknown(*_: Any) -> Any:
        raise _Unknown("function")

    fns = {"always": unknown, "success": unknown, "failure": unknown, "cancelled": unknown}
    fns["contains"] = lambda hay, needle: needle in hay
    return eval(_translate(expr), {"_get": get, "_fn": fns})  # the harness's evaluator


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    m = re.fullmatch(r"\$\{\{(.*)\}\}", text.strip())
    if m:  # the caller passed an expression: it goes in as one (a call or a name bare)
        inner = m.group(1).strip()
        return inner if re.fullmatch(r"[\w.*-]+(\(.*\))?", inner) else f"({inner})"
    return "'" + text.replace("'", "''") + "'"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _condition(expr: str, inputs: dict[str, Any]) -> str | bool:
    """An ``if``: True or False when only inputs decide it, else the expression with the
    inputs written in and its constant conjuncts dropped."""
    body = expr.strip()
    if body.startswith("${{"):
        body = body[3:].rstrip()[:-2].strip()
    try:
        return bool(_constant(body, inputs))
    except _Unknown:
        pass
    kept = []
    for part in body.split(" && "):
        try:
            if not _constant(part, inputs):
                return False
        except _Unknown:
            kept.append(INPUT.sub(lambda m: _literal(inputs.get(m.group(1), "")), part))
        except Exception:
            kept.append(part)
    return " && ".join(kept) if kept else True


def _substitute(value: Any, inputs: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, inputs) for v in value]
    if not isinstance(value, str) or "inputs." not in value:
        return value
    whole = EXPRESSION.fullmatch(value.strip())
    if whole and INPUT.fullmatch(whole.group(1).strip()):
        return inputs.get(INPUT.fullmatch(whole.group(1).strip()).group(1), "")  # type: ignore[union-attr]

    def one(m: re.Match[str]) -> str:
        try:
            return _text(_constant(m.group(1), inputs))
        except _Unknown:
            inner = INPUT.sub(lambda i: _literal(inputs.get(i.group(1), "")), m.group(1))
            return "${{" + inner + "}}"

    return EXPRESSION.sub(one, value)


def _job(job: dict[str, Any], inputs: dict[str, Any], runner: bool) -> dict[str, Any] | None:
    out = {k: _substitute(v, inputs) for k, v in job.items() if k not in ("steps", "if")}
    if "if" in job:
        cond = _condition(job["if"], inputs)
        if cond is False:
            return None
        if cond is not True:
            out["if"] = cond
    steps = []
    for step in job.get("steps", []):
        cond = _condition(step["if"], inputs) if "if" in step else True
        new = {k: _substitute(v, inputs) for k, v in step.items() if k != "if"}
        if cond is False and not runner:
            continue  # what runs: a step the runner skips for these inputs is left out
        if cond is False:
            # for the runner, kept: it evaluates its if, skips it and records it, outcome and
            # conclusion "skipped" in the steps context (CompleteStep(step,
            # TaskResult.Skipped), actions/runner v2.336.0 StepsRunner.cs); a later step
            # reading steps.<id>.outcome sees that, never ""
            new = {"if": "false", **new}
        elif cond is not True:
            new = {"if": cond, **new}
        steps.append(new)
    if "steps" in job:
        out["steps"] = steps
    return out


def expand(path: Path, *, runner: bool = False) -> dict[str, Any]:
    """The workflow at ``path`` with every local reusable workflow call expanded: the
    steps that run (a step false for the caller's inputs left out), or with ``runner``
    every step, such a step with ``if: false``, as the runner records it (skipped)."""
    folder = path.parent
    return expand_with(path.name, lambda name: (folder / name).read_text(), runner=runner)


def expand_rendered(files: dict[str, str], rel: str, *, runner: bool = False) -> dict[str, Any]:
    """The same for rendered files (``{path: text}``, the workflows side by side)."""
    folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    return expand_with(rel.rsplit("/", 1)[-1], lambda name: files[folder + name], runner=runner)


# the expanded workflow's side table: job id -> its workflow's ``defaults``
WORKFLOW_DEFAULTS = "x-workflow-defaults"


def expand_with(name: str, read: Callable[[str], str], *, runner: bool = False) -> dict[str, Any]:
    wf = yaml.safe_load(read(name))
    own: dict[str, Any] = {}
    jobs = _expand_jobs(wf["jobs"], read, own, runner)
    for job_id in jobs:
        own.setdefault(job_id, wf.get("defaults"))
    return {**wf, "jobs": jobs, WORKFLOW_DEFAULTS: own}


def defaults_of(wf: dict[str, Any], job_id: str) -> list[Any]:
    """The ``defaults`` a job of the expanded ``wf`` runs with, as the job message
    carries them: its workflow's, then its own (None where there are none)."""
    return [wf.get(WORKFLOW_DEFAULTS, {}).get(job_id), wf["jobs"][job_id].get("defaults")]


def _expand_jobs(
    jobs: dict[str, Any], read: Callable[[str], str], own: dict[str, Any], runner: bool
) -> dict[str, Any]:
    """``own`` gets each called job's workflow ``defaults`` (inputs written in)."""
    out: dict[str, Any] = {}
    for job_id, job in jobs.items():
        uses = job.get("uses", "")
        if not uses.startswith("$/"):
            out[job_id] = job
            continue
        called = yaml.safe_load(read(uses.rsplit("/", 1)[-1]))
        declared = called["on"]["workflow_call"].get("inputs") or {}
        inputs = {k: spec.get("default", "") for k, spec in declared.items()}
        inputs.update(job.get("with", {}))
        inner: dict[str, Any] = {}
        for name, sub in called["jobs"].items():
            expanded = _job(sub, inputs, runner)
            if expanded is not None:
                inner[name] = expanded
        nested: dict[str, Any] = {}
        inner = _expand_jobs(
            inner, read, nested, runner
        )  # a nested call (deploy.yml's DAST: zap.yml)
        for i, (name, sub) in enumerate(inner.items()):
            new_id = job_id if i == 0 else f"{job_id}/{name}"
            own[new_id] = (
                nested[name] if name in nested else _substitute(called.get("defaults"), inputs)
            )
            if i == 0:
                merged = {**sub, "needs": job.get("needs", []), "uses": uses}
                if "if" in job:
                    merged["if"] = job["if"]
                merged["with"] = job.get("with", {})
                out[job_id] = merged
            else:
                out[f"{job_id}/{name}"] = sub
    return out
