"""A GitHub Actions job runner for the rehearsal, in the order the real runner works.

For every step the runner evaluates the step's ``if`` and ``env`` first and only then
starts the step: actions/runner src/Runner.Worker/FileCommandManager.cs InitializeFiles
(called as the step starts, ActionRunner.cs) creates a fresh ``GITHUB_OUTPUT`` file per
step, deletes the previous step's, and only then sets ``github.output`` to the new path.
So ``${{ github.output }}`` in a step's ``env`` names the previous step's (deleted) file.
``run:`` steps run in bash (``bash -e {0}`` with ``set -o pipefail``: the default shell on
Linux, as documented for jobs.<id>.steps[*].shell) as the runner's user; ``uses:`` steps
are recorded, not run (the harness provides what they would install).

A cancelled run (docs, "Canceling a workflow"): the runner stops the running step, then
runs only the steps whose ``if`` calls ``always()`` or ``cancelled()``; ``job.status`` is
``cancelled`` from then on."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\)|,)"
    r"|(?P<num>\d+)|(?P<name>[A-Za-z_][\w-]*(?:\.(?:[\w-]+|\*))*))"
)


def _translate(expr: str) -> str:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot evaluate {expr!r} at {pos}")
        pos = m.end()
        if m["str"]:
            out.append(repr(m["str"][1:-1].replace("''", "'")))
        elif m["op"]:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
        elif m["num"]:
            out.append(m["num"])
        elif m["name"] in ("true", "false"):
            out.append(str(m["name"] == "true"))
        elif expr[pos:].lstrip().startswith("("):
            out.append(f"_fn[{m['name']!r}]")
        else:
            out.append(f"_get({m['name']!r})")
    return "".join(out)


def _format(template: str, *args: Any) -> str:
    """GitHub's format(): {N} is argument N, {{ and }} are braces (docs, "Expressions")."""
    values = ["" if a is None else str(a).lower() if isinstance(a, bool) else str(a)
              for a in args]  # fmt: skip
    return re.sub(
        r"\{\{|\}\}|\{(\d+)\}",
        lambda m: values[int(m[1])] if m[1] else m[0][0],
        template,
    )


@dataclass
class Job:
    """One job's run: its contexts and the steps' outcomes."""

    contexts: dict[str, Any]
    workdir: Path
    run_as: Callable[..., subprocess.CompletedProcess[str]]
    temp: Path
    status: str = "success"
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # the job's, once it ran
    name: str = ""

    def _get(self, path: str) -> Any:
        parts = path.split(".")
        if parts[0] == "steps":
            value: Any = self.steps
        else:
            value = self.contexts.get(parts[0], {})
        for p in parts[1:]:
            if p == "*":  # an object filter: the rest of the path applies to each value
                value = list(value.values()) if isinstance(value, dict) else []
            elif isinstance(value, list):
                value = [v.get(p, "") if isinstance(v, dict) else "" for v in value]
            else:
                value = value.get(p, "") if isinstance(value, dict) else ""
        return value

    def evaluate(self, expr: str) -> Any:
        status = self.status
        fns = {
            "always": lambda: True,
            "success": lambda: status == "success",
            "failure": lambda: status == "failure",
            "cancelled": lambda: status == "cancelled",
            "contains": lambda hay, needle: needle in hay,
            "toJSON": lambda value: json.dumps(value, indent=2),
            "format": _format,
        }
        return eval(_translate(expr), {"_get": self._get, "_fn": fns})

    def substitute(self, text: str) -> str:
        def one(m: re.Match[str]) -> str:
            value = self.evaluate(m.group(1))
            return (
                ""
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )

        return re.sub(r"\$\{\{(.*?)\}\}", one, text)

    def condition(self, step: dict[str, Any]) -> bool:
        cond = step.get("if")
        if cond is None:
            return self.status == "success"
        cond = cond.strip()
        if cond.startswith("${{"):
            cond = cond[3:].rstrip("}").strip()
        if not re.search(r"\b(always|failure|cancelled|success)\(", cond):
            cond = f"success() && ({cond})"
        return bool(self.evaluate(cond))

    def run(
        self, steps: list[dict[str, Any]], env: dict[str, str], cancel_at: str | None = None
    ) -> None:
        """Run ``steps``; ``cancel_at``: the run is cancelled as that step starts (its name
        after substitution), which it then does not run."""
        for step in steps:
            self.contexts["job"] = {"status": self.status}
            if cancel_at is not None and self.substitute(step.get("name", "")) == cancel_at:
                self.status = "cancelled"
                self.contexts["job"] = {"status": self.status}
                self.log.append(f"cancelled at {cancel_at}")
                cancel_at = None
                continue
            if not self.condition(step):
                continue
            # the step's env first (github.output is still the previous step's file) ...
            step_env = {k: self.substitute(str(v)) for k, v in step.get("env", {}).items()}
            # ... then its own files (FileCommandManager.InitializeFiles)
            output = self.temp / f"set_output_{uuid.uuid4()}"
            output.write_text("")
            import os

            os.chown(output, self.contexts["runner"]["uid"], self.contexts["runner"]["uid"])
            self.contexts["github"]["output"] = str(output)
            if "uses" in step:
                self.log.append(f"uses {step['uses']}")
                if "slack" in step["uses"]:
                    self.log.append("slack " + self.substitute(step["with"]["payload"]))
                continue
            script = "set -o pipefail\n" + self.substitute(step["run"])
            extra = {**env, **step_env, "GITHUB_OUTPUT": str(output)}
            if "working-directory" in step:
                extra["cwd"] = str(self.workdir / self.substitute(step["working-directory"]))
            res = self.run_as(script, **extra)
            self.log.append(f"{step['name']}: exit {res.returncode}\n{res.stdout}{res.stderr}")
            outputs = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
            )
            if "id" in step:
                self.steps[step["id"]] = {
                    "outputs": outputs,
                    "outcome": "success" if res.returncode == 0 else "failure",
                }
            if res.returncode != 0 and self.status == "success":
                self.status = "failure"
