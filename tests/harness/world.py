"""The rehearsal's world: moto (ECR, KMS, DynamoDB, Secrets Manager) reached by the real
AWS CLI, the docker and cosign stubs, bare git remotes, and users to run scripts as."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .moto import aws_env, moto_server

ROOT = Path(__file__).resolve().parents[2]
# called with a step's process once it runs (World.run)
Started = Callable[[subprocess.Popen[str]], None] | None
# the AWS CLI the scripts run: in a virtualenv of the system Python, which every user can
# execute (the test runner's Python may live under a home only its owner can enter);
# scripts/test creates it
TOOLS = ROOT / ".venv-tools" / "bin"
STUBS = Path(__file__).parent / "stubs"
RUNNER_UID = 1001  # GitHub-hosted runners run steps as 'runner', uid 1001 (runner-images)
CODEBUILD_UID = 0  # CodeBuild's standard images run the build as root
REGION = "eu-central-1"
ACCOUNT = "123456789012"  # moto's account


def _runner_signals() -> None:
    """In the child: the signals a step's process starts with on a hosted runner.  The
    runner service starts with default handling and nothing blocked, and starts a step
    with .NET's Process, whose fork resets the handlers the runtime installed and
    restores the forking thread's mask (dotnet/runtime, src/native/libs/System.Native/
    pal_process.c, SystemNative_ForkAndExecProcess; an ignored SIGINT would be kept,
    pal_signal.c, but the service has none).  The test process may hold SIGINT ignored
    or blocked (both survive exec), and then the step's shell could not be cancelled:
    bash cannot trap a signal ignored on entry, and a blocked one never arrives (the
    cancel tests failed so, once in a full run).  Not modelled: a step inherits SIGPIPE
    ignored from the runner (actions/runner#2684); here it has the default, so a broken
    pipe ends a command with 141 where the runner's would see EPIPE."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


@dataclass
class World:
    base: Path
    env: dict[str, str]
    registry: str
    log: list[str] = field(default_factory=list)
    # every request moto served, as its recorder wrote it (tests/rehearsal/iam_calls.py)
    recording: Path | None = None

    def client(self, service: str, role: str | None = None) -> Any:
        """A boto3 client on moto, for setting up and reading back (not for the scripts);
        ``role``: as a session of that role (what a service does with a role's
        credentials on its own, such as CodeBuild reading a build's secrets)."""
        import boto3

        creds = role_credentials(role) if role else {}
        return boto3.client(
            service,
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=REGION,
            aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key="testing",
            aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        )

    def home(self, name: str, uid: int) -> Path:
        """A fresh home folder owned by ``uid`` (no docker config, no git identity)."""
        home = self.base / "homes" / name
        home.mkdir(parents=True)
        os.chown(home, uid, uid)
        return home

    def workdir(self, name: str, uid: int) -> Path:
        """A folder created by the runner user, mode 755 (what a runner's mkdir gives)."""
        d = self.base / "work" / name
        d.mkdir(parents=True)
        d.chmod(0o755)
        os.chown(d, uid, uid)
        return d

    def run(
        self,
        script: str | list[str],
        *,
        uid: int,
        cwd: Path,
        home: Path,
        limit: int = 0,
        started: Started = None,
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run a bash script (``bash -c``), or a command line given as a list (what the
        GitHub runner starts: the shell and its script file), as ``uid`` (setpriv: the
        kernel checks every permission); ``limit``: seconds before coreutils' timeout ends
        it (exit 124), 0 for none; ``started``: called with the process once it runs (in
        a process group of its own, which a cancel can end as one tree)."""
        env = {**self.env, "HOME": str(home), **extra}
        cmd = ["bash", "-c", script] if isinstance(script, str) else list(script)
        if uid != 0:
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *cmd]
        if limit:
            cmd = ["timeout", str(limit), *cmd]
        with subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,
            preexec_fn=_runner_signals,
        ) as proc:
            if started is not None:
                started(proc)
            out, err = proc.communicate()
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def chown_tree(self, path: Path, uid: int) -> None:
        for p in [path, *path.rglob("*")]:
            os.lchown(p, uid, uid)


@contextmanager
def dockerd(state: Path) -> Iterator[Path]:
    """The docker daemon's side of the docker stub, as root (this process), on a UNIX
    socket in the harness state folder (the stub runs as the step's user; dockerd is
    root).  It does what only the daemon may: creating a bind mount's missing source,
    ``idtools.MkdirAllAndChownNew(m.Source, 0o755, rootIDs)`` (moby v27.5.1
    volume/mounts/mounts.go MountPoint.Setup): each folder it creates is root:root (no
    user namespace remapping) mode 0755, folders that exist stay as they are; and running
    what a container does to its mounts as the container's user and groups (``run``: the
    runtime starts the process with AdditionalGids, daemon/oci_linux.go getUser), which a
    stub running as the step's user could not."""
    sock = state / "dockerd.sock"

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = json.loads(self.rfile.readline())
            answer: dict[str, Any] = {}
            try:
                if request.get("op") == "run":
                    uid, gids = int(request["uid"]), [int(g) for g in request["gids"]]
                    cmd = list(request["cmd"])
                    if uid != 0:
                        groups = ",".join(map(str, gids))
                        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gids[0]}",
                               f"--groups={groups}", "--", *cmd]  # fmt: skip
                    answer = {"code": subprocess.run(cmd, check=False).returncode}
                    self.wfile.write(json.dumps(answer).encode() + b"\n")
                    return
                if request.get("op") != "mkdir":
                    raise ValueError(f"unknown request {request!r}")
                missing = []
                path = Path(request["path"])
                while not path.exists():
                    missing.append(path)
                    path = path.parent
                for folder in reversed(missing):
                    folder.mkdir()
                    os.chown(folder, 0, 0)
                    folder.chmod(0o755)
            except (OSError, ValueError) as err:
                answer = {"error": str(err)}
            self.wfile.write(json.dumps(answer).encode() + b"\n")

    server = socketserver.ThreadingUnixStreamServer(str(sock), Handler)
    sock.chmod(0o666)  # the docker group's socket: every step's user may reach it
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sock
    finally:
        server.shutdown()
        server.server_close()
        sock.unlink(missing_ok=True)


NO_CREDENTIALS = "NO-CREDENTIALS"  # the access key of a step that was given none


def role_credentials(role: str) -> dict[str, str]:
    """The environment of a step whose AWS credentials are a session of the IAM role
    named ``role``: the access key names the role, so every request moto records says
    which role made it (moto answers any key without IAM enforcement, in its default
    account, moto/iam/models.py get_account_id_from)."""
    return {
        "AWS_ACCESS_KEY_ID": f"ROLE-{role}",
        "AWS_SECRET_ACCESS_KEY": "rehearsal",
        "AWS_SESSION_TOKEN": f"session-of-{role}",
    }


def role_of(access_key: str) -> str | None:
    """The role a request's access key names (:func:`role_credentials`), else None."""
    return access_key.removeprefix("ROLE-") if access_key.startswith("ROLE-") else None


def _install_stubs(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for stub in STUBS.iterdir():
        text = stub.read_text().replace("#!/usr/bin/env python3", "#!/usr/bin/python3", 1)
        (bin_dir / stub.name).write_text(text)
        (bin_dir / stub.name).chmod(0o755)
    # the scripts' back-off between push attempts: the rehearsal does not wait
    (bin_dir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sleep").chmod(0o755)


@contextmanager
def world() -> Iterator[World]:
    """moto in server mode and everything around it, for one module of tests."""
    if not (TOOLS / "aws").exists():
        raise RuntimeError(f"{TOOLS}/aws is missing: scripts/test creates it")
    base = Path(tempfile.mkdtemp(prefix="rehearsal-"))
    base.chmod(0o755)
    try:
        recording = base / "moto-requests.jsonl"
        with ExitStack() as stack:
            endpoint = stack.enter_context(moto_server(recording))
            bin_dir = base / "bin"
            _install_stubs(bin_dir)
            state = base / "state"
            state.mkdir(mode=0o777)
            state.chmod(0o777)
            daemon = stack.enter_context(dockerd(state))
            env = {
                "PATH": f"{bin_dir}:{TOOLS}:/usr/local/bin:/usr/bin:/bin",
                "HARNESS_STATE": str(state),
                "HARNESS_DOCKERD": str(daemon),
                "LANG": "C.UTF-8",
                # a runner has no git identity (neither GitHub-hosted runners nor the
                # CodeBuild image configure one): git must not invent one from the host
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "user.useConfigOnly",
                "GIT_CONFIG_VALUE_0": "true",
                **aws_env(endpoint, REGION),
            }
            registry = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
            yield World(base=base, env=env, registry=registry, recording=recording)
    finally:
        shutil.rmtree(base, ignore_errors=True)
