"""Issue 28, attacker trace 3 (ecommerce): a feature branch commits its
values-development.yaml (or a chart file, or the chart folder) as a symbolic link to the
deploy key the script has just written, or to /proc/self/environ; copied with a
dereferencing ``cp``, the deploy would commit that secret to the GitOps repository.
gitops-record.sh is run as a file on such a checkout, against a scratch repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pipecompile.targets.common import script_path
from tests.conftest import git, scratch_gitops

SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- not-a-real-key"
DIGEST = "sha256:" + "a" * 64


def _checkout(root: Path) -> None:
    """The layout the deployers see: the chart and a service's values folder."""
    chart = root / "kubernetes/charts/app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 0.1.0\n")
    (chart / "templates/deployment.yaml").write_text("kind: Deployment\n")
    values = root / "kubernetes/values/web"
    values.mkdir(parents=True)
    (values / "values-development.yaml").write_text("replicas: 1\n")


def _run(root: Path, home: Path, remote: Path) -> subprocess.CompletedProcess[str]:
    return _run_env(root, home, remote, {})


def _committed(tmp_path: Path, remote: Path) -> str:
    """Every file's content in the remote's history, joined."""
    return git(tmp_path, "--git-dir", str(remote), "log", "--all", "-p", "--format=%H")


def test_a_plain_checkout_is_recorded(tmp_path: Path) -> None:
    root, home = tmp_path / "src", tmp_path / "home"
    home.mkdir()
    _checkout(root)
    remote = scratch_gitops(tmp_path)
    res = _run(root, home, remote)
    assert res.returncode == 0, res.stderr
    log = _committed(tmp_path, remote)
    assert "replicas: 1" in log and DIGEST in log


def _link_to_key(home: Path) -> str:
    return str(home / ".ssh/gitops_deploy_key")


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("kubernetes/values/web/values-development.yaml", "key"),
        ("kubernetes/values/web/values-development.yaml", "/proc/self/environ"),
        ("kubernetes/charts/app/templates/secret.yaml", "key"),
        ("kubernetes/charts/app/templates", "home"),  # a folder of the chart
        ("kubernetes/values/web", "home"),  # the values folder itself
        ("kubernetes/charts/app", "home"),  # the whole chart
    ],
)
def test_a_linked_chart_or_values_file_is_refused(tmp_path: Path, link: str, target: str) -> None:
    root, home = tmp_path / "src", tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    _checkout(root)
    if target == "home":  # a folder that holds what the link must not reach
        (home / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 0.1.0\n")
        (home / "values-development.yaml").write_text(SECRET + "\n")
    dest = root / link
    if dest.is_dir():
        subprocess.run(["rm", "-rf", str(dest)], check=True)
    else:
        dest.unlink(missing_ok=True)
    dest.symlink_to({"key": _link_to_key(home), "home": str(home)}.get(target, target))
    remote = scratch_gitops(tmp_path)
    before = _committed(tmp_path, remote)
    res = _run(root, home, remote)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "symbolic link" in res.stderr or "not a regular file" in res.stderr, res.stderr
    assert _committed(tmp_path, remote) == before  # nothing pushed
    assert SECRET not in _committed(tmp_path, remote)
    # refused before the key was written: the link had nothing to read
    assert not Path(_link_to_key(home)).exists()


def test_a_fifo_in_the_chart_is_refused(tmp_path: Path) -> None:
    root, home = tmp_path / "src", tmp_path / "home"
    home.mkdir()
    _checkout(root)
    os.mkfifo(root / "kubernetes/charts/app/templates/pipe")
    remote = scratch_gitops(tmp_path)
    res = _run(root, home, remote)
    assert res.returncode == 1 and "not a regular file" in res.stderr, res.stderr


def _run_env(
    root: Path, home: Path, remote: Path, values: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """gitops-record.sh as a deployer runs it, with ``values`` over the usual inputs."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GITOPS_AUTH": "ssh",
        "GITOPS_DEPLOY_KEY": SECRET,
        "GITOPS_REPOSITORY": f"file://{remote}",
        "GITOPS_REVISION": "HEAD",
        "GITOPS_DIR": "web/development",
        "CHART_SOURCE": "kubernetes/charts/app",
        "VALUES_SOURCE": "kubernetes/values/web",
        "SERVICE": "web",
        "ENVIRONMENT": "development",
        "IMAGE_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web",
        "IMAGE_TAG": "src-0123",
        "IMAGE_DIGEST": DIGEST,
        **values,
    }
    return subprocess.run(
        ["bash", str(script_path("gitops-record.sh"))],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # closes the quoted tag and adds keys the chart reads from image-<env>.yaml's map
        ("IMAGE_TAG", 'x"\n  digest: "sha256:' + "b" * 64 + '"\nreplicas: 0\nx: "'),
        ("IMAGE_TAG", 'x" # '),
        ("IMAGE_TAG", "x\\"),
        ("IMAGE_TAG", "-leading-dash"),
        ("IMAGE_TAG", "a" * 129),
        ("IMAGE_DIGEST", "sha256:" + "a" * 64 + '"\nreplicas: 0\nx: "'),
        ("IMAGE_DIGEST", "latest"),
        ("IMAGE_URI", 'evil.example/x"\n  pullPolicy: "Never'),
    ],
)
def test_a_hostile_build_value_is_refused_before_it_reaches_the_image_file(
    tmp_path: Path, name: str, value: str
) -> None:
    """Finding 3 of the last trace: a feature build's buildspec comes from the branch, so it
    exports any IMAGE_TAG it likes; the development deploy wrote it between quotes into
    image-development.yaml, where a quote and a newline add keys (another digest, replicas,
    anything the chart reads from .Values). A value outside its format (an ECR tag, a
    sha256 digest, a registry/repository) is refused and nothing is pushed."""
    root, home = tmp_path / "src", tmp_path / "home"
    home.mkdir()
    _checkout(root)
    remote = scratch_gitops(tmp_path)
    before = _committed(tmp_path, remote)
    res = _run_env(root, home, remote, {name: value})
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"refusing {name}" in res.stderr, res.stderr
    assert _committed(tmp_path, remote) == before  # nothing pushed
    assert not (home / ".ssh/gitops_deploy_key").exists()  # refused before the key


def test_the_image_file_parses_back_to_the_values_recorded(tmp_path: Path) -> None:
    """The longest tag ECR accepts, with every character it allows, reads back as itself."""
    root, home = tmp_path / "src", tmp_path / "home"
    home.mkdir()
    _checkout(root)
    remote = scratch_gitops(tmp_path)
    tag = "A_z0.9-" + "x" * 121
    res = _run_env(root, home, remote, {"IMAGE_TAG": tag})
    assert res.returncode == 0, res.stderr
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", f"file://{remote}", str(clone))
    data = yaml.safe_load((clone / "web/development/image-development.yaml").read_text())
    assert data == {
        "image": {
            "repository": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web",
            "tag": tag,
            "digest": DIGEST,
        }
    }


@pytest.mark.parametrize(
    "missing", ["kubernetes/charts/app/Chart.yaml", "kubernetes/values/web/values-development.yaml"]
)
def test_a_checkout_without_its_chart_or_values_file_is_refused(
    tmp_path: Path, missing: str
) -> None:
    """A branch that deleted Chart.yaml (or its values file) is refused before anything is
    pushed: ``test -f a && test -f b`` did not stop the script under ``set -e`` when the
    first test failed (bash: a failed command before ``&&`` is exempt), and the chart
    reached GitOps without its Chart.yaml (trace of the rollback change)."""
    root, home = tmp_path / "src", tmp_path / "home"
    home.mkdir()
    _checkout(root)
    (root / missing).unlink()
    remote = scratch_gitops(tmp_path)
    before = _committed(tmp_path, remote)
    res = _run(root, home, remote)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"{missing} is missing" in res.stderr, res.stderr
    assert _committed(tmp_path, remote) == before
