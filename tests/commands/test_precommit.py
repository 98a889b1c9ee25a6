"""The pre-commit hooks, run by the real pre-commit framework, offline.

The hooks come from a snapshot of this working tree (its tracked files, committed in
a scratch repository), so one pre-commit environment serves every run of a test
(``try-repo`` would install a new one per call). scripts/test prepares
``.wheelhouse`` (this project and its dependencies as wheels) so that pre-commit's
own ``pip install`` needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

WHEELHOUSE = ROOT / ".wheelhouse"
pytestmark = pytest.mark.skipif(
    not any(WHEELHOUSE.glob("pipecompile-*.whl")) and not os.environ.get("CI"),
    reason="run scripts/test to prepare the offline wheelhouse",
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def hook_repository(tmp: Path) -> tuple[Path, str]:
    """This working tree's tracked files (symlinks kept), committed: (path, commit)."""
    snapshot = tmp / "hooks-src"
    for rel in git(ROOT, "ls-files", "-z").split("\0"):
        if not rel:
            continue
        src, dst = ROOT / rel, snapshot / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    git(snapshot, "init", "-q")
    git(snapshot, "add", "-A")
    git(snapshot, "commit", "-q", "-m", "snapshot")
    return snapshot, git(snapshot, "rev-parse", "HEAD")


class PreCommit:
    """``pre-commit run`` in ``repo`` with the hooks of this working tree."""

    def __init__(self, repo: Path, tmp: Path, hooks: str) -> None:
        source, rev = hook_repository(tmp)
        (repo / ".pre-commit-config.yaml").write_text(
            f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n{hooks}"
        )
        self.repo = repo
        self.env = {
            **os.environ,
            "PRE_COMMIT_HOME": str(tmp / "cache"),
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(WHEELHOUSE),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }

    def run(self, hook: str | None = None) -> subprocess.CompletedProcess[str]:
        pre_commit = str(Path(sys.executable).parent / "pre-commit")
        return subprocess.run(
            [pre_commit, "run", *([hook] if hook else []), "--all-files"],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )


def test_hooks_in_a_real_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "samples/ecommerce/pipeline.yaml", repo / "pipeline.yaml")
    subprocess.run([sys.executable, "-m", "pipecompile", "build", "-q"], cwd=repo, check=True)
    hooks = PreCommit(repo, tmp_path, "      - id: pipecompile\n      - id: pipecompile-check\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")

    # a clean repository passes both hooks
    for hook in ("pipecompile", "pipecompile-check"):
        res = hooks.run(hook)
        assert res.returncode == 0, res.stdout + res.stderr

    # pipeline.yaml edited without regenerating: check fails, build regenerates and fails
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    res = hooks.run("pipecompile-check")
    assert res.returncode == 1 and "pipeline changed" in res.stdout, res.stdout
    res = hooks.run("pipecompile")
    assert res.returncode == 1 and "files were modified by this hook" in res.stdout, res.stdout
    assert "timeout-minutes: 45" in (repo / ".github/workflows/ci.yml").read_text()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "regenerate")
    assert hooks.run("pipecompile-check").returncode == 0

    # a hand edit of a generated file fails the check
    values = repo / "kubernetes/apps/order-service/values-production.yaml"
    values.write_text(values.read_text().replace("replicaCount: 1", "replicaCount: 9"))
    git(repo, "add", "-A")
    res = hooks.run("pipecompile-check")
    assert res.returncode == 1 and "hand edit" in res.stdout, res.stdout


def test_the_hook_runs_on_a_pipeline_in_a_subfolder(tmp_path: Path) -> None:
    """The README's snippet for a pipeline outside the root: args: [-f, ...], files: ..."""
    repo = tmp_path / "repo"
    shop = repo / "services/shop"
    shop.mkdir(parents=True)
    shutil.copy(ROOT / "samples/minimal/pipeline.yaml", shop / "pipeline.yaml")
    # built inside the repository: headers name the pipeline by its path from its root
    git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "pipecompile", "build", "-q"], cwd=shop, check=True)
    assert "from services/shop/pipeline.yaml." in (shop / "ci/codebuild/build.yml").read_text()
    hooks = PreCommit(
        repo,
        tmp_path,
        "      - id: pipecompile-check\n"
        "        args: [-f, services/shop/pipeline.yaml]\n"
        "        files: ^services/shop/\n",
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    clean = hooks.run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    pipeline = shop / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("web: {}", "web:\n    port: 8081"))
    git(repo, "add", "-A")
    changed = hooks.run()
    assert changed.returncode == 1 and "pipeline changed" in changed.stdout, changed.stdout
