from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from pipecompile.commands.cli import main
from pipecompile.output.change import Change


@pytest.fixture(autouse=True)
def _not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees the same environment, in CI or not: `check` renders in full when
    CI is set (a manifest can be forged), so a test that means CI sets it itself."""
    monkeypatch.delenv("CI", raising=False)


ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "tests" / "schemas"
SAMPLES = sorted(p.parent.name for p in (ROOT / "samples").glob("*/pipeline.yaml"))


def build_sample(sample: str, dest: Path) -> Path:
    """Copy a sample's pipeline.yaml into ``dest`` and build it there."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "samples" / sample / "pipeline.yaml", dest / "pipeline.yaml")
    assert main(["build", "-q", "-f", str(dest / "pipeline.yaml")]) == 0
    return dest


ORDER_SERVICE = (
    "  order-service:\n    path: services/order\n"
    "    image: ecommerce/order-service\n    port: 8080\n"
)


def remove_order_service(pipeline: Path) -> None:
    """Drop the reference's order-service, so that its generated files go stale."""
    text = pipeline.read_text()
    assert ORDER_SERVICE in text
    pipeline.write_text(text.replace(ORDER_SERVICE, ""))


def snapshot_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and mtime (to prove a build left it alone).

    Not the stat cache: it records this machine's inodes and times, a build rewrites
    it, and it is never committed (tests/output/test_fastpath.py: only a build writes it)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "stat.cache"
    }


def planned(pipeline: Path) -> list[Change]:
    """The changes a full build would make (render-and-compare, writing nothing)."""
    from pipecompile.session import Session

    return Session.open(pipeline).plan().changes


def hand_edit(root: Path) -> None:
    p = root / "kubernetes/apps/order-service/values-testing.yaml"
    p.write_text(p.read_text().replace("replicaCount: 1", "replicaCount: 2"))


def _delete(root: Path) -> None:
    (root / "ci/codebuild/deploy.yml").unlink()


def _pipeline_change(root: Path) -> None:
    p = root / "pipeline.yaml"
    p.write_text(p.read_text().replace("port: 3000", "port: 3001"))


def _stale(root: Path) -> None:
    p = root / "pipeline.yaml"
    p.write_text(
        p.read_text().replace("    secrets: [ecommerce/product-service/database-url]\n", "")
    )
    remove_order_service(p)


def _version_skew(root: Path) -> None:
    p = root / "ci/codebuild/deploy.yml"
    p.write_text(p.read_text().replace("# pipecompile 0.1.0 ", "# pipecompile 0.0.9 "))


def _lock_added(root: Path) -> None:
    (root / "pipecompile.lock").write_text("{}\n")


def _nothing(root: Path) -> None:
    pass


DRIFTS: dict[str, Callable[[Path], None]] = {
    "none": _nothing,
    "hand-edit": hand_edit,
    "missing": _delete,
    "pipeline-changed": _pipeline_change,
    "stale": _stale,
    "version-skew": _version_skew,
    "lock-changed": _lock_added,
}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every sample built once, at its own path in a temporary git repository (headers
    name the pipeline by its path from the repository root, as in this one)."""
    out = {}
    for s in SAMPLES:
        repo = tmp_path_factory.mktemp(s)
        git(repo, "init", "-q")
        out[s] = build_sample(s, repo / "samples" / s)
    return out


class TextFile(SingleFileSnapshotExtension):
    """Snapshots stored as one readable text file each."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


@cache
def validator(schema_file: str, *pointer: str) -> Any:
    """A JSON-schema validator for ``tests/schemas/<schema_file>`` (at ``pointer`` inside
    it), built once per session: building one for the large CRD schemas is the slow part."""
    import jsonschema

    schema = json.loads((SCHEMAS / schema_file).read_text())
    for key in pointer:
        schema = schema[key]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def hcl_norm(v: Any) -> Any:
    """python-hcl2 8 keeps the quotes of labels and string literals and adds
    ``__is_block__`` and ``__comments__`` keys; drop them."""
    if isinstance(v, dict):
        return {k.strip('"'): hcl_norm(x) for k, x in v.items() if not k.startswith("__")}
    if isinstance(v, list):
        return [hcl_norm(x) for x in v]
    return v.strip('"') if isinstance(v, str) else v


def terraform_blocks(root: Path, tf: str = "infrastructure/terraform/cicd") -> dict[str, Any]:
    """The resource and data blocks of a built root's Terraform, merged across files."""
    import hcl2

    merged: dict[str, Any] = {"resource": [], "data": []}
    for p in files(root, tf, "*.tf"):
        with p.open() as fh:
            parsed = hcl_norm(hcl2.load(fh))
        for key in ("resource", "data"):
            merged[key] += parsed.get(key, [])
    return merged


def as_github_delivered(text: str) -> str:
    """A pipeline text switched to delivery: github-actions (without the codebuild output)."""
    text = text.replace("\nproject: ", "\ndelivery: github-actions\nproject: ", 1)
    return text.replace("  codebuild: ci/codebuild\n", "")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def scratch_gitops(tmp: Path) -> Path:
    """A bare GitOps repository with one commit, as the deployers' scripts clone it."""
    seed = tmp / "seed"
    seed.mkdir()
    (seed / "README").write_text("gitops\n")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "seed")
    remote = tmp / "gitops.git"
    git(tmp, "clone", "-q", "--bare", str(seed), str(remote))
    return remote


@cache
def folder(sample: str, target: str) -> str:
    """Where ``sample`` writes ``target`` (its outputs, from the IR); "" when it is off."""
    from pipecompile.compiler import compile_bytes

    pipeline = ROOT / "samples" / sample / "pipeline.yaml"
    ir = compile_bytes(str(pipeline), pipeline.read_bytes())
    return dict(ir.outputs).get(target, "")


def files(root: Path, folder: str, pattern: str) -> list[Path]:
    return sorted((root / folder).glob(pattern))


# The tests that run a real tool end to end: the whole-flow rehearsals, terraform
# init/plan/apply with the AWS provider, the AWS CLI against moto, pre-commit
# installing its virtualenv, checkov, actionlint and zizmor. They carry the marker
# `slow`, so that `pytest -m "not slow"` is the quick loop while editing; `.ci/run`
# runs all of them. A module listed here is slow as a whole.
SLOW_MODULES = (
    "tests/rehearsal/test_flow_codepipeline.py",
    "tests/rehearsal/test_flow_github.py",
    "tests/rehearsal/test_rehearsal.py",
    "tests/rehearsal/test_spec.py",
    "tests/rehearsal/test_day2.py",
    "tests/targets/terraform/test_phases.py",
    "tests/targets/test_compliance.py",
    "tests/commands/test_precommit.py",
    "tests/test_checkers.py",
    "tests/insight/test_rollback.py",
    "tests/insight/test_rollback_resolve.py",
)
# started first, so that with two workers the other one runs everything else meanwhile
FIRST = ("test_flow_codepipeline.py", "test_flow_github.py", "test_phases.py", "test_precommit.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::", 1)[0] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    items.sort(
        key=lambda item: next((i for i, s in enumerate(FIRST) if s in item.nodeid), len(FIRST))
    )


def codebuild_deploy(buildspec: str, codebuild_tf: str, environment: str) -> dict[str, Any]:
    """What the one deploy buildspec reads in ``environment``: its own variables and
    secrets, then the environment's deploy project's (Terraform; a project's variable
    wins over the buildspec's, CodeBuild's order). name -> value; secrets as
    ("secret", "<Secrets Manager reference>")."""
    import hcl2

    spec = yaml_load(buildspec)
    out: dict[str, Any] = dict(spec["env"].get("variables", {}))
    out.update({k: ("secret", v) for k, v in spec["env"].get("secrets-manager", {}).items()})
    parsed = hcl_norm(hcl2.loads(codebuild_tf))
    project = next(
        body
        for block in parsed["resource"]
        for label, body in block.get("aws_codebuild_project", {}).items()
        if label == f"deploy-{environment}"
    )
    for row in project["environment"][0].get("environment_variable", []):
        secret = row.get("type") == "SECRETS_MANAGER"
        out[row["name"]] = ("secret", row["value"]) if secret else row["value"]
    return out


def yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)
