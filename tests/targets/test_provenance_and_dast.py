"""Who built (the provenance's builder.id), what the shared DAST workflow may hold, and
the audit row before DAST can fail a run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets.common import STEP_SCRIPTS, script_body, script_text
from tests.conftest import ROOT

SAMPLES = ROOT / "samples"
REF = SAMPLES / "ecommerce"  # delivery: codepipeline
GHA = SAMPLES / "storefront"  # delivery: github-actions


def ir_of(sample: Path) -> IR:
    return compile_bytes("pipeline.yaml", (sample / "pipeline.yaml").read_bytes())


def doc(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _attest_env_github() -> dict[str, str]:
    build = doc(GHA / ".github/workflows/build.yml")["jobs"]["build"]
    step = next(s for s in build["steps"] if s.get("name", "").startswith("Attest"))
    env: dict[str, str] = step["env"]
    return env


def test_github_provenance_names_the_reusable_build_workflow_as_builder() -> None:
    """build.yml runs called by deliver-<service>.yml: github.workflow_ref is the caller's
    ref, job.workflow_ref the workflow that holds the job (build.yml itself)."""
    assert _attest_env_github()["BUILDER_ID"] == "${{ job.workflow_ref }}"


def test_codebuild_provenance_names_the_build_project_as_builder() -> None:
    """The sign project attests (issue 28), so its own CODEBUILD_PROJECT_ARN is not the
    builder: each pipeline's Sign action passes the ARN of the project that built the
    image (arn:...:project/<name>; the build ARN without its id, an old value, was
    arn:...:build/<name>, no resource's ARN) and the build's own ARN as the invocation."""
    sign = (REF / "ci/codebuild/sign.yml").read_text()
    assert "CODEBUILD_PROJECT_ARN" not in sign and "CODEBUILD_BUILD_ARN" not in sign
    assert "BUILDER_ID" in sign and "BUILD_INVOCATION" in sign
    build = doc(REF / "ci/codebuild/build.yml")
    assert 'export BUILD_ARN="$CODEBUILD_BUILD_ARN"' in build["phases"]["build"]["commands"]
    assert "BUILD_ARN" in build["env"]["exported-variables"]
    from tests.rehearsal.flow_codepipeline import _resources, _variables

    ir = ir_of(REF)
    pipelines = _resources(REF / ir.output("terraform"), "aws_codepipeline")
    checked = 0
    for svc in ir.services:
        for dep in svc.deployments:
            release = ir.environment(dep.environment).approval
            project = svc.release_build_project if release else svc.build_project
            (p,) = [p for p in pipelines.values() if p["name"] == dep.pipeline_name]
            (stage,) = [st for st in p["stage"] if st["name"] == "Sign"]
            config = stage["action"][0]["configuration"]
            passed = {n: v for n, v, _ in _variables(config["EnvironmentVariables"])}
            arn = f"arn:aws:codebuild:{ir.aws.region}:{ir.aws.account_id}:project/{project}"
            assert passed["BUILDER_ID"] == arn
            # the pipeline execution (CodePipeline's variable), not the build's exported ARN
            assert passed["BUILD_INVOCATION"] == "#{codepipeline.PipelineExecutionId}"
            assert "BuildVariables" not in config["EnvironmentVariables"]
            checked += 1
    assert checked


def _declared(script: str) -> set[str]:
    header = script_text(script).removesuffix(script_body(script))
    section = header.split("# Inputs (environment):\n")[1].split("# Outputs:")[0]
    return set(re.findall(r"^#\s+([A-Z][A-Z0-9_]*)\b", section, re.M))


@pytest.mark.parametrize("sample", [REF, GHA], ids=lambda p: p.name)
def test_the_dast_steps_pass_only_what_their_scripts_read(sample: Path) -> None:
    """A DAST step's inputs are its script's declared inputs (or name it in its title): an
    undeclared one (the image URI, once) put a service's value into zap.yml, which every
    service calls."""
    plan = ir_of(sample).plan
    dast = [step for stage in plan.stages for step in stage.dast]
    assert dast
    for step in dast:
        passed = {i.name for i in step.inputs} - set(re.findall(r"\{([A-Z_]+)\}", step.title))
        assert passed <= _declared(STEP_SCRIPTS[step.kind]), (
            step.kind,
            passed - _declared(STEP_SCRIPTS[step.kind]),
        )


def test_zap_yml_holds_no_services_value() -> None:
    """zap.yml serves every service: its image values come in as inputs only."""
    text = (GHA / ".github/workflows/zap.yml").read_text()
    ir = ir_of(GHA)
    for svc in ir.services:
        for env in ir.environments:
            repository, uri = ir.image_of(svc, env)
            assert uri not in text and f"'{repository}'" not in text, (svc.name, env.name)
    mark = doc(GHA / ".github/workflows/zap.yml")["jobs"]["mark"]["steps"][-1]["env"]
    # the pipeline's, no service's (the audit table: the mark reads the newest deploy)
    pipeline = ("DAST_ENVIRONMENT", "PROMOTIONS_TABLE", "DEPLOYMENTS_TABLE")
    assert all(v.startswith("${{ inputs.") for k, v in mark.items() if k not in pipeline)
    assert mark["PROMOTIONS_TABLE"] == ir.aws.promotions_table
    assert mark["DEPLOYMENTS_TABLE"] == ir.deployments_table
    assert mark["SERVICE"] == "${{ inputs.service }}"


def test_the_audit_row_is_written_before_dast_can_fail_the_run() -> None:
    """The plan: the audit row is a deploy step ("always"), DAST its own stage after the
    deploy; GitHub runs the DAST job only after the deploy job (which writes the row
    whatever happened), CodePipeline the Dast stage only after the Deploy stage (whose
    buildspec writes it in its finally block)."""
    for sample in (REF, GHA):
        for stage in ir_of(sample).plan.stages:
            if stage.dast:
                audit = [s for s in stage.steps if s.kind == "audit"]
                assert audit and audit[0].when == "always", (sample.name, stage)
                assert not any(s.kind in ("dast", "dast-mark") for s in stage.steps)
    deploy = doc(GHA / ".github/workflows/deploy.yml")["jobs"]
    assert deploy["dast"]["needs"] == "deploy"
    audit = next(s for s in deploy["deploy"]["steps"] if s["name"] == "Write the audit row")
    assert audit["if"] == "always()"
    spec = doc(REF / "ci/codebuild/deploy.yml")["phases"]["build"]
    assert any("put-item" in c for c in spec["finally"])
    assert not any("zap" in c.lower() for c in spec["commands"] + spec["finally"])
    pipelines = (REF / "infrastructure/terraform/cicd/codepipeline.tf").read_text()
    for block in pipelines.split('resource "aws_codepipeline"')[1:]:
        names = re.findall(r'^  stage \{\n    name = "(\w+)"', block, re.M)
        if "Dast" in names:
            assert names.index("Dast") == names.index("Deploy") + 1, names
