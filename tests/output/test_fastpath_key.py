"""What check's fast path compares besides the pipeline, the lock and pipecompile's code:
the installed dependencies' versions, the target plugins' code and the paths the
pipeline names (a symbolic link put there since).  Each change must keep the fast
path from vouching; the full check then decides."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.output import installed
from pipecompile.session import Session
from pipecompile.targets import registry as reg
from tests.conftest import ROOT, build_sample

MINIMAL = (ROOT / "samples/minimal/pipeline.yaml").read_text()
WITH_PLUGIN = (
    MINIMAL + "outputs:\n  helm: kubernetes/apps\n  plugins:\n    example: deploy/example\n"
)


def run(root: Path, *args: str) -> int:
    return cli.main([*args, "-f", str(root / "pipeline.yaml")])


def fast(root: Path) -> bool:
    return Session.open(root / "pipeline.yaml").fast_clean()


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder first on sys.path, where a test installs distributions (as pip lays them
    out: a ``name-version.dist-info`` folder beside the code)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    reg.installed.cache_clear()
    yield folder
    reg.installed.cache_clear()
    for name in [m for m in sys.modules if m.startswith("pc_plugin")]:
        del sys.modules[name]


def install(site: Path, dist: str, version: str, entry_points: str = "") -> Path:
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    if entry_points:
        (info / "entry_points.txt").write_text(entry_points)
    return info


def test_the_key_names_what_pipecompile_requires_with_the_installed_versions() -> None:
    import importlib.metadata as md

    from pipecompile.output.installed import environment

    lines = environment().splitlines()
    # as importlib.metadata sees them (which the fast path does not import: 50 ms)
    for name in ("ruamel.yaml", "pydantic", "click", "jsonschema"):
        assert f"{installed.normalise(name)}=={md.version(name)}" in lines
    assert installed.ENTRY_POINTS == reg.ENTRY_POINTS


def test_another_version_of_a_dependency_is_never_vouched_for(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_sample("minimal", tmp_path / "repo")
    assert fast(root)
    import importlib.metadata as md

    install(site, "ruamel_yaml", md.version("ruamel.yaml") + ".post1")  # first on the path
    assert not fast(root)
    # the files are what the pipeline generates: the full check is green, not red for
    # the manifest line that records where it was built
    assert run(root, "check") == 0
    assert run(root, "build", "-q") == 0
    assert fast(root)


PLUGIN = (ROOT / "tests/example_target.py").read_text()


def test_a_target_plugins_code_or_version_is_part_of_the_key(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "pc_plugin_example.py").write_text(PLUGIN)
    info = install(site, "pc_plugin", "1.0", "[pipecompile.targets]\nexample = pc_plugin_example\n")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pipeline.yaml").write_text(WITH_PLUGIN)
    assert run(root, "build", "-q") == 0
    assert (root / "deploy/example/services.txt").is_file()
    assert fast(root)
    # an editable install: the code changes, its version does not
    (site / "pc_plugin_example.py").write_text(
        PLUGIN.replace('f"{s.name}: {envs}\\n"', 'f"{s.name} -> {envs}\\n"')
    )
    del sys.modules["pc_plugin_example"]
    reg.installed.cache_clear()
    assert not fast(root)
    capsys.readouterr()
    assert run(root, "check") == 1  # the full check renders with the new code
    assert "deploy/example/services.txt" in capsys.readouterr().out
    assert run(root, "build", "-q") == 0
    assert fast(root)
    info.rename(site / "pc_plugin-1.1.dist-info")  # another release, same code
    assert not fast(root)


def test_a_service_folder_replaced_by_a_link_is_never_vouched_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "samples/ecommerce/pipeline.yaml", root / "pipeline.yaml")
    service = root / "services/order"
    service.mkdir(parents=True)
    assert run(root, "build", "-q") == 0
    assert fast(root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    service.rmdir()
    service.symlink_to(outside)
    assert not fast(root)
    capsys.readouterr()
    assert run(root, "check") == 2  # what the full check says: the pipeline is invalid now
    assert "'services/order' resolves outside the folder holding the pipeline" in (
        capsys.readouterr().err
    )


def test_a_link_inside_the_repository_is_recorded_and_its_target_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "samples/ecommerce/pipeline.yaml", root / "pipeline.yaml")
    for name in ("order-v1", "order-v2"):
        (root / "services" / name).mkdir(parents=True)
    (root / "services/order").symlink_to("order-v1")
    assert run(root, "build", "-q") == 0
    from pipecompile.output.state import read_manifest

    m = read_manifest(str(root))
    assert m is not None
    assert m.sources["services/order"] == "services/order-v1"
    assert m.sources["services/order/Dockerfile"] == "services/order-v1/Dockerfile"
    assert m.sources["kubernetes/apps"] == ""  # gitops.path: no link on the way
    assert fast(root)
    (root / "services/order").unlink()
    (root / "services/order").symlink_to("order-v2")
    assert not fast(root)
    capsys.readouterr()
    assert run(root, "check") == 1
    assert "stale: build would record another manifest" in capsys.readouterr().out
    assert run(root, "build", "-q") == 0
    assert fast(root)
