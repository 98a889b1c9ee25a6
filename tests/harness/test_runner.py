"""The rehearsal's GitHub runner starts ``run:`` steps as actions/runner v2.336.0 does
(src/Runner.Worker/Handlers/ScriptHandler.cs, ScriptHandlerHelpers.cs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import runner
from .reusable import defaults_of, expand, expand_rendered
from .runner import Job, _Running, run_defaults, shell_command
from .world import RUNNER_UID, Started, World, _runner_signals

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is its owner's alone)."""
    path = Path(tempfile.mkdtemp(prefix="runner-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _job(folder: Path, shell: str | None = None, defaults: list[Any] | None = None) -> Job:
    """``shell``: the job's ``defaults.run.shell``; ``defaults``: the workflow's and the
    job's ``defaults`` (instead)."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    w = World(base=folder, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, registry="")
    work = w.workdir("work", RUNNER_UID)
    temp = w.workdir("temp", RUNNER_UID)
    home = w.home("runner", RUNNER_UID)

    def run_as(
        script: str | list[str], started: Started = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        cwd = Path(env.pop("cwd", work))
        return w.run(script, uid=RUNNER_UID, cwd=cwd, home=home, started=started, **env)

    return Job(
        contexts={"github": {}, "runner": {"temp": str(temp), "uid": RUNNER_UID}},
        workdir=work,
        run_as=run_as,
        temp=temp,
        defaults=defaults or [None, {"run": {"shell": shell}} if shell else None],
    )


def test_the_default_shell_is_bash_e_on_a_script_file() -> None:
    assert shell_command(None, "/t/x.sh") == ["bash", "-e", "/t/x.sh"]
    assert shell_command("bash", "/t/x.sh") == [
        "bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "/t/x.sh",
    ]  # fmt: skip
    assert shell_command("sh", "/t/x.sh") == ["sh", "-e", "/t/x.sh"]
    assert shell_command("bash -x {0}", "/t/x.sh") == ["bash", "-x", "/t/x.sh"]
    with pytest.raises(ValueError, match="containing '\\{0\\}'"):
        shell_command("bash -x", "/t/x.sh")


def test_a_failing_command_ends_the_step(base: Path) -> None:
    # -e: the runner's bash stops at the first failing command, as on GitHub
    job = _job(base)
    job.run([{"name": "s", "id": "s", "run": "echo started\nfalse\necho reached"}], {})
    assert job.status == "failure"
    assert job.log == ["s: exit 1\nstarted\n"]


def test_without_shell_bash_a_pipe_fails_only_by_its_last_command(base: Path) -> None:
    # bash -e without pipefail (no shell given) against shell: bash (-o pipefail)
    step = {"name": "s", "id": "s", "run": "false | true"}
    default = _job(base / "default")
    default.run([step], {})
    assert default.status == "success", default.log
    explicit = _job(base / "bash")
    explicit.run([{**step, "shell": "bash"}], {})
    assert explicit.status == "failure"
    job_default = _job(base / "job", shell="bash")
    job_default.run([step], {})
    assert job_default.status == "failure"


def test_the_script_is_a_file_in_the_runner_temp(base: Path) -> None:
    job = _job(base)
    job.run([{"name": "s", "id": "s", "run": 'echo "n=$0" >> "$GITHUB_OUTPUT"'}], {})
    script = Path(job.steps["s"]["outputs"]["n"])
    assert script.parent == job.temp and script.suffix == ".sh"


def _cancel_point(job: Job, base: Path, release: bool = True) -> threading.Thread:
    """Play the stub the step talks to: once the step's child says it is there (it writes
    to one FIFO and then waits on another), cancel the run, then answer the child (or,
    ``release`` False, never: the child hangs as a request with no answer does)."""
    reached, answer = base / "reached", base / "answer"
    for fifo in (reached, answer):
        os.mkfifo(fifo)
        fifo.chmod(0o666)

    def stub() -> None:
        assert reached.read_text() == "here\n"
        job.cancel()
        if release:
            answer.write_text("answer\n")

    thread = threading.Thread(target=stub, daemon=True)
    thread.start()
    return thread


# the step's child: says it is at the cancel point, then waits for its answer
CHILD = "sh -c 'echo here > {0}/reached; cat {0}/answer'"


def test_a_cancel_signals_the_running_step_then_runs_only_always_steps(base: Path) -> None:
    job = _job(base)
    stub = _cancel_point(job, base)
    # The child runs in the background and the shell waits with the ``wait`` builtin: a
    # trapped signal then "will cause the wait builtin to return immediately ... after
    # which the trap is executed" (bash 5.2 manual, Signals).  Waiting for it in the
    # foreground (``$(...)``) is a race in bash 5.2 itself: a SIGINT that reaches the
    # shell while it reaps a child that exited normally runs no trap (wait_for's
    # child_caught_sigint, jobs.c), which failed this test once under load.
    script = (
        'echo "partial=written" >> "$GITHUB_OUTPUT"\n'
        "trap 'echo \"trapped INT\"; exit 130' INT\n"
        f"{CHILD.format(base)} > answer.txt &\n"
        'wait "$!"\n'
        'echo "got $(cat answer.txt)"\n'
    )
    steps = [
        {"name": "wait", "id": "wait", "run": script},
        {"name": "next", "id": "next", "run": "echo next"},
        {"name": "audit", "id": "audit", "if": "${{ always() }}", "run": "echo audit"},
        {"name": "notice", "id": "notice", "if": "cancelled()", "run": "echo notice"},
    ]
    job.run(steps, {}, cancel_at="wait")
    stub.join()
    assert job.status == "cancelled"
    # the step ran to its cancel point, its child answered, and bash ran its trap
    assert job.steps["wait"] == {
        "outputs": {"partial": "written"},
        "outcome": "cancelled",
        "conclusion": "cancelled",
    }
    assert "wait: exit 130\ntrapped INT\n" in job.log
    assert job.steps["next"] == {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
    assert not any(line.startswith("next:") for line in job.log)
    assert job.steps["audit"]["outcome"] == "success"
    assert job.steps["notice"]["outcome"] == "success"


def test_a_step_that_ignores_sigint_gets_sigterm_then_its_tree_is_killed(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the runner's 7.5 s and 2.5 s, passed at once: the step cannot end by itself (its
    # child never gets an answer), so nothing but the signals ends it
    monkeypatch.setattr(runner, "SIGINT_TIMEOUT", 0.0)
    monkeypatch.setattr(runner, "SIGTERM_TIMEOUT", 0.0)
    job = _job(base)
    stub = _cancel_point(job, base, release=False)
    script = f"trap '' INT\n{CHILD.format(base)}\necho carried on\n"
    job.run([{"name": "wait", "id": "wait", "run": script}], {}, cancel_at="wait")
    stub.join()
    assert job.status == "cancelled"
    assert job.steps["wait"]["outcome"] == "cancelled"
    assert not any("carried on" in line for line in job.log)


def test_continue_on_error_concludes_success_with_outcome_failure(base: Path) -> None:
    job = _job(base)
    job.contexts["inputs"] = {"soft": True}
    steps = [
        {"name": "a", "id": "a", "run": "exit 3", "continue-on-error": True},
        {"name": "b", "id": "b", "run": "exit 3", "continue-on-error": "${{ inputs.soft }}"},
        {"name": "seen", "id": "seen", "if": "steps.a.outcome == 'failure'", "run": "true"},
        {"name": "ok", "id": "ok", "if": "steps.b.conclusion == 'success'", "run": "true"},
        {"name": "no", "id": "no", "if": "steps.a.conclusion == 'failure'", "run": "true"},
    ]
    job.run(steps, {})
    assert job.status == "success", job.log
    for name in ("a", "b"):
        assert job.steps[name]["outcome"] == "failure"
        assert job.steps[name]["conclusion"] == "success"
    assert job.steps["seen"]["conclusion"] == job.steps["ok"]["conclusion"] == "success"
    assert job.steps["no"]["outcome"] == "skipped"


def test_without_continue_on_error_a_failure_fails_the_job(base: Path) -> None:
    job = _job(base)
    job.contexts["inputs"] = {"soft": False}
    steps = [
        {"name": "a", "id": "a", "run": "exit 3", "continue-on-error": "${{ inputs.soft }}"},
        {"name": "b", "id": "b", "run": "true"},
        {"name": "c", "id": "c", "if": "failure() && steps.a.outcome == 'failure'", "run": "true"},
    ]
    job.run(steps, {})
    assert job.status == "failure"
    assert job.steps["a"] == {"outputs": {}, "outcome": "failure", "conclusion": "failure"}
    assert job.steps["b"]["conclusion"] == "skipped"
    assert job.steps["c"]["conclusion"] == "success"


def test_a_cancelled_step_stays_cancelled_with_continue_on_error(base: Path) -> None:
    # ApplyContinueOnError changes only a Failed result
    job = _job(base)
    stub = _cancel_point(job, base)
    step = {"name": "wait", "id": "wait", "run": CHILD.format(base), "continue-on-error": True}
    job.run([step], {}, cancel_at="wait")
    stub.join()
    assert job.status == "cancelled"
    assert job.steps["wait"]["outcome"] == job.steps["wait"]["conclusion"] == "cancelled"


def test_a_step_that_ends_before_its_cancel_is_an_error(base: Path) -> None:
    job = _job(base)
    with pytest.raises(RuntimeError, match="'wait' ended before the run was cancelled"):
        job.run([{"name": "wait", "run": "true"}], {}, cancel_at="wait")


# -- defaults.run: JobExtension.cs and ScriptHandler.cs (actions/runner v2.336.0) ------------


def _where(job: Job, step: dict[str, Any]) -> tuple[str, str]:
    """Run ``step`` (a script that records its folder and whether pipefail is on)."""
    run = 'echo "pwd=$PWD" >> "$GITHUB_OUTPUT"; echo "opts=$-:$SHELLOPTS" >> "$GITHUB_OUTPUT"'
    job.run([{"name": "s", "id": "s", "run": run, **step}], {})
    assert job.status == "success", job.log
    out = job.steps["s"]["outputs"]
    return out["pwd"], "pipefail" if "pipefail" in out["opts"] else "no pipefail"


def test_the_workflow_defaults_apply_and_a_job_defaults_run_replaces_them(base: Path) -> None:
    workflow = {"run": {"shell": "bash", "working-directory": "sub"}}
    job = _job(base / "wf", defaults=[workflow, None])
    (job.workdir / "sub").mkdir()
    assert _where(job, {}) == (f"{job.workdir}/sub", "pipefail")
    # the job's defaults.run is the whole of it: the workflow's working-directory is gone
    job = _job(base / "job", defaults=[workflow, {"run": {"shell": "sh"}}])
    (job.workdir / "sub").mkdir()
    assert _where(job, {}) == (str(job.workdir), "no pipefail")
    # a defaults without run leaves the workflow's in place
    job = _job(base / "other", defaults=[workflow, {"other": {}}])
    (job.workdir / "sub").mkdir()
    assert _where(job, {}) == (f"{job.workdir}/sub", "pipefail")


def test_a_steps_own_shell_and_folder_win_over_the_defaults(base: Path) -> None:
    job = _job(base, defaults=[None, {"run": {"shell": "bash", "working-directory": "sub"}}])
    for name in ("sub", "own"):
        (job.workdir / name).mkdir()
    step = {"shell": "bash -e {0}", "working-directory": "own"}
    assert _where(job, step) == (f"{job.workdir}/own", "no pipefail")
    # '.' is the workspace itself, as the generated dependency check asks
    job = _job(base / "dot", defaults=[None, {"run": {"working-directory": "sub"}}])
    (job.workdir / "sub").mkdir()
    assert _where(job, {"working-directory": "."}) == (str(job.workdir), "no pipefail")


def test_the_defaults_are_evaluated_with_the_jobs_contexts_and_empty_ones_dropped() -> None:
    contexts = {"inputs": {"path": "services/payments"}}

    def evaluate(text: str) -> str:
        return text.replace("${{ inputs.path }}", contexts["inputs"]["path"])

    tokens = [{"run": {"shell": "bash"}}, {"run": {"working-directory": "${{ inputs.path }}"}}]
    assert run_defaults(tokens, evaluate) == {"working-directory": "services/payments"}
    assert run_defaults([{"run": {"shell": "bash"}}, {"run": {"shell": ""}}], evaluate) == {}


def test_a_default_folder_that_does_not_exist_fails_the_step(base: Path) -> None:
    job = _job(base, defaults=[None, {"run": {"working-directory": "missing"}}])
    job.run([{"name": "s", "id": "s", "run": "echo ran"}], {})
    assert job.status == "failure"
    assert job.steps["s"]["outcome"] == "failure"
    assert job.log == [
        "s: An error occurred trying to start process 'bash' with working directory"
        f" '{job.workdir}/missing'. No such file or directory"
    ]


def test_a_called_job_runs_with_its_own_workflows_defaults() -> None:
    files = {
        "w/caller.yml": (
            "'on': push\ndefaults: {run: {shell: sh}}\njobs:\n"
            "  own: {runs-on: x, steps: [{run: 'true'}]}\n"
            "  call: {uses: $/w/called.yml, with: {path: services/payments}}\n"
        ),
        "w/called.yml": (
            "'on': {workflow_call: {inputs: {path: {type: string}}}}\n"
            "defaults: {run: {shell: bash, working-directory: '${{ inputs.path }}'}}\n"
            "jobs:\n  first: {runs-on: x, steps: [{run: 'true'}]}\n"
            "  second: {runs-on: x, steps: [{run: 'true'}],"
            " defaults: {run: {working-directory: sub}}}\n"
        ),
    }
    wf = expand_rendered(files, "w/caller.yml")
    assert defaults_of(wf, "own") == [{"run": {"shell": "sh"}}, None]
    called = {"run": {"shell": "bash", "working-directory": "services/payments"}}
    assert defaults_of(wf, "call") == [called, None]
    assert defaults_of(wf, "call/second") == [called, {"run": {"working-directory": "sub"}}]


def test_the_generated_ci_job_runs_in_the_services_folder() -> None:
    # ci-payments.yml calls ci.yml, whose job sets defaults.run.working-directory
    wf = expand(ROOT / "samples/storefront/.github/workflows/ci-payments.yml")
    got = run_defaults(defaults_of(wf, "validate"), lambda text: text)
    assert got == {"working-directory": "services/payments"}


def test_a_cancel_before_the_process_is_known_is_delivered_once_it_is() -> None:
    """The step can reach its cancel point before Popen's caller runs again (under load
    the stub's cancel came while the process was not yet known, and was lost: the step
    then ran to its end uncancelled).  The cancel waits for the process and is sent to it
    then, once."""
    running = _Running()
    assert running.cancel()
    assert not running.cancel()  # one cancel, as the runner sends one
    proc = subprocess.Popen(["sleep", "30"], preexec_fn=_runner_signals)
    running.attach(proc)
    assert proc.wait(timeout=20) == -signal.SIGINT
    assert running.finish()


def test_a_step_is_cancelled_even_when_the_tests_ignore_and_block_sigint(base: Path) -> None:
    """The step's process starts with the runner's signals (default handling, nothing
    blocked), whatever the test process holds: SIGINT ignored or blocked survives exec,
    and then bash could neither trap nor receive the cancel (failed once in a full run)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        test_a_cancel_signals_the_running_step_then_runs_only_always_steps(base)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)


def test_a_step_false_for_the_callers_inputs_is_skipped_not_missing(base: Path) -> None:
    """A called workflow's step whose ``if`` is false for the caller's inputs is skipped
    by the runner, and recorded: ``steps.<id>.outcome`` is ``skipped`` for later steps
    (CompleteStep(step, TaskResult.Skipped), StepsRunner.cs), never the "" of a step
    that does not exist (the expansion dropped it before)."""
    files = {
        "w/caller.yml": (
            "'on': push\njobs:\n  call: {uses: $/w/called.yml, with: {scan: false}}\n"
        ),
        "w/called.yml": (
            "'on': {workflow_call: {inputs: {scan: {type: boolean}}}}\n"
            "jobs:\n  first:\n    runs-on: x\n    steps:\n"
            "      - {id: scan, name: scan, if: '${{ inputs.scan }}', run: 'echo scanned'}\n"
            "      - id: after\n        name: after\n"
            '        run: echo "seen=${{ steps.scan.outcome }}" >> "$GITHUB_OUTPUT"\n'
        ),
    }
    assert [s["id"] for s in expand_rendered(files, "w/caller.yml")["jobs"]["call"]["steps"]] == [
        "after"
    ]  # what runs
    steps = expand_rendered(files, "w/caller.yml", runner=True)["jobs"]["call"]["steps"]
    assert [s["id"] for s in steps] == ["scan", "after"]
    job = _job(base)
    job.run(steps, {})
    assert job.steps["scan"] == {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
    assert job.steps["after"]["outputs"] == {"seen": "skipped"}
    assert not any(line.startswith("scan:") for line in job.log)
