"""The docker stub refuses what the docker client and ECR refuse: a login with anything
but the token ECR issued, a docker run flag it does not know (the stub names sources)."""

from __future__ import annotations

from collections.abc import Iterator

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
