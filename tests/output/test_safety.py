"""Safe in any repository: pipecompile never touches what is not its own, and check is
green only when the tree is exactly what pipeline.yaml generates (issue 13)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.output.paths import Tree
from tests.conftest import ROOT, build_sample, remove_order_service, snapshot_tree

MANIFEST = ".pipecompile/manifest.json"
JOURNAL = ".pipecompile/journal.json"


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return build_sample("ecommerce", tmp_path / "repo")


def run(root: Path, *args: str) -> int:
    return cli.main([*args, "-f", str(root / "pipeline.yaml")])


def edit_pipeline(root: Path, old: str, new: str) -> None:
    p = root / "pipeline.yaml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def outside_tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


# -- symbolic links ------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline_changed", [False, True], ids=["fast-path", "full"])
def test_a_symlinked_service_folder_is_never_written_through(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pipeline_changed: bool
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "values-testing.yaml").write_text("foreign\n")
    shutil.rmtree(repo / "kubernetes/apps/order-service")
    (repo / "kubernetes/apps/order-service").symlink_to(outside)
    if pipeline_changed:
        edit_pipeline(repo, "port: 8080", "port: 8081")
    assert run(repo, "check") == 1  # the fast path must not vouch for a link
    out = capsys.readouterr().out
    assert "conflict: kubernetes/apps/order-service/values-testing.yaml: " in out
    assert "'kubernetes/apps/order-service' is a symbolic link" in out
    assert run(repo, "build") == 1
    err = capsys.readouterr().err
    generated = ROOT / "samples/ecommerce/kubernetes/apps/order-service"
    files_there = [p for p in generated.rglob("*") if p.is_file()]
    assert err.count("conflict: kubernetes/apps/order-service/") == len(files_there) == 4
    assert outside_tree(outside) == {"values-testing.yaml": b"foreign\n"}
    assert run(repo, "check") == 1  # and still not green afterwards


def test_a_symlinked_generated_file_is_not_replaced(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "elsewhere.yml"
    target.write_text("mine\n")
    link = repo / ".github/workflows/ci-order-service.yml"
    link.unlink()
    link.symlink_to(target)
    assert run(repo, "build", "--force") == 1
    assert "pipecompile never writes through one" in capsys.readouterr().err
    assert link.is_symlink() and target.read_text() == "mine\n"


@pytest.mark.parametrize(
    "link", ["kubernetes/apps", "kubernetes"], ids=["output-folder", "its-parent"]
)
def test_a_symlinked_output_folder_is_a_located_error(
    repo: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    real = repo / "real"
    (repo / link).rename(real)
    (repo / link).symlink_to(real)
    before = snapshot_tree(real)
    assert run(repo, "build") == 2
    err = capsys.readouterr().err
    line = (repo / "pipeline.yaml").read_text().split("\n").index("  helm: kubernetes/apps") + 1
    assert (
        f"pipeline.yaml:{line}:9: PC203 outputs.helm: 'kubernetes/apps' is reached through the "
        f"symbolic link '{link}'"
    ) in err
    assert snapshot_tree(real) == before


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        (".git/hooks", "lies inside .git"),
        ("sub/.git", "lies inside .git"),
        (".pipecompile/x", "lies inside .pipecompile"),
        (".Pipecompile", "lies inside .pipecompile"),  # the state folder on macOS, Windows
        (".", "is the folder holding the pipeline file itself"),
    ],
)
def test_outputs_cannot_point_into_git_or_state(
    repo: Path, capsys: pytest.CaptureFixture[str], folder: str, problem: str
) -> None:
    edit_pipeline(repo, "  helm: kubernetes/apps", f"  helm: '{folder}'")
    assert run(repo, "validate") == 2
    err = capsys.readouterr().err
    assert f"outputs.helm: '{folder}' {problem}" in err


def test_a_symlinked_state_folder_is_refused(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "state"
    (repo / ".pipecompile").rename(outside)
    (repo / ".pipecompile").symlink_to(outside)
    before = outside_tree(outside)
    for command in ("build", "check"):
        assert run(repo, command) == 2
        err = capsys.readouterr().err
        assert "error: .pipecompile: is a symbolic link" in err
        assert "to recover: remove the link" in err
    assert outside_tree(outside) == before


# -- the manifest is untrusted input -------------------------------------------------------


def _poison(root: Path, path: str, sha_of: Path | None = None, **extra: object) -> None:
    import hashlib

    data = json.loads((root / MANIFEST).read_text())
    digest = hashlib.sha256(sha_of.read_bytes()).hexdigest() if sha_of else "0" * 64
    data["files"][path] = {"target": "helm", "sha256": digest}
    data.update(extra)
    (root / MANIFEST).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../outside.txt", "is not normalised"),
        (".git/config", "lies inside .git"),
        ("README.md", "outside the helm output folder 'kubernetes/apps'"),
        ("kubernetes/apps/../../README.md", "is not normalised"),
        ("/ABSOLUTE", "is absolute"),
        ("kubernetes/apps/a\x00b", "contains a control character"),
    ],
)
@pytest.mark.parametrize("force", [False, True])
def test_a_poisoned_manifest_deletes_nothing(
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: str,
    problem: str,
    force: bool,
) -> None:
    (tmp_path / "outside.txt").write_text("keep me\n")
    (repo / ".git").mkdir()
    (repo / ".git/config").write_text("[core]\n")
    (repo / "README.md").write_text("# readme\n")
    victim = {
        "../outside.txt": tmp_path / "outside.txt",
        ".git/config": repo / ".git/config",
        "README.md": repo / "README.md",
    }.get(path)
    if path == "/ABSOLUTE":
        path = str(tmp_path / "outside.txt")
        victim = tmp_path / "outside.txt"
    _poison(repo, path, sha_of=victim)  # a correct hash, as an attacker would write
    before = {p: p.read_bytes() for p in (tmp_path / "outside.txt", *repo.glob("*.md"))}
    for command in ("build", "check"):
        assert run(repo, command, *(["--force"] if force and command == "build" else [])) == 2
        err = capsys.readouterr().err
        assert f"error: .pipecompile/manifest.json:1: files: {path!r} {problem}" in err or (
            f"files[{path!r}]: {problem}" in err
        ), err
        assert "to recover: delete it and run pipecompile build" in err
    assert {p: p.read_bytes() for p in before} == before
    assert (repo / ".git/config").read_text() == "[core]\n"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", ":1: line 1 column 2: invalid JSON"),
        (b'{"files": [], "inputs": {}, "pipecompile": "0.1.0"}', ":1: 'files' must be an object"),
        (b'{"files": {}, "inputs": {}, "pipecompile": 7}', ":1: 'pipecompile' must be a version"),
        (b"[" * 100_000 + b"]" * 100_000, ": nested deeper than 16 levels"),
        (b"\xff\xfe", ": invalid UTF-8"),
        (b'{"files": {}, "inputs": {}, "pipecompile": "0.1.0", "x": 1}', ":1: unknown key 'x'"),
        (
            b'{"files": {}, "format": 2, "inputs": {},\n "outputs": {"helm": "."},'
            b' "pipecompile": "0.1.0"}',
            ":2: outputs.helm: '.' is not normalised",
        ),
    ],
)
def test_a_bad_manifest_is_a_clear_error_never_ignored(
    repo: Path, capsys: pytest.CaptureFixture[str], raw: bytes, problem: str
) -> None:
    (repo / MANIFEST).write_bytes(raw)
    before = snapshot_tree(repo)
    for command in ("build", "check", "diff"):
        assert run(repo, command) == 2, command
        err = capsys.readouterr().err
        assert f"error: .pipecompile/manifest.json{problem}" in err, err
        assert "Traceback" not in err and "internal error" not in err
    assert snapshot_tree(repo) == before


def test_a_manifest_over_the_size_limit_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecompile.output import state

    monkeypatch.setattr(state, "MAX_STATE_BYTES", 100)
    assert run(repo, "check") == 2
    assert "manifest.json: larger than 100 bytes" in capsys.readouterr().err


def test_a_deleted_manifest_is_rebuilt_from_the_headers(repo: Path) -> None:
    (repo / MANIFEST).unlink()
    remove_order_service(repo / "pipeline.yaml")
    assert run(repo, "check") == 1
    assert run(repo, "build", "-q") == 0
    # the removed service's files carried this pipeline's header: found and removed
    assert not list(repo.rglob("*order-service*"))
    assert run(repo, "check") == 0


# -- check is green only on the exact tree -------------------------------------------------


def test_disabling_a_target_removes_its_files(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_pipeline(repo, "  helm: kubernetes/apps\n", "")
    capsys.readouterr()
    assert run(repo, "check") == 1
    out = capsys.readouterr().out
    assert "stale: kubernetes/apps/order-service/values-production.yaml" in out
    assert run(repo, "build", "-q") == 0
    assert not (repo / "kubernetes/apps").exists()
    assert run(repo, "check") == 0
    manifest = json.loads((repo / MANIFEST).read_text())
    assert "helm" not in manifest["outputs"]
    assert not [p for p in manifest["files"] if p.startswith("kubernetes/apps/")]


@pytest.mark.parametrize("header", ["kept", "removed"])
def test_a_stale_file_edited_by_hand_is_reported_until_resolved(
    repo: Path, capsys: pytest.CaptureFixture[str], header: str
) -> None:
    path = repo / "kubernetes/apps/order-service/values-testing.yaml"
    text = path.read_text()
    path.write_text(text + "# mine\n" if header == "kept" else text.split("\n", 3)[3])
    remove_order_service(repo / "pipeline.yaml")
    for _ in range(2):  # not forgotten after the first build
        assert run(repo, "build", "-q") == 1
        assert "kept: kubernetes/apps/order-service/values-testing.yaml" in capsys.readouterr().err
        assert path.exists()
        assert run(repo, "check") == 1
        assert "stale (kept): kubernetes/apps/order-service/values-testing.yaml" in (
            capsys.readouterr().out
        )
    assert run(repo, "build", "-q", "--force") == (0 if header == "kept" else 1)
    # --force removes only a file that still carries the pipecompile header
    assert path.exists() == (header == "removed")
    if header == "removed":
        path.unlink()
        # deleting it resolves it: green at once, though the manifest still remembers it
        assert json.loads((repo / MANIFEST).read_text())["kept"] == {
            "kubernetes/apps/order-service/values-testing.yaml": "helm"
        }
        assert run(repo, "check") == 0
        assert run(repo, "build", "-q") == 0
    assert json.loads((repo / MANIFEST).read_text())["kept"] == {}
    assert run(repo, "check") == 0


# -- crash safety --------------------------------------------------------------------------


def test_kill_9_leaves_nothing_the_next_build_does_not_clean(repo: Path) -> None:
    original = (repo / "pipeline.yaml").read_text()
    edit_pipeline(
        repo,
        "\nnotifications:",
        "\n  cart-service:\n    path: services/cart\n\nnotifications:",
    )
    edit_pipeline(repo, "port: 8080", "port: 8081")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies by SIGKILL
        real = os.replace
        calls = []

        def replace(*args: object, **kwargs: object) -> None:
            calls.append(1)
            if len(calls) == 5:  # the fifth file: its temporary file is written
                os.kill(os.getpid(), signal.SIGKILL)
            real(*args, **kwargs)  # type: ignore[arg-type]

        os.replace = replace  # type: ignore[assignment]
        run(repo, "build", "-q")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert (repo / JOURNAL).exists()
    debris = list(repo.rglob("*.pipecompile-tmp"))
    assert len(debris) == 1
    orphan = repo / ".github/workflows/ci-cart-service.yml"
    assert orphan.exists()  # written by the killed build, not in the manifest
    # the user gives up on the change: everything the killed build wrote must go
    (repo / "pipeline.yaml").write_text(original)
    assert run(repo, "check") == 1
    assert run(repo, "build", "-q") == 0
    assert not orphan.exists() and not list(repo.rglob("*cart-service*"))
    assert not list(repo.rglob("*.pipecompile-tmp")) and not (repo / JOURNAL).exists()
    assert run(repo, "check") == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_writing_says_what_was_written(
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
) -> None:
    manifest = (repo / MANIFEST).read_bytes()
    # a port: eight files (the build's timeout reaches only ci.yml and codebuild.tf now)
    edit_pipeline(repo, "    port: 3000\n", "    port: 3001\n")
    real, calls = Tree.write, []

    def write(self: Tree, dfd: int, rel: str, data: bytes) -> None:
        if rel != JOURNAL:
            calls.append(rel)
        if len(calls) == 3 and rel != JOURNAL:
            os.kill(os.getpid(), signum)  # handled between two files
        real(self, dfd, rel, data)

    monkeypatch.setattr(Tree, "write", write)
    assert run(repo, "build", "-q") == 128 + signum
    err = capsys.readouterr().err
    assert f"interrupted ({signum.name}) after 3 of " in err
    assert "the manifest was not updated" in err and "run pipecompile build to finish" in err
    assert len(calls) == 3
    assert (repo / MANIFEST).read_bytes() == manifest and (repo / JOURNAL).exists()
    monkeypatch.setattr(Tree, "write", real)
    assert run(repo, "check") == 1
    assert run(repo, "build", "-q") == 0 and run(repo, "check") == 0


def test_sigint_before_writing_says_nothing_was_written(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecompile import jobs

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    edit_pipeline(repo, "timeout_minutes: 30", "timeout_minutes: 45")
    before = snapshot_tree(repo)
    monkeypatch.setattr(jobs, "render", interrupted)
    assert run(repo, "build") == 130
    assert "interrupted (SIGINT) before writing; nothing was written" in capsys.readouterr().err
    assert snapshot_tree(repo) == before


# -- bounded inputs and smaller gaps -------------------------------------------------------


def test_updating_a_file_keeps_its_mode_and_group(repo: Path) -> None:
    path = repo / ".github/workflows/ci.yml"  # the CI job's timeout is ci.yml's
    os.chmod(path, 0o750)
    if os.geteuid() == 0:
        os.chown(path, -1, 1)
    edit_pipeline(repo, "timeout_minutes: 30", "timeout_minutes: 45")
    assert run(repo, "build", "-q") == 0
    st = path.stat()
    assert "timeout-minutes: 45" in path.read_text()
    assert st.st_mode & 0o7777 == 0o750
    if os.geteuid() == 0:
        assert st.st_gid == 1


@pytest.mark.parametrize(
    ("lock", "problem"),
    [
        (b'{"actions": "x"}', "pipecompile.lock:1:2: PC108 actions: expected an object"),
        (b'{"actions": []}', "pipecompile.lock:1:2: PC108 actions: expected an object"),
        (b'{"actions": null}', "pipecompile.lock:1:2: PC108 actions: expected an object"),
        (
            b'{"actions": {},\n "actions": {}}',
            'pipecompile.lock:2:2: PC108 the key "actions" appears twice',
        ),
        (b'{"actions": ' * 50 + b"{}" + b"}" * 50, "nested deeper than 4 levels"),
        (b"[" * 100_000, "nested deeper than 4 levels"),
        (b"x" * (1024 * 1024 + 1), "larger than 1,048,576 bytes"),
    ],
)
def test_a_bad_lock_is_a_located_error(
    repo: Path, capsys: pytest.CaptureFixture[str], lock: bytes, problem: str
) -> None:
    (repo / "pipecompile.lock").write_bytes(lock)
    for command in ("validate", "build", "check"):
        assert run(repo, command) == 2, command
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err, err


def test_an_endless_pipeline_file_is_read_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    # a device is refused before the first read (regular files only: review F5)
    assert cli.main(["validate", "-f", "/dev/zero"]) == 2
    assert "/dev/zero:1:1: PC101 is not a regular file (a FIFO, socket or device)" in (
        capsys.readouterr().err
    )


def test_a_large_pipeline_file_is_read_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "pipeline.yaml"
    big.write_bytes(b"#" * (4 << 20))
    assert cli.main(["validate", "-f", str(big)]) == 2
    assert "larger than 1,048,576 bytes" in capsys.readouterr().err


def test_control_characters_in_messages_are_escaped(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_pipeline(repo, "\nnotifications:", '\n"\\e]0;owned\\a\\e[31mevil": 1\nnotifications:')
    assert run(repo, "validate") == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b]0;owned\\x07\\x1b[31mevil" in err


def test_an_unreadable_pipeline_file_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # (as root every file is readable: the refusal an ordinary user gets is simulated at
    # the one call that opens it)
    import errno

    from pipecompile.output import state

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("version: 1\n")
    real = os.open

    def refuse(path: str, flags: int, *args: int) -> int:
        if str(path) == str(pipeline):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(state.os, "open", refuse)
    for command in ("validate", "build", "check"):
        assert cli.main([command, "-f", str(pipeline)]) == 2, command
        err = capsys.readouterr().err
        assert f"{pipeline}:1:1: PC101 cannot read: Permission denied" in err, err
        assert "Traceback" not in err
