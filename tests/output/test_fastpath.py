"""check's no-change fast path must agree with the full render-and-compare."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipecompile.session import Session
from tests.conftest import DRIFTS, build_sample, hand_edit, planned


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_fast_path_agrees_with_full_check(drift: str, tmp_path: Path) -> None:
    root = build_sample("ecommerce", tmp_path)
    DRIFTS[drift](root)
    fast = Session.open(root / "pipeline.yaml").fast_clean()
    changes = planned(root / "pipeline.yaml")
    full_clean = not changes
    if drift == "none":
        assert fast and full_clean
    elif drift == "lock-changed":
        # the lock changes no output yet (pins arrive with the lock issue): the fast
        # path must still refuse to vouch for it, and the full check decides.
        assert not fast and full_clean
    else:
        assert not fast and not full_clean


def _warm(root: Path, *, settled: bool = True) -> Path:
    """The stat cache a build left, dated after every file's last change (settled) or
    before it (racily clean)."""
    cache = root / ".pipecompile/stat.cache"
    assert cache.is_file()  # written by the build
    when = time.time_ns() + (60 if settled else -3600) * 10**9
    os.utime(cache, ns=(when, when))
    return cache


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_a_warm_stat_cache_agrees_with_full_check(drift: str, tmp_path: Path) -> None:
    root = build_sample("ecommerce", tmp_path)
    _warm(root)
    DRIFTS[drift](root)
    fast = Session.open(root / "pipeline.yaml").fast_clean()
    full_clean = not planned(root / "pipeline.yaml")
    assert fast == (drift == "none")
    assert full_clean == (drift in ("none", "lock-changed"))


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from pipecompile.output import fastpath

    seen: list[str] = []
    real = fastpath.read_file

    def counting(root: str, rel: str, limit: int = -1) -> bytes | None:
        seen.append(rel)
        return real(root, rel, limit)

    monkeypatch.setattr(fastpath, "read_file", counting)
    return seen


def test_the_stat_cache_spares_reading_unchanged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_sample("ecommerce", tmp_path)
    _warm(root)
    reads = _reads(monkeypatch)
    assert Session.open(root / "pipeline.yaml").fast_clean()
    assert reads == []  # every generated file vouched for by its stat data


def test_only_a_build_writes_the_stat_cache(tmp_path: Path) -> None:
    from pipecompile.commands.cli import main

    root = build_sample("ecommerce", tmp_path)
    cache = root / ".pipecompile/stat.cache"
    cache.unlink()
    for command in ("check", "diff"):
        assert main([command, "-q", "-f", str(root / "pipeline.yaml")]) == 0
        assert not cache.exists(), command
    assert main(["build", "-q", "-f", str(root / "pipeline.yaml")]) == 0  # no change
    assert cache.is_file()


def test_a_racily_clean_cache_entry_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # files that changed after (or in the tick of) the cache's writing are re-hashed
    root = build_sample("ecommerce", tmp_path)
    _warm(root, settled=False)
    reads = _reads(monkeypatch)
    assert Session.open(root / "pipeline.yaml").fast_clean()
    assert len(reads) >= 50


def test_an_edit_that_keeps_size_and_mtime_is_seen(tmp_path: Path) -> None:
    # the ctime, which no user call sets, still moves: the file is read again
    root = build_sample("ecommerce", tmp_path)
    _warm(root)
    p = root / "kubernetes/apps/order-service/values-testing.yaml"
    before = p.stat()
    p.write_text(p.read_text().replace("replicaCount: 1", "replicaCount: 9"))
    os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert p.stat().st_size == before.st_size and p.stat().st_mtime_ns == before.st_mtime_ns
    assert not Session.open(root / "pipeline.yaml").fast_clean()
    assert [c.reason for c in planned(root / "pipeline.yaml")] == ["hand edit"]


@pytest.mark.parametrize(
    "cache",
    [b"", b"garbage\n", b"pipecompile-stat-cache 1 " + b"0" * 64 + b"\n", b"\xff" * 100],
)
def test_a_bad_or_foreign_stat_cache_is_ignored(tmp_path: Path, cache: bytes) -> None:
    root = build_sample("ecommerce", tmp_path)
    hand_edit(root)
    (root / ".pipecompile/stat.cache").write_bytes(cache)
    assert not Session.open(root / "pipeline.yaml").fast_clean()


def test_the_stat_cache_journal_and_temporary_files_are_never_committed(tmp_path: Path) -> None:
    import subprocess

    root = build_sample("ecommerce", tmp_path)
    _warm(root)
    # what a build killed mid-way leaves: its journal and temporary files (each is
    # only for this checkout's next build, never for a commit)
    state = root / ".pipecompile"
    for name in (
        "journal.json",
        ".journal.json.pipecompile-tmp",
        ".manifest.json.pipecompile-tmp",
        ".stat.cache.4242.tmp",
        ".gitignore.4242.tmp",
    ):
        (state / name).write_text("{}\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    tracked = subprocess.run(
        [*git, "ls-files", ".pipecompile"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert tracked == [".pipecompile/.gitignore", ".pipecompile/manifest.json"]


def test_a_changed_generator_is_never_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same version number, different code (a development install): full check decides."""
    from pipecompile.output import header

    root = build_sample("ecommerce", tmp_path)
    assert Session.open(root / "pipeline.yaml").fast_clean()
    monkeypatch.setattr(header, "code_fingerprint", lambda: "another generator")
    assert not Session.open(root / "pipeline.yaml").fast_clean()
    hand_edit(root)
    changes = planned(root / "pipeline.yaml")
    assert [c.reason for c in changes] == ["hand edit"]


HEAVY = ("pydantic", "ruamel", "jsonschema", "deepdiff", "jinja2", "pipecompile.ir")


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    import subprocess
    import sys

    code = (
        "import sys\nfrom pipecompile.commands.cli import main\n"
        f"status = main({args!r})\nprint('MODULES', status, *sorted(sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.split()
    at = out.index("MODULES")
    assert out[at + 1] == "0", out[: at + 2]
    return set(out[at + 2 :])


def test_the_no_change_path_imports_nothing_heavy(tmp_path: Path) -> None:
    root = build_sample("ecommerce", tmp_path)
    for args in (["check"], ["build", "-q"], ["--version"]):
        loaded = _modules_after(args, root)
        assert "click" in loaded, args  # the command ran (and exited 0)
        heavy = sorted(m for m in loaded if m.startswith(HEAVY))
        assert heavy == [], (args, heavy)
    # the detection itself works: a command that compiles loads the compiler
    loaded = _modules_after(["validate"], root)
    assert "pydantic" in loaded and "pipecompile.ir" in loaded


def test_the_entry_point_answers_a_clean_check_without_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = build_sample("ecommerce", tmp_path)
    probe = (
        "import sys; from pipecompile._entry import _fast_check; "
        "print(_fast_check(sys.argv[1:]), 'click' in sys.modules)"
    )

    def fast(*args: str) -> str:
        res = subprocess.run(
            [sys.executable, "-c", probe, *args], cwd=root, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        return res.stdout.strip().splitlines()[-1]

    assert fast("-q") == "0 False"  # clean: answered, click never imported
    assert fast("-f", "pipeline.yaml") == "0 False"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True
    ).stdout
    assert out.splitlines()[0] == "check: pipeline.yaml: the generated files are up to date"
    for args in (["--diff"], ["--format", "json"], ["-f"], ["--help"]):
        assert fast(*args) == "None False"  # anything else: the full command line
    hand_edit(root)
    assert fast("-q") == "None False"  # not clean: the full check says why


def test_an_edit_racing_the_cache_refresh_is_never_recorded_as_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the edit lands after the file was read (and its hash matched): what the cache
    # records must be the stat data from before the read, so the next check reads again
    from pipecompile.output import fastpath

    root = build_sample("ecommerce", tmp_path)
    (root / ".pipecompile/stat.cache").unlink()
    target = root / "kubernetes/apps/order-service/values-testing.yaml"
    real = fastpath.read_file

    def read_then_edit(base: str, rel: str, limit: int = -1) -> bytes | None:
        data = real(base, rel, limit)
        if rel.endswith("order-service/values-testing.yaml"):
            target.write_text(target.read_text().replace("replicaCount: 1", "replicaCount: 7"))
        return data

    monkeypatch.setattr(fastpath, "read_file", read_then_edit)
    assert Session.open(root / "pipeline.yaml").fast_clean(refresh=True)  # it read the old bytes
    monkeypatch.setattr(fastpath, "read_file", real)
    _warm(root)  # the cache now dated after every change: only its stat data can save it
    assert not Session.open(root / "pipeline.yaml").fast_clean()
    assert [c.reason for c in planned(root / "pipeline.yaml")] == ["hand edit"]


@pytest.mark.parametrize("name", ["stat.cache", "build.lock", ".gitignore"])
def test_a_fifo_in_the_state_folder_never_hangs(tmp_path: Path, name: str) -> None:
    import subprocess
    import sys

    root = build_sample("ecommerce", tmp_path)
    state = root / ".pipecompile" / name
    state.unlink()
    os.mkfifo(state)
    for command in ("check", "build"):
        done = subprocess.run(
            [sys.executable, "-m", "pipecompile", command, "-q", "-f", str(root / "pipeline.yaml")],
            capture_output=True,
            text=True,
            timeout=120,  # a hang fails here (the run itself takes about a second)
        )
        assert "Traceback" not in done.stderr and done.returncode in (0, 1, 4), done.stderr
    assert not list((root / ".pipecompile").glob("*.tmp"))
