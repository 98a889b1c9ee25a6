"""One push through the generated GitHub Actions delivery, job by job, as GitHub runs it.

The application is a real git repository (a bare remote); a push starts every
``deliver-<svc>.yml`` whose ``on.push`` branch and path filters match (docs, "Workflow
syntax": ``branches``/``paths`` glob patterns, a later ``!`` pattern excludes, a push
compares against the branch's previous head, a new branch against the commit it was
made from).  Each workflow is expanded with :mod:`tests.harness.reusable` and its jobs
run in order: a job whose ``if`` (default ``success()``: every job it needs succeeded)
is false is skipped; each job runs on a fresh runner (a new home, no docker config, a
fresh checkout owned by uid 1001) with :class:`tests.harness.runner.Job`; a job of an
approval environment starts once a reviewer approved (recorded where GitHub's API
answers it); a called workflow's jobs make up its caller's result (docs, "Reusing
workflows").  ``uses:`` steps are recorded (checkout is the fresh clone); a Slack step's
payload is the notification.

The application's own CI commands (``ci.steps``, the runtime's install/lint/test) are
the user's, not generated: the rehearsal's application has nothing to lint or test, so
they are recorded, not run.  Everything generated around them runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.harness.github_api import GitHubAPI, RunRecord
from tests.harness.reusable import defaults_of, expand
from tests.harness.runner import Job, _translate
from tests.harness.world import NO_CREDENTIALS, RUNNER_UID, Started, World

APP_COMMANDS = {
    "Install dependencies",
    "Lint code",
    "Run unit tests",
    "Vet",
    "Test with the race detector",
}
IDENT = ["-c", "user.name=dev", "-c", "user.email=dev@example.com"]


def git(cwd: Path, *args: str) -> str:
    # safe.directory also for the git processes a push or fetch starts on the remote
    env = {**os.environ, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory"}
    res = subprocess.run(
        ["git", *IDENT, *args],
        env={**env, "GIT_CONFIG_VALUE_0": "*"},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.strip()


def glob_re(pattern: str) -> re.Pattern[str]:
    """A workflow filter pattern: ``**`` any characters, ``*`` any but ``/``."""
    out = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern):
        if part.startswith("**"):
            out += "(?:.*/)?" if part.endswith("/") else ".*"
        elif part == "*":
            out += "[^/]*"
        elif part == "?":
            out += "[^/]"
        else:
            out += re.escape(part)
    return re.compile(out + r"\Z")


def filtered(patterns: list[str], value: str) -> bool:
    """The last matching pattern decides; a ``!`` pattern excludes."""
    keep = False
    for p in patterns:
        neg = p.startswith("!")
        if glob_re(p[1:] if neg else p).match(value):
            keep = not neg
    return keep


@dataclass
class Run:
    workflow: str
    sha: str
    run_id: str
    attempt: int
    results: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    # each job's steps context as it ended: {job id: {step id: outputs, outcome, conclusion}}
    steps: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def notifications(self) -> list[str]:
        return [json.loads(x[6:])["text"] for x in self.log if x.startswith("slack ")]


@dataclass
class App:
    """The application repository: a working copy (root) and its bare remote."""

    seed: Path
    remote: Path
    heads: dict[str, str] = field(default_factory=dict)

    def push(
        self,
        branch: str,
        files: dict[str, str],
        *,
        start: str = "main",
        message: str | None = None,
    ) -> tuple[str, list[str]]:
        """Commit ``files`` on ``branch`` (made from ``start`` when new) and push; the
        commit and the paths the push changed.  ``message``: the commit's (default
        "change on <branch>")."""
        if branch in self.heads:
            git(self.seed, "checkout", "-q", branch)
            before = self.heads[branch]
        else:
            git(self.seed, "checkout", "-q", "-B", branch, self.heads[start])
            before = self.heads[start]
        for rel, text in files.items():
            (self.seed / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.seed / rel).write_text(text)
        git(self.seed, "add", "-A")
        git(self.seed, "commit", "-qm", message or f"change on {branch}")
        return self._pushed(branch, before)

    def merge(self, source: str, into: str = "main") -> tuple[str, list[str]]:
        git(self.seed, "checkout", "-q", into)
        before = self.heads[into]
        git(self.seed, "merge", "-q", "--no-ff", "-m", f"Merge {source}", self.heads[source])
        return self._pushed(into, before)

    def _pushed(self, branch: str, before: str) -> tuple[str, list[str]]:
        sha = git(self.seed, "rev-parse", "HEAD")
        git(self.seed, "push", "-q", str(self.remote), f"HEAD:refs/heads/{branch}")
        self.heads[branch] = sha
        changed = git(self.seed, "diff", "--name-only", before, sha).splitlines()
        return sha, changed


class GitHubDelivery:
    """The sample's delivery workflows against the world, the app and the APIs."""

    def __init__(
        self,
        w: World,
        workflows: Path,
        app: App,
        api: GitHubAPI,
        *,
        api_url: str,
        secrets: dict[str, str],
        git_env: dict[str, str],
        approval_environments: set[str],
        environment_branches: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        """``environment_branches``: each GitHub environment's deployment branch policy
        (None: any branch); a job in an environment whose policy the run's branch does
        not match fails before it starts, as GitHub fails it (docs, "Managing
        environments for deployment": "Deployment branches and tags"; the policy's
        patterns are File.fnmatch globs, ``*`` not crossing ``/``)."""
        self.w, self.workflows, self.app, self.api = w, workflows, app, api
        self.api_url, self.secrets, self.git_env = api_url, secrets, git_env
        self.approval_environments = approval_environments
        self.environment_branches = environment_branches or {}
        self.runs: list[Run] = []
        self.hooks: dict[str, Any] = {}  # job id -> callable run before that job
        self.job: Job | None = None  # the job running now

    def cancel(self) -> None:
        """Cancel the run now (from a stub the running step talks to): the running job's
        step is signalled if it is the step the run is cancelled in (:meth:`Job.cancel`)."""
        job = self.job
        if job is not None:
            job.cancel()

    def triggered(self, branch: str, changed: list[str]) -> list[str]:
        names = []
        for path in sorted(self.workflows.glob("deliver-*.yml")):
            on = yaml.safe_load(path.read_text())["on"]["push"]
            if filtered(on["branches"], branch) and any(filtered(on["paths"], p) for p in changed):
                names.append(path.name)
        return names

    def push(self, branch: str, sha: str, changed: list[str], **kw: Any) -> list[Run]:
        return [self.run(name, branch, sha, **kw) for name in self.triggered(branch, changed)]

    def rerun(self, run: Run, branch: str, **kw: Any) -> Run:
        return self.run(
            run.workflow, branch, run.sha, run_id=run.run_id, attempt=run.attempt + 1, **kw
        )

    def run(
        self,
        name: str,
        branch: str,
        sha: str,
        *,
        run_id: str | None = None,
        attempt: int = 1,
        cancel_at: str | None = None,
        inputs: dict[str, str] | None = None,
        actor: str = "dev",
    ) -> Run:
        """``inputs``: a workflow_dispatch's (the event is then workflow_dispatch, started
        by ``actor``); otherwise a push by dev."""
        run_id = run_id or str(1000 + len(self.runs))
        run = Run(name, sha, run_id, attempt)
        self.runs.append(run)
        record = self.api.runs.setdefault(run_id, RunRecord(started_at="2030-01-01T10:00:00Z"))
        record.jobs[attempt] = []
        wf = expand(self.workflows / name, runner=True)
        callers = yaml.safe_load((self.workflows / name).read_text())["jobs"]
        github = {
            "ref_name": branch,
            "ref": f"refs/heads/{branch}",
            "sha": sha,
            "run_id": run_id,
            "run_attempt": str(attempt),
            "server_url": "https://github.com",
            "repository": "example/app",
            "workflow_ref": f"example/app/.github/workflows/{name}@refs/heads/{branch}",
            "token": self.api.token,
            "actor": actor,
            "triggering_actor": actor,
            "event_name": "push" if inputs is None else "workflow_dispatch",
            "event": {"head_commit": {"author": {"username": "dev"}}} if inputs is None else {},
        }
        info: dict[str, dict[str, Any]] = {}
        cancelled = False
        for i, (job_id, job) in enumerate(wf["jobs"].items()):
            needs = [self._need(job_id, n, wf["jobs"]) for n in _list(job.get("needs"))]
            caller = job_id.split("/", 1)[0]
            context = {n: info[n] for n in needs}
            if "/" in job_id:  # a called job also sees what its caller's inputs read
                context.update({n: info[n] for n in _list(wf["jobs"][caller].get("needs"))})
            for n in _list(job.get("needs")):
                context.setdefault(n, info[self._need(job_id, n, wf["jobs"])])
            results = [info[n]["result"] for n in needs]
            ctx = {
                "github": github,
                "needs": context,
                "secrets": self.secrets,
                "inputs": dict(inputs or {}),
            }
            status_fns = {
                "always": lambda: True,
                "success": lambda r=results, c=cancelled: not c and all(x == "success" for x in r),
                "failure": lambda r=results: "failure" in r,
                "cancelled": lambda c=cancelled: c,
            }
            cond = str(job.get("if", "success()")).strip()
            if cond.startswith("${{"):
                cond = cond[3:].rstrip()[:-2]
            if not re.search(r"\b(always|failure|cancelled|success)\(", cond):
                cond = f"success() && ({cond})"
            if not _evaluate(cond, ctx, status_fns):
                info[job_id] = {"result": "cancelled" if cancelled else "skipped", "outputs": {}}
                continue
            if job_id in self.hooks:
                self.hooks.pop(job_id)(run)
            env_name = job.get("environment")
            if isinstance(env_name, dict):
                env_name = env_name.get("name")
            if isinstance(env_name, str) and env_name.strip().startswith("${{"):
                env_name = _value(env_name.strip()[3:-2], ctx)
            policy = self.environment_branches.get(env_name) if env_name else None
            if policy is not None and not any(glob_re(p).match(branch) for p in policy):
                run.log.append(
                    f'== {job_id}: failure\nBranch "{branch}" is not allowed to deploy to '
                    f"{env_name} due to environment protection rules."
                )
                info[job_id] = {"result": "failure", "outputs": {}}
                continue
            if env_name and env_name in self.approval_environments:
                record.approvals.append(
                    {
                        "environments": [{"name": env_name}],
                        "state": "approved",
                        "user": {"login": f"{env_name}-approver"},
                    }
                )
            job_run = self._job(job_id, job, ctx, run, cancel_at, defaults_of(wf, job_id))
            info[job_id] = {"result": job_run.status, "outputs": job_run.outputs}
            if job_run.status == "cancelled":
                cancelled, cancel_at = True, None
            top = callers.get(caller, {}).get("name", caller)
            display = top if "/" not in job_id and "uses" not in job else f"{top} / {job_run.name}"
            record.jobs[attempt].append(
                {
                    "name": display,
                    "status": "completed",
                    "conclusion": job_run.status,
                    "started_at": f"2030-01-01T10:{i:02d}:00Z",
                    "completed_at": f"2030-01-01T10:{i:02d}:30Z",
                }
            )
        for job_id, data in info.items():
            run.results[job_id] = data["result"]
        for job_id in list(run.results):  # a caller's result is its called jobs' together
            if "/" not in job_id:
                subs = [r for j, r in run.results.items() if j.startswith(job_id + "/")]
                for bad in ("failure", "cancelled"):
                    if bad in subs and run.results[job_id] == "success":
                        run.results[job_id] = bad
        return run

    def _need(self, job_id: str, need: str, jobs: dict[str, Any]) -> str:
        if "/" not in job_id:
            return need
        parent = job_id.rsplit("/", 1)[0]
        return f"{parent}/{need}" if f"{parent}/{need}" in jobs else parent

    def _job(
        self,
        job_id: str,
        job: dict[str, Any],
        ctx: dict[str, Any],
        run: Run,
        cancel_at: str | None,
        defaults: list[Any],
    ) -> Job:
        """``defaults``: the job's workflow's and its own (:func:`defaults_of`)."""
        label = job_id.replace("/", "-")
        n = (
            sum(1 for _ in (self.w.base / "work").glob(f"{run.run_id}-*"))
            if (self.w.base / "work").exists()
            else 0
        )
        workdir = self.w.workdir(f"{run.run_id}-{run.attempt}-{n}-{label}", RUNNER_UID)
        git(workdir, "init", "-q")
        depth = checkout_depth(job)
        shallow = ["--depth", str(depth)] if depth else []
        git(workdir, "fetch", "-q", *shallow, str(self.app.remote), run.sha)
        git(workdir, "checkout", "-q", "FETCH_HEAD")
        self.w.chown_tree(workdir, RUNNER_UID)
        home = self.w.home(f"{run.run_id}-{run.attempt}-{n}-{label}", RUNNER_UID)
        temp = self.w.workdir(f"{run.run_id}-{run.attempt}-{n}-{label}-temp", RUNNER_UID)

        def run_as(
            script: str | list[str], started: Started = None, **env: str
        ) -> subprocess.CompletedProcess[str]:
            cwd = Path(env.pop("cwd", workdir))
            # a step that would wait (a scan that never completes, a wait for health that
            # never comes) fails here within a minute instead of its own timeout
            return self.w.run(
                script, uid=RUNNER_UID, cwd=cwd, home=home, limit=60, started=started, **env
            )

        contexts = {
            **ctx,
            "runner": {"temp": str(temp), "uid": RUNNER_UID, "os": "Linux"},
        }
        j = Job(contexts=contexts, workdir=workdir, run_as=run_as, temp=temp, defaults=defaults)
        steps = []
        for step in job.get("steps", []):
            if step.get("name") in APP_COMMANDS:
                j.log.append(f"{step['name']}: the application's own command, not run")
                continue
            steps.append(step)
        env = {
            "GITHUB_API_URL": self.api_url,
            "GITHUB_REPOSITORY": ctx["github"]["repository"],
            "GITHUB_RUN_ID": ctx["github"]["run_id"],
            "GITHUB_RUN_ATTEMPT": ctx["github"]["run_attempt"],
            "GITHUB_SHA": run.sha,
            "RUNNER_TEMP": str(temp),
            # a fresh runner has no AWS credentials until configure-aws-credentials runs
            "AWS_ACCESS_KEY_ID": NO_CREDENTIALS,
            **self.git_env,
        }
        self.job = j
        try:
            j.run(steps, env, cancel_at)
        finally:
            self.job = None
        j.outputs = {k: j.substitute(str(v)) for k, v in (job.get("outputs") or {}).items()}
        j.name = j.substitute(str(job.get("name", job_id)))
        run.steps[job_id] = j.steps
        run.log.append(f"== {job_id}: {j.status}")
        run.log.extend(j.log)
        return j


def checkout_depth(job: dict[str, Any]) -> int:
    """How much history the job's checkout fetches: actions/checkout's ``fetch-depth``
    (action.yml: "Number of commits to fetch. 0 indicates all history for all branches
    and tags", default 1), so a job holds only the commit it runs on unless it asks for
    more; a job without a checkout step gets the same fresh clone."""
    for step in job.get("steps", []):
        if step.get("if") == "false":  # skipped for the caller's inputs
            continue
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            return int(step.get("with", {}).get("fetch-depth", 1))
    return 1


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _value(expr: str, ctx: dict[str, Any]) -> Any:
    """An expression's value (``a && 'x' || 'y'`` gives an operand, as GitHub's does)."""
    return _evaluate(expr, ctx, {}, raw=True)


def _evaluate(expr: str, ctx: dict[str, Any], fns: dict[str, Any], raw: bool = False) -> Any:
    def get(path: str) -> Any:
        parts = path.split(".")
        value: Any = ctx.get(parts[0], {})
        for p in parts[1:]:
            if p == "*":
                return list(value.values()) if isinstance(value, dict) else []
            if isinstance(value, list):
                value = [v.get(p, "") if isinstance(v, dict) else "" for v in value]
            else:
                value = value.get(p, "") if isinstance(value, dict) else ""
        return value

    all_fns = {**fns, "contains": lambda hay, needle: needle in hay}
    value = eval(_translate(expr), {"_get": get, "_fn": all_fns})
    return value if raw else bool(value)
