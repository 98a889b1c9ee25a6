"""The pre-commit hooks, run by the real pre-commit framework (try-repo), offline.

scripts/test prepares ``.wheelhouse`` (this project and its dependencies as wheels)
so that pre-commit's own ``pip install`` needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

WHEELHOUSE = ROOT / ".wheelhouse"
pytestmark = pytest.mark.skipif(
    not any(WHEELHOUSE.glob("pipecompile-*.whl")) and not os.environ.get("CI"),
    reason="run scripts/test to prepare the offline wheelhouse",
)


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def try_repo(repo: Path, hook: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    return subprocess.run(
        [pre_commit, "try-repo", str(ROOT), hook, "--all-files"],
        cwd=repo,
        env=env,
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
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    # a clean repository passes both hooks
    for hook in ("pipecompile", "pipecompile-check"):
        res = try_repo(repo, hook, env)
        assert res.returncode == 0, res.stdout + res.stderr

    # pipeline.yaml edited without regenerating: check fails, build regenerates and fails
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    res = try_repo(repo, "pipecompile-check", env)
    assert res.returncode == 1 and "pipeline changed" in res.stdout, res.stdout
    res = try_repo(repo, "pipecompile", env)
    assert res.returncode == 1 and "files were modified by this hook" in res.stdout, res.stdout
    assert "timeout-minutes: 45" in (repo / ".github/workflows/ci-order-service.yml").read_text()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "regenerate")
    assert try_repo(repo, "pipecompile-check", env).returncode == 0

    # a hand edit of a generated file fails the check
    values = repo / "kubernetes/apps/order-service/values-production.yaml"
    values.write_text(values.read_text().replace("replicaCount: 1", "replicaCount: 9"))
    git(repo, "add", "-A")
    res = try_repo(repo, "pipecompile-check", env)
    assert res.returncode == 1 and "hand edit" in res.stdout, res.stdout


def test_the_hook_runs_on_a_pipeline_in_a_subfolder(tmp_path: Path) -> None:
    """The README's snippet for a pipeline outside the root: args: [-f, ...], files: ..."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    repo = tmp_path / "repo"
    shop = repo / "services/shop"
    shop.mkdir(parents=True)
    shutil.copy(ROOT / "samples/minimal/pipeline.yaml", shop / "pipeline.yaml")
    subprocess.run([sys.executable, "-m", "pipecompile", "build", "-q"], cwd=shop, check=True)
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {ROOT}\n"
        f"    rev: {head}\n"
        "    hooks:\n"
        "      - id: pipecompile-check\n"
        "        args: [-f, services/shop/pipeline.yaml]\n"
        "        files: ^services/shop/\n"
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    pre_commit = str(Path(sys.executable).parent / "pre-commit")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [pre_commit, "run", "--all-files"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    clean = run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    pipeline = shop / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("web: {}", "web:\n    port: 8081"))
    git(repo, "add", "-A")
    changed = run()
    assert changed.returncode == 1 and "pipeline changed" in changed.stdout, changed.stdout
