"""Stop and wait on the rehearsal's CodePipeline: the running action completes (Succeeded
or Failed) and the execution is Stopped (CodePipeline user guide, "Stop a pipeline
execution", pipelines-stop.html)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.harness.world import REGION, World
from tests.rehearsal.flow import App
from tests.rehearsal.flow_codepipeline import CodePipelineDelivery, Execution

SAMPLE = ROOT / "samples/ecommerce"


def _delivery(tmp_path: Path, deploy_ok: bool) -> CodePipelineDelivery:
    w = World(base=tmp_path, env={"AWS_DEFAULT_REGION": REGION}, registry="")
    app = App(seed=tmp_path, remote=tmp_path, heads={})
    d = CodePipelineDelivery(w, SAMPLE, app, app_commands=set(), env={})
    calls: list[str] = []

    def codebuild(label: str, *args: Any, **kw: Any) -> tuple[bool, dict[str, str]]:
        calls.append(label)
        return (deploy_ok or "deploy" not in label), {}

    d.codebuild = codebuild  # type: ignore[method-assign]
    return d


@pytest.mark.parametrize("deploy_ok", [True, False])
def test_a_stop_while_the_deploy_runs_ends_the_execution_stopped(
    tmp_path: Path, deploy_ok: bool
) -> None:
    d = _delivery(tmp_path, deploy_ok)
    label = next(k for k in d.pipelines if k.endswith("-staging"))

    def stop(ex: Execution) -> None:
        ex.stop_requested = True

    d.hooks["staging"] = stop
    ex = d.run(label, "c0ffee")
    assert ex.state == "STOPPED"
    assert ex.actions["Deploy"] == ("succeeded" if deploy_ok else "failed")
    assert list(ex.actions)[-1] == "Deploy"  # nothing after it started
    assert any("STOPPED" in n for n in ex.notifications), ex.notifications


def test_a_failed_deploy_without_a_stop_fails_the_execution(tmp_path: Path) -> None:
    d = _delivery(tmp_path, deploy_ok=False)
    label = next(k for k in d.pipelines if k.endswith("-staging"))
    ex = d.run(label, "c0ffee")
    assert ex.state == "FAILED"
