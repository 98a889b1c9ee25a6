"""A release that ships (issue 26): the non-script findings, each with its rule.

Hotfixes follow the release path; the Terraform CodePipeline would accept (report
groups of the release tier, the action configuration limit, a lifecycle policy that
cannot expire what runs); GitHub's delivery neither holds later pushes behind an
approval nor mixes outcome names; Slack payloads carry no channel."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.insight.explain import explain_event
from pipecompile.targets import terraform
from tests.conftest import ROOT
from tests.harness.reusable import expand

REF = ROOT / "samples/ecommerce"
GHA = ROOT / "samples/storefront"


def compiled(sample: Path, edit: tuple[str, str] | None = None, extra: str = "") -> Any:
    text = (sample / "pipeline.yaml").read_text() + extra
    if edit:
        assert edit[0] in text
        text = text.replace(*edit)
    return compile_bytes("pipeline.yaml", text.encode())


# -- hotfixes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "production"),
    [
        (REF, "ecommerce-product-service-production, ecommerce-order-service-production"),
        (GHA, "deliver-web.yml job deploy-production, deliver-payments.yml job deploy-production"),
    ],
)
def test_a_hotfix_is_verified_in_staging_and_its_merge_deploys_production(
    sample: Path, production: str
) -> None:
    ir = compiled(sample)
    lines = explain_event(ir, "push", "hotfix/1.2.1")
    assert "  no environment deploys from this branch" not in lines
    assert [line for line in lines if line.startswith("  environment ")] == [
        next(line for line in lines if line.startswith("  environment staging "))
    ]
    hotfix = next(line for line in lines if line.startswith("  hotfix: "))
    assert "verified in staging" in hotfix and "merge into main" in hotfix
    assert production in hotfix
    # the release tier: hotfix builds sign with the release key, like release/*
    assert "hotfix/*" in ir.release_branches
    assert ir.hotfix == ("staging", ("hotfix/*",))


def test_hotfixes_can_be_routed_elsewhere_or_turned_off() -> None:
    off = compiled(REF, extra="hotfixes: false\n")
    assert "  no environment deploys from this branch" in explain_event(off, "push", "hotfix/1")
    assert off.hotfix == (None, ())
    moved = compiled(REF, extra="hotfixes:\n  branches: [fix/*]\n  environment: testing\n")
    assert moved.hotfix == ("testing", ("fix/*",))
    assert [e.name for e in moved.environments if "fix/*" in e.includes] == ["testing"]
    # an environment that names the pattern itself keeps it: the user routed hotfixes
    own = compiled(REF, edit=("branches: [develop]", "branches: [develop, hotfix/*]"))
    assert [e.name for e in own.environments if "hotfix/*" in e.includes] == ["testing"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("stagin", "unknown environment 'stagin' (did you mean 'staging'?)"),
        ("production", "'production' is the production environment"),
    ],
)
def test_a_hotfix_environment_that_cannot_verify_is_a_located_error(
    value: str, message: str
) -> None:
    text = (REF / "pipeline.yaml").read_text() + f"hotfixes:\n  environment: {value}\n"
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.encode())
    (error,) = info.value.diagnostics
    assert error.path == ("hotfixes", "environment")
    assert error.line == len(text.splitlines()) and error.column == 16
    assert message in error.message


# -- Terraform that CodePipeline and CodeBuild accept -----------------------------------------


def test_the_release_tier_may_write_its_own_report_groups() -> None:
    """With signing the scan gate (and its report) is the sign project's: the release
    tier's sign role writes its own group, the dev tier's never (issue 28 trace)."""
    text = (REF / "infrastructure/terraform/cicd/iam.tf").read_text()

    def policy(label: str) -> str:
        body = text.split(f'data "aws_iam_policy_document" "{label}"', 1)[1]
        return body.split('data "aws_iam_policy_document"', 1)[0]

    ir = compiled(REF)
    # CodeBuild names a buildspec's report group <project>-<report>
    release, dev = policy("codebuild_sign_release"), policy("codebuild_sign")
    assert f"report-group/{ir.aws.release_sign_project}-ecr-image-scan" in release
    assert f"report-group/{ir.aws.sign_project}-ecr-image-scan" not in release
    assert f"report-group/{ir.aws.release_sign_project}-ecr-image-scan" not in dev
    for svc in ir.services:  # the build sessions run no gate, so write no scan report
        for build in ("codebuild", "codebuild_release"):
            assert f"report-group/{svc.release_build_project}-ecr" not in policy(build)
            assert f"report-group/{svc.build_project}-ecr" not in policy(build)
    build = (REF / "ci/codebuild/build.yml").read_text()
    assert "reports" not in yaml.safe_load(build)
    sign = (REF / "ci/codebuild/sign.yml").read_text()
    assert yaml.safe_load(sign)["reports"].keys() == {"ecr-image-scan"}


def test_an_action_configuration_longer_than_codepipeline_takes_is_a_located_error() -> None:
    ir = compiled(REF)
    assert not [f for f in terraform.check(ir) if "EnvironmentVariables" in f.message]
    long = "order-service-with-a-long-valid-name-ab"
    text = (REF / "pipeline.yaml").read_text().replace("order-service", long)
    # valid, long names: the service, and the folder in the GitOps repository (the action
    # carries only what varies by service: what varies by environment is its project's)
    text = text.replace(
        "  path: kubernetes/apps", "  path: " + "deployments/" * 10 + "eu-central-1"
    )
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.encode())
    sized = info.value.diagnostics
    assert sized and all(d.path == ("services", long) for d in sized)
    line = text.splitlines().index(f"  {long}:") + 1
    assert {(d.line, d.column) for d in sized} == {(line, 3)}
    assert re.search(r"passes 10[0-9][0-9] characters of EnvironmentVariables", sized[0].message)
    assert "holds at most 1000" in sized[0].message
    # the length terraform's jsonencode gives, measured on the generated value
    from pipecompile.targets.terraform.pipelines import deploy_variables, encoded_length

    svc = ir.services[0]
    variables = deploy_variables(ir, svc, svc.deployments[-1])
    value = [{"name": k, "type": "PLAINTEXT", "value": v} for k, v in variables.items()]
    assert encoded_length(variables) == len(json.dumps(value, separators=(",", ":")))


def test_a_sign_action_longer_than_codepipeline_takes_is_a_located_error() -> None:
    """The Sign action passes the service's excluded folders (issue 28): a root service
    with a deep service folder inside it, and a long image name, passes more than
    CodePipeline takes.  (The action no longer carries the build's tag, digest and ARN,
    so the folder alone, at its 255-character limit, no longer reaches 1000.)"""
    text = (REF / "pipeline.yaml").read_text()
    text = text.replace("services/order", "services/" + "order-service-folder/" * 11 + "app")
    long_image = "ecommerce/" + "product-service-image/" * 7 + "product-service"
    text = text.replace("image: ecommerce/product-service", f"image: {long_image}")
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.encode())
    sized = info.value.diagnostics
    line = text.splitlines().index("  product-service:") + 1
    assert {(d.path, d.line, d.column) for d in sized} == {
        (("services", "product-service"), line, 3)
    }
    assert len(sized) == 4  # one per pipeline of the service
    assert sized[0].message.startswith(
        "the Sign action of pipeline 'ecommerce-product-service-development' passes 1019 "
        "characters of EnvironmentVariables; an AWS CodePipeline action configuration value "
        "holds at most 1000: shorten the service or image name, or move the services inside "
        "its folder out of it (each is an excluded folder)"
    )


def test_the_gitops_secret_says_what_the_deploy_script_uses() -> None:
    text = (REF / "infrastructure/terraform/cicd/audit.tf").read_text()
    assert "SSH deploy key" in text and "or token" not in text


# -- GitHub Actions delivery ------------------------------------------------------------------


def test_a_pending_approval_never_holds_later_pushes() -> None:
    for svc in ("web", "payments"):
        wf = expand(GHA / f".github/workflows/deliver-{svc}.yml")  # deploy.yml's jobs in it
        # per commit: a group per branch held the next push while an approval was pending
        assert wf["concurrency"] == {
            "group": f"deliver-{svc}-${{{{ github.sha }}}}",
            "cancel-in-progress": False,
        }
        for job_id, job in wf["jobs"].items():
            if job_id.startswith("deploy-") and "/" not in job_id:  # not its DAST
                assert job["concurrency"] == {
                    "group": f"deploy-{svc}-{job_id.removeprefix('deploy-')}",
                    "cancel-in-progress": False,
                }


def test_the_audit_uses_one_set_of_outcome_names() -> None:
    wf = expand(GHA / ".github/workflows/deliver-web.yml")
    for env in ("development", "staging", "production"):
        step = next(
            s for s in wf["jobs"][f"deploy-{env}"]["steps"] if s["name"] == "Write the audit row"
        )
        status = step["env"]["DEPLOY_STATUS"]
        assert "'succeeded'" in status and "'failed'" in status and "'cancelled'" in status
        assert status != "${{ job.status }}"


def test_slack_payloads_carry_no_channel() -> None:
    payloads = []
    for path in GHA.glob(".github/workflows/*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):
                if "slack" in step.get("uses", ""):
                    payload = step["with"]["payload"]
                    if payload == "${{ needs.summary.outputs.payload }}":
                        # daily-summary.sh's output: tests/targets/test_operations.py
                        # checks it is {"text": ...}
                        continue
                    # a value GitHub fills in at run time (toJSON(...): a JSON string)
                    payload = re.sub(r"\$\{\{ toJSON\(.*?\) \}\}", '"x"', payload)
                    payloads.append(json.loads(payload))
    assert payloads and all(set(p) == {"text"} for p in payloads)


def test_no_script_holds_an_expression_github_would_expand() -> None:
    # the runner expands ${{ }} in a run: block before bash sees it, comments included
    from pipecompile.targets.common import packaged_scripts, script_text

    assert all("${{" not in script_text(name) for name in packaged_scripts())
