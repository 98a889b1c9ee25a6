"""Issue 28 trace: CodePipeline pastes an action's exported variables into the next
actions' EnvironmentVariables JSON as plain text (aws-cdk issues #8458, #31213), and the
build session runs the branch's code, so a value it exports (``x"},{"name":"BASH_ENV",
...``) would add variables to the Sign and Deploy actions.  The later actions read the
Sign action's checked variables, never the build's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.rehearsal.flow_codepipeline import _resources, _variables, substituted

HOSTILE = 'x"},{"name":"BASH_ENV","type":"PLAINTEXT","value":"/tmp/x'
SAMPLES = sorted(
    p.parents[3] for p in ROOT.glob("samples/*/infrastructure/terraform/cicd/codepipeline.tf")
)


def _actions(sample: Path) -> list[tuple[str, str, dict[str, object]]]:
    out = []
    for label, p in _resources(
        sample / "infrastructure/terraform/cicd", "aws_codepipeline"
    ).items():
        for stage in p["stage"]:
            a = stage["action"][0]
            out.append((label, stage["name"], a))
    return out


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_a_hostile_exported_value_adds_no_variable_downstream(sample: Path) -> None:
    actions = _actions(sample)
    signed = any(name == "Sign" for _, name, _ in actions)
    every = {"IMAGE_TAG": HOSTILE, "IMAGE_DIGEST": HOSTILE, "BUILD_ARN": HOSTILE}
    namespaces = {"BuildVariables": every, "codepipeline": {"PipelineExecutionId": "e-1"}}
    checked = 0
    for label, name, a in actions:
        config = a["configuration"]
        text = str(config.get("EnvironmentVariables", ""))  # type: ignore[union-attr]
        if signed:  # nothing after the build reads the build's variables
            assert "BuildVariables" not in str(config), (label, name)
        if not text:
            continue
        rows = _variables(text)
        assert rows, (label, name, text)
        if signed or "BuildVariables" not in text:
            after = substituted(rows, namespaces)
            assert [n for n, _, _ in after] == [n for n, _, _ in rows], (label, name)
            assert all(HOSTILE not in v for _, v, _ in after), (label, name)
            checked += 1
    if signed:
        assert checked and any(n == "Sign" for _, n, _ in actions)


def test_the_substitution_is_textual_as_codepipeline_s() -> None:
    """The rehearsal's model of CodePipeline does break on the build's value (the old
    flow): a quote in it adds BASH_ENV."""
    rows = [("IMAGE_TAG", "#{BuildVariables.IMAGE_TAG}", "PLAINTEXT")]
    after = substituted(rows, {"BuildVariables": {"IMAGE_TAG": HOSTILE}})
    assert [n for n, _, _ in after] == ["IMAGE_TAG", "BASH_ENV"]


def test_the_sign_project_exports_only_checked_values() -> None:
    import yaml

    spec = yaml.safe_load((ROOT / "samples/ecommerce/ci/codebuild/sign.yml").read_text())
    assert spec["env"]["exported-variables"] == ["IMAGE_TAG", "IMAGE_DIGEST"]
    commands = spec["phases"]["build"]["commands"]
    (export,) = [c for c in commands if c.startswith("read -r IMAGE_TAG IMAGE_DIGEST")]
    assert '[[ "$IMAGE_DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]]' in export
    assert '[[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_.-]{1,128}$ ]]' in export
    # it is given no tag, digest or build ARN: CodePipeline's own execution id instead
    pipelines = (
        ROOT / "samples/ecommerce/infrastructure/terraform/cicd/codepipeline.tf"
    ).read_text()
    assert not re.search(r"BuildVariables\.(IMAGE_TAG|IMAGE_DIGEST|BUILD_ARN)", pipelines)
    assert '{ name = "BUILD_INVOCATION", value = "#{codepipeline.PipelineExecutionId}"' in pipelines
