"""A GitHub Actions job runner for the rehearsal, in the order the real runner works.

For every step the runner evaluates the step's ``if`` and ``env`` first and only then
starts the step: actions/runner src/Runner.Worker/FileCommandManager.cs InitializeFiles
(called as the step starts, ActionRunner.cs) creates a fresh ``GITHUB_OUTPUT`` file per
step, deletes the previous step's, and only then sets ``github.output`` to the new path.
So ``${{ github.output }}`` in a step's ``env`` names the previous step's (deleted) file.
``run:`` steps run as the runner's user the way actions/runner v2.336.0 starts them
(src/Runner.Worker/Handlers/ScriptHandler.cs RunAsync): the script is written as is to
``<guid>.sh`` in the runner's temp folder and the shell is started with its path.

The job's ``defaults.run`` (actions/runner v2.336.0 src/Runner.Worker/JobExtension.cs,
"Evaluate the job defaults"): the job message's defaults are the workflow's ``defaults``
then the job's; each that has ``run`` replaces ``JobDefaults["run"]`` as a whole (a new
dictionary: a job's ``defaults.run`` with only ``shell`` drops the workflow's
``working-directory``), its values evaluated with the job's contexts, empty ones left out.
A ``run:`` step's own ``shell``/``working-directory`` wins over them, a default applies
only where the step has none (src/Runner.Worker/Handlers/ScriptHandler.cs RunAsync:
``Inputs.TryGetValue("workingDirectory")``, else ``JobDefaults["run"]["working-directory"]``;
likewise ``shell``); the folder is ``Path.Combine(github.workspace, it)`` (an absolute one
stands alone), where ProcessInvoker.cs starts the shell (StartInfo.WorkingDirectory: a
folder that does not exist fails the step, the process cannot start there).  The shell
is the step's ``shell:``, else ``defaults.run.shell``; with none, ``bash -e {0}``
(ScriptHandler.cs: shellCommand "sh", commandPath bash; no pipefail);
``shell: bash`` is ``bash --noprofile --norc -e -o pipefail {0}``, ``shell: sh`` is
``sh -e {0}`` (ScriptHandlerHelpers.cs _defaultArguments); any other value is a command
with a ``{0}`` (ParseShellOptionString). ``uses:`` steps are recorded, not run (the harness
provides what they would install).

A cancelled run (docs, "Canceling a workflow"): the runner signals the running step, then
runs only the steps whose ``if`` calls ``always()`` or ``cancelled()``; ``job.status`` is
``cancelled`` from then on. The signals are actions/runner v2.336.0's
(src/Runner.Sdk/ProcessInvoker.cs CancelAndKillProcessTree): SIGINT to the step's shell
alone (``kill(_proc.Id, SIGINT)``: its children are not signalled, so bash decides, as it
does on GitHub, whether to stop, run a trap or carry on), SIGTERM if it has not exited
7.5 s later (_sigintTimeout), the whole tree killed 2.5 s after that (_sigtermTimeout);
the step's result is Canceled whatever its exit code (ProcessInvoker.cs
ThrowIfCancellationRequested once the process exited; StepsRunner.cs sets
TaskResult.Canceled). The rehearsal cancels at a point, not at a time: :meth:`Job.cancel`
is called by a stub the step talks to (the Argo CD API during the health wait) while the
step's request waits for its answer, so the signal always lands at the same place."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .world import role_credentials

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


# ScriptHandlerHelpers.cs _defaultArguments (actions/runner v2.336.0)
_SHELL_ARGS = {
    "bash": "--noprofile --norc -e -o pipefail {0}",
    "sh": "-e {0}",
    "python": "{0}",
}


def shell_command(shell: str | None, script: str) -> list[str]:
    """The command line the runner starts for a ``run:`` step whose script file is
    ``script`` (ScriptHandler.cs RunAsync, actions/runner v2.336.0)."""
    if not shell:  # no shell anywhere: "sh"'s arguments, run by bash when there is one
        return ["bash", "-e", script]
    command, _, args = shell.partition(" ")
    args = args.strip() or _SHELL_ARGS.get(command, "")
    if "{0}" not in args:
        raise ValueError(
            "Invalid shell option. Shell must be a valid built-in (bash, sh, cmd, powershell,"
            " pwsh) or a format string containing '{0}'"
        )
    # the runner formats the argument string, then the process starts from it
    return [command, *shlex.split(args.replace("{0}", shlex.quote(script)))]


def run_defaults(tokens: list[Any], evaluate: Callable[[str], str]) -> dict[str, str]:
    """The job's ``defaults.run`` from the workflow's then the job's ``defaults``
    (``tokens``, None where there are none), as JobExtension.cs evaluates them
    (actions/runner v2.336.0): the last that has ``run`` is the whole of it."""
    run: dict[str, str] = {}
    for token in tokens:
        if isinstance(token, dict) and "run" in token:
            run = {}  # context.Global.JobDefaults["run"] = new Dictionary<...>
            for key, value in (token["run"] or {}).items():
                text = evaluate(str(value))
                if text:  # if (!string.IsNullOrEmpty(pair.Value))
                    run[key] = text
    return run


# ProcessInvoker.cs (actions/runner v2.336.0): _sigintTimeout, _sigtermTimeout
SIGINT_TIMEOUT = 7.5
SIGTERM_TIMEOUT = 2.5


def _shell_pid(pid: int) -> int:
    """The step's shell: the process started, or the child of the coreutils ``timeout``
    the harness may start it under (setpriv execs the shell in place)."""
    if Path(f"/proc/{pid}/comm").read_text().strip() == "timeout":
        return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
    return pid


@dataclass
class _Running:
    """The step a cancel is armed for, while it runs."""

    proc: subprocess.Popen[str] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    escalation: threading.Thread | None = None
    requested: bool = False  # a cancel that came before the process was known

    def attach(self, proc: subprocess.Popen[str]) -> None:
        """The step's process started (Popen returned): deliver a cancel that came first.
        The step can reach its cancel point before Popen's caller runs again, so a cancel
        then is not lost (it was, under load: the step ran to its end uncancelled)."""
        with self.lock:
            self.proc = proc
            if self.requested:
                self._signal()

    def cancel(self) -> bool:
        with self.lock:
            if self.escalation is not None or self.done.is_set() or self.requested:
                return False
            if self.proc is None:
                self.requested = True
                return True
            self._signal()
            return True

    def _signal(self) -> None:
        assert self.proc is not None
        shell = _shell_pid(self.proc.pid)
        os.kill(shell, signal.SIGINT)
        self.escalation = threading.Thread(
            target=self._escalate, args=(self.proc, shell), daemon=True
        )
        self.escalation.start()

    def _escalate(self, proc: subprocess.Popen[str], shell: int) -> None:
        # (the step may end between a wait's timeout and the signal: nothing to signal)
        if self.done.wait(SIGINT_TIMEOUT):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(shell, signal.SIGTERM)
        if self.done.wait(SIGTERM_TIMEOUT):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # KillProcessTree

    def finish(self) -> bool:
        """The step's process exited: whether it was cancelled."""
        self.done.set()
        with self.lock:
            escalation = self.escalation
        if escalation is not None:
            escalation.join()
        return escalation is not None


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
    # the workflow's and the job's ``defaults`` (see :func:`run_defaults`)
    defaults: list[Any] = field(default_factory=list)
    _armed: _Running | None = field(default=None, repr=False)

    def cancel(self) -> None:
        """Cancel the run now, if the step it is to be cancelled in runs (any thread)."""
        armed = self._armed
        if armed is not None and armed.cancel():
            self.log.append("cancel: SIGINT to the step's shell")

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
        """Run ``steps``; ``cancel_at``: the step (its name after substitution) the run is
        cancelled in, once it runs and something calls :meth:`cancel`; a step that ends
        before that is a rehearsal that did not reach its cancel (an error)."""
        # JobExtension.cs evaluates the defaults once, as the job starts
        self.contexts["job"] = {"status": self.status}
        defaults = run_defaults(self.defaults, self.substitute)
        for step in steps:
            self.contexts["job"] = {"status": self.status}
            if not self.condition(step):
                self._complete(step, "skipped")  # CompleteStep(step, TaskResult.Skipped)
                continue
            armed = cancel_at is not None and self.substitute(step.get("name", "")) == cancel_at
            # the step's env first (github.output is still the previous step's file) ...
            step_env = {k: self.substitute(str(v)) for k, v in step.get("env", {}).items()}
            # ... then its own files (FileCommandManager.InitializeFiles)
            output = self.temp / f"set_output_{uuid.uuid4()}"
            output.write_text("")
            os.chown(output, self.contexts["runner"]["uid"], self.contexts["runner"]["uid"])
            self.contexts["github"]["output"] = str(output)
            if "uses" in step:
                self.log.append(f"uses {step['uses']}")
                if "aws-actions/configure-aws-credentials" in step["uses"]:
                    # the action exports the role session's credentials and the region
                    # to every later step of the job (aws-actions/configure-aws-credentials
                    # README, "Usage": AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                    # AWS_SESSION_TOKEN, AWS_REGION, AWS_DEFAULT_REGION); the rehearsal's
                    # access key names the role (world.role_credentials)
                    role = self.substitute(str(step["with"].get("role-to-assume", "")))
                    # (the region stays the harness's: moto holds the resources there)
                    env = {**env, **role_credentials(role.rsplit("/", 1)[-1])}
                if "slack" in step["uses"]:
                    self.log.append("slack " + self.substitute(step["with"]["payload"]))
                self._complete(step, "success")
                continue
            # ScriptHandler.cs: the script, as is, in <guid>.sh in the runner's temp folder
            script = self.temp / f"{uuid.uuid4()}.sh"
            script.write_text(self.substitute(step["run"]))
            os.chown(script, self.contexts["runner"]["uid"], self.contexts["runner"]["uid"])
            extra = {**env, **step_env, "GITHUB_OUTPUT": str(output)}
            # ScriptHandler.cs: the step's working-directory, else the job's default
            folder = (
                self.substitute(str(step["working-directory"]))
                if "working-directory" in step
                else defaults.get("working-directory", "")
            )
            cwd = self.workdir / folder  # Path.Combine(workspace, it)
            extra["cwd"] = str(cwd)
            shell = self.substitute(str(step["shell"])) if step.get("shell") else None
            shell = shell or defaults.get("shell")
            if not cwd.is_dir():
                # Process.Start with a WorkingDirectory that does not exist throws: the
                # step fails without a process (ProcessInvoker.cs StartInfo.WorkingDirectory)
                self.log.append(
                    f"{step['name']}: An error occurred trying to start process"
                    f" '{shell_command(shell, str(script))[0]}' with working directory"
                    f" '{cwd}'. No such file or directory"
                )
                self._complete(step, "failure")
                continue
            running = _Running() if armed else None

            def started(proc: subprocess.Popen[str], running: _Running | None = running) -> None:
                if running is not None:
                    running.attach(proc)

            self._armed = running
            try:
                res = self.run_as(shell_command(shell, str(script)), started=started, **extra)
            finally:
                self._armed = None
                cancelled = running.finish() if running is not None else False
            self.log.append(f"{step['name']}: exit {res.returncode}\n{res.stdout}{res.stderr}")
            if armed and not cancelled:
                raise RuntimeError(f"{cancel_at!r} ended before the run was cancelled in it")
            outputs = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
            )
            outcome = "cancelled" if cancelled else "success" if res.returncode == 0 else "failure"
            self._complete(step, outcome, outputs)
            if cancelled:
                self.status = "cancelled"
                self.contexts["job"] = {"status": self.status}
                cancel_at = None

    def _complete(
        self, step: dict[str, Any], outcome: str, outputs: dict[str, str] | None = None
    ) -> None:
        """The step's result as the runner records it (actions/runner v2.336.0): a failed
        step whose ``continue-on-error`` is true keeps ``failure`` as its outcome and
        concludes ``success`` (ExecutionContext.cs ApplyContinueOnError: only a Failed
        result, ``Outcome = Result; Result = Succeeded``); ``steps.<id>`` gets both
        (UpdateGlobalStepsContext: outcome ``Outcome ?? Result``, conclusion ``Result``),
        a skipped step included; only a Failed conclusion fails the job (StepsRunner.cs
        "Update the job result")."""
        conclusion = outcome
        if outcome == "failure" and self._continues_on_error(step):
            conclusion = "success"
        if "id" in step:
            self.steps[step["id"]] = {
                "outputs": outputs or {},
                "outcome": outcome,
                "conclusion": conclusion,
            }
        if conclusion == "failure" and self.status == "success":
            self.status = "failure"

    def _continues_on_error(self, step: dict[str, Any]) -> bool:
        """``continue-on-error``: a boolean, or an expression evaluated as the step ends
        (ExecutionContext.cs EvaluateStepContinueOnError)."""
        value = step.get("continue-on-error", False)
        if isinstance(value, bool):
            return value
        text = str(value).strip()
        m = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
        return bool(self.evaluate(m.group(1))) if m else text == "true"
