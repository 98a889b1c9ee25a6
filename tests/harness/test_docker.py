"""The docker stub refuses what the docker client and ECR refuse: a login with anything
but the token ECR issued, a docker run flag it does not know; and its mounts are the
daemon's: a missing source created root:root 0755, permissions checked with the
container's uid, gid and supplementary groups (the stub names sources)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .world import RUNNER_UID, World, world


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    with world() as w:
        yield w


def _docker(w: World, name: str, script: str) -> tuple[int, str]:
    home = w.home(name, RUNNER_UID)
    res = w.run(script, uid=RUNNER_UID, cwd=home, home=home, ECR_REGISTRY=w.registry)
    return res.returncode, res.stdout + res.stderr


def test_login_takes_only_the_token_ecr_issued(w: World) -> None:
    login = 'docker login --username AWS --password-stdin "$ECR_REGISTRY"'
    code, out = _docker(w, "good", f"aws ecr get-login-password | {login}")
    assert (code, out) == (0, "Login Succeeded\n")
    code, out = _docker(w, "bad", f"echo not-the-token | {login}")
    assert code == 1 and "failed with status: 401 Unauthorized" in out
    code, out = _docker(w, "none", f"echo AWS:x | {login}; test ! -e ~/.docker/config.json")
    assert code == 0


def test_run_takes_the_value_of_each_flag_and_refuses_one_it_does_not_know(w: World) -> None:
    state = w.env["HARNESS_STATE"]
    code, out = _docker(
        w,
        "flags",
        "docker run --rm --network host --name n --entrypoint sh -e A=1 --workdir=/w "
        "alpine echo -t x\n"
        f'grep -c "run alpine as uid 0: echo -t x" {state}/docker.log',
    )
    assert (code, out) == (0, "1\n")
    code, out = _docker(w, "unknown", "docker run --rm --cap-add NET_ADMIN alpine")
    assert code == 125 and "unknown flag: --cap-add" in out
    code, out = _docker(w, "missing", "docker run --rm --network")
    assert code == 125 and "flag needs an argument: --network" in out


def test_a_missing_bind_mount_source_is_the_daemons_root_0755(w: World) -> None:
    # moby v27.5.1 volume/mounts/mounts.go: MkdirAllAndChownNew(m.Source, 0o755, rootIDs):
    # the caller's user does not own it, so a container running as that user cannot write
    code, out = _docker(
        w,
        "absent",
        'docker run --rm --user "$(id -u):$(id -g)" -v "$HOME/new/reports:/out:rw" alpine true'
        '; echo "exit $?"; stat -c "%u:%g %a" "$HOME/new" "$HOME/new/reports"',
    )
    assert code == 0
    assert "/out (" in out and "is not writable by uid 1001" in out
    assert out.startswith("exit 1\n0:0 755\n0:0 755\n")  # stdout, then stderr
    # what the scripts do instead: make it first, as the runner (dependency-check.sh)
    code, out = _docker(
        w,
        "made",
        'mkdir -p "$HOME/reports"; docker run --rm --user "$(id -u):$(id -g)"'
        ' -v "$HOME/reports:/out:rw" alpine true',
    )
    assert (code, out) == (0, "")


def _shared(w: World, name: str, gid: int) -> Path:
    """A folder root:<gid> mode 0770: only the group may write."""
    folder = w.base / "shared" / name
    folder.mkdir(parents=True)
    os.chown(folder, 0, gid)
    folder.chmod(0o770)
    return folder


@pytest.mark.parametrize(
    ("user", "ok"),
    [
        ("--user 1001:2000", True),  # the explicit gid
        ("--user 1001:1001 --group-add 2000", True),  # a supplementary group
        ("--user 1001", False),  # a uid the image does not know: gid 0, no other groups
        ("--user 1001:1001", False),
    ],
    ids=["gid", "group-add", "uid-only", "other-gid"],
)
def test_a_mount_is_checked_with_the_containers_groups(w: World, user: str, ok: bool) -> None:
    label = user.replace(" ", "_").replace(":", "-")
    folder = _shared(w, label, 2000)
    code, out = _docker(w, label, f'docker run --rm {user} -v "{folder}:/out:rw" alpine true')
    assert (code == 0) is ok, out


def test_the_images_own_user_writes_with_its_group(w: World) -> None:
    # zap (uid 1000, group zap 1000): a folder of group 1000, mode 0770, is writable by it;
    # the daemon starts the container's process as that user, whoever runs docker
    folder = _shared(w, "zap", 1000)
    code, out = _docker(w, "zap", f'docker run --rm -v "{folder}:/zap/wrk:rw" zaproxy/zap-stable')
    assert (code, out) == (0, "")
    report = folder / "zap-report.json"
    assert (report.stat().st_uid, report.stat().st_gid) == (1000, 1000)
