"""Targets own their rules: each target checks what it cannot express, lowering knows
no target, and the front end locates every finding in pipeline.yaml (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.jobs import expected
from pipecompile.targets.chart import analysis
from pipecompile.targets.registry import builtin, registry
from tests.conftest import ROOT
from tests.harness.reusable import expand, expand_rendered

REFERENCE = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()


def errors(text: str) -> list[str]:
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.encode())
    return [str(d) for d in info.value.diagnostics]


def with_outputs(text: str, *targets: str) -> str:
    head = text.split("\noutputs:")[0]
    return head + "\noutputs:\n" + "".join(f"  {t}: out/{t}\n" for t in targets)


def test_every_target_renders_checks_and_describes() -> None:
    for name, target in registry().items():
        assert target.name == name
        assert callable(target.render) and callable(target.check), name
        assert callable(target.describe), name


def test_the_registry_is_the_one_list_of_targets() -> None:
    from pipecompile.frontend.model import Outputs

    # the schema's outputs keys are the built-in targets' names, in the same order
    # (then plugins:, the targets installed packages add: tests/targets/test_plugins.py)
    aliases = [f.alias or name for name, f in Outputs.model_fields.items()]
    assert aliases == [*builtin(), "plugins"]
    # a pipeline that names no outputs gets every target in its declared folder
    minimal = (ROOT / "samples/minimal/pipeline.yaml").read_bytes()
    assert "outputs:" not in minimal.decode()
    ir = compile_bytes("pipeline.yaml", minimal)
    assert ir.outputs == tuple((n, t.default_folder) for n, t in registry().items())


def test_a_target_rule_applies_only_when_the_target_is_on() -> None:
    branches = ", ".join(f"b{i}" for i in range(9))
    text = REFERENCE.replace("branches: [develop]", f"branches: [{branches}]")
    assert text != REFERENCE
    line = next(i for i, x in enumerate(text.split("\n"), 1) if "b8]" in x)
    assert any(
        e.startswith(f"pipeline.yaml:{line}:")
        and "9 branch patterns; an AWS CodePipeline trigger accepts at most 8" in e
        for e in errors(text)
    )
    # without the terraform output nothing renders a CodePipeline trigger
    compile_bytes("pipeline.yaml", with_outputs(text, "github-actions", "helm").encode())


def test_one_finding_of_several_targets_reads_as_one_error() -> None:
    text = with_outputs(REFERENCE, "codebuild", "terraform", "argocd")
    before, rest = text.split("\ngitops:\n")
    text = before + "\n" + rest.split("\n\n", 1)[1]  # the whole gitops section
    first = next(i for i, x in enumerate(text.split("\n"), 1) if x and not x.startswith("#"))
    assert errors(text) == [
        f"pipeline.yaml:{first}:1: PC301 gitops.repository is required: the codebuild and argocd "
        "outputs deploy through the GitOps repository (or turn those outputs off)"
    ]


def test_a_target_warning_joins_the_ir_warnings() -> None:
    text = with_outputs(REFERENCE, "terraform", "argocd")
    ir = compile_bytes("pipeline.yaml", text.encode())
    line = text.split("\n").index("outputs:") + 2  # at its first entry, as before
    assert (
        f"pipeline.yaml:{line}:3: warning: PC304 outputs: the terraform output's CodeBuild "
        "projects read buildspecs from ci/codebuild/, but the codebuild output is off"
    ) in "\n".join(map(str, ir.warnings))


def test_expressions_are_a_github_actions_rule_only() -> None:
    text = REFERENCE.replace("run: npm ci", "run: echo '${{ github.token }}'")
    assert text != REFERENCE
    assert any("contains '${{', which GitHub Actions would evaluate" in e for e in errors(text))
    compile_bytes("pipeline.yaml", with_outputs(text, "codebuild", "terraform").encode())


def test_go_is_set_up_by_a_pinned_setup_go(tmp_path: Path) -> None:
    text = REFERENCE.replace('node: "20"', 'go: "1.23"')
    assert text != REFERENCE
    ir = compile_bytes("pipeline.yaml", text.encode())
    files = expected(ir, ("github-actions",))
    rendered = {str(path): body for path, (_, body) in files.items()}
    # as GitHub runs it: ci-order-service.yml calls ci.yml with the service's values
    ci = expand_rendered(rendered, ".github/workflows/ci-order-service.yml")
    setup = ci["jobs"]["validate"]["steps"][1]
    assert setup == {
        "name": "Set up Go 1.23",
        "uses": f"actions/setup-go@{ir.pins.action('actions/setup-go').sha}",
        "with": {
            "go-version": "1.23",
            "cache": True,
            "cache-dependency-path": "services/order/go.sum",
        },
    }
    for path, (_, body) in files.items():
        (tmp_path / Path(path).name).write_text(body)
    actionlint = str(Path(sys.executable).parent / "actionlint")
    res = subprocess.run(
        [actionlint, "-no-color", *map(str, sorted(tmp_path.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_explain_names_the_topic_approvals_go_to() -> None:
    from pipecompile.insight.explain import checklist

    ir = compile_bytes("pipeline.yaml", (ROOT / "samples/ecommerce/pipeline.yaml").read_bytes())
    text = "\n".join(checklist(ir))
    approving = [e for e in ir.environments if e.approval]
    assert approving
    for env in approving:  # the topic the Approval action notifies (codepipeline.tf)
        assert env.approval_topic == f"ecommerce-{env.name}-approvals"
        assert f"SNS topic {env.approval_topic}: {env.name}'s approval requests" in text
    tf = (ROOT / "samples/ecommerce/infrastructure/terraform/cicd/notifications.tf").read_text()
    assert all(f'"{e.approval_topic}"' in tf for e in approving)
    assert "pipeline-events: subscribe approvers" not in text


def test_explain_describes_only_the_enabled_outputs() -> None:
    from pipecompile.insight.explain import checklist, explain_event

    ir = compile_bytes("pipeline.yaml", with_outputs(REFERENCE, "helm").encode())
    text = "\n".join(explain_event(ir, "push", "main") + checklist(ir))
    for absent in ("ci-", "deliver-", "CodePipeline", "Argo CD application", "terraform"):
        assert absent not in text, absent
    assert (
        "canary (ALB traffic) 5%" in text
        and "Secrets Manager secrets read by product-service" in text
    )
    full = compile_bytes("pipeline.yaml", REFERENCE.encode())
    text = "\n".join(explain_event(full, "push", "main") + checklist(full))
    for present in ("ci-", "CodePipeline", "Argo CD application", "terraform"):
        assert present in text, present
    assert "deliver-" not in text  # delivered by CodePipeline: GitHub Actions runs CI only


@pytest.mark.parametrize(
    ("strategy", "preview", "delay"),
    [
        ("    strategy: blue-green\n", 1, 30),  # the built-in one: the IR's defaults
        ("    strategy: safe\n", 2, 90),
        ("    strategy: partial\n", 1, 120),  # only the delay given: preview default
    ],
)
def test_blue_green_values_and_their_defaults(strategy: str, preview: int, delay: int) -> None:
    custom = (
        "\nstrategies:\n"
        "  safe:\n    type: blue-green\n    preview_replicas: 2\n    scale_down_delay: 90s\n"
        "  partial:\n    type: blue-green\n    scale_down_delay: 2m\n"
    )
    text = REFERENCE.replace("    strategy: canary\n", strategy, 1).replace(
        "\nstrategies:\n", custom, 1
    )
    ir = compile_bytes("pipeline.yaml", text.encode())
    files = expected(ir, ("helm",))
    body = files["kubernetes/apps/product-service/values-production.yaml"][1].split("\n", 3)[3]
    blue_green = yaml.safe_load(body)["rollout"]["strategy"]["blueGreen"]
    assert blue_green["previewReplicaCount"] == preview
    # the reference has rollback analysis: the old version stays until post-promotion
    # analysis has taken its measurements (its initial delay, then one a minute, and a
    # minute more), however short the delay asked
    assert ir.rollback is not None
    first = analysis.initial_delay_minutes(ir.rollback)
    run = first + ir.rollback.measurements - 1
    assert blue_green["scaleDownDelaySeconds"] == max(delay, (run + 1) * 60)
    assert blue_green["autoPromotionEnabled"] is False


def test_an_output_the_deliverer_does_not_use_is_a_located_error() -> None:
    text = REFERENCE.replace(
        "\nproject: ecommerce", "\nproject: ecommerce\ndelivery: github-actions"
    )
    line = next(i for i, x in enumerate(text.split("\n"), 1) if x.startswith("  codebuild:"))
    assert errors(text) == [
        f"pipeline.yaml:{line}:3: PC304 outputs.codebuild: delivery is github-actions: "
        "no CodePipeline runs CodeBuild buildspecs; remove this output, or set delivery: "
        "codepipeline"
    ]


def test_a_deliverer_whose_output_is_off_is_a_located_warning() -> None:
    text = with_outputs(REFERENCE, "argocd", "helm")
    text = text.replace("\nproject: ecommerce", "\nproject: ecommerce\ndelivery: github-actions")
    line = next(i for i, x in enumerate(text.split("\n"), 1) if x.startswith("delivery:"))
    ir = compile_bytes("pipeline.yaml", text.encode())
    assert [str(w) for w in ir.warnings if w.code != "PC208"] == [
        f"pipeline.yaml:{line}:11: warning: PC304 delivery: delivery is github-actions, but the "
        "github-actions output that generates it is off: nothing generated here delivers; "
        "turn it on"
    ]


def test_each_service_builds_with_its_own_runtime_and_steps() -> None:
    # storefront: web keeps ci.runtime (python, its default steps); payments is Go
    ir = compile_bytes("pipeline.yaml", (ROOT / "samples/storefront/pipeline.yaml").read_bytes())
    web, payments = ir.services
    assert (web.runtime.language, web.runtime.version) == ("python", "3.12")
    assert web.steps == ir.steps
    assert (payments.runtime.language, payments.runtime.version) == ("go", "1.23")
    assert [s.run for s in payments.steps] == ["go vet ./...", "go test -race ./..."]
    # as GitHub runs them: each ci-<svc>.yml calls ci.yml, which runs only its own steps
    ci = expand(ROOT / "samples/storefront/.github/workflows/ci-payments.yml")
    steps = ci["jobs"]["validate"]["steps"]
    assert steps[1]["uses"].startswith("actions/setup-go@")
    assert [s["run"] for s in steps[2:4]] == ["go vet ./...", "go test -race ./..."]
    assert steps[4]["name"] == "SonarQube analysis"
    web_ci = expand(ROOT / "samples/storefront/.github/workflows/ci-web.yml")
    web = web_ci["jobs"]["validate"]["steps"]
    assert web[1]["uses"].startswith("actions/setup-python@")
    assert [s["run"] for s in web[2:5]] == [s.run for s in ir.steps]
    assert not any(s.get("run", "").startswith("go ") for s in web)


def test_a_service_runtime_without_steps_takes_that_runtimes_default_steps() -> None:
    text = REFERENCE.replace(
        "    path: services/order\n", '    path: services/order\n    runtime:\n      java: "21"\n'
    )
    assert text != REFERENCE
    ir = compile_bytes("pipeline.yaml", text.encode())
    product, order = ir.services
    assert product.steps == ir.steps  # node, the pipeline's npm steps
    assert order.steps[0].run == "./mvnw -B dependency:go-offline"
    files = expected(ir, ("codebuild",))
    # one build buildspec for both: each runtime, each runtime's cache, the NVD data
    spec = yaml.safe_load(files["ci/codebuild/build.yml"][1])
    assert spec["phases"]["install"]["runtime-versions"] == {"nodejs": "20", "java": "corretto21"}
    assert spec["cache"]["paths"] == [
        "/root/.npm/**/*",
        # Maven's and Gradle's: a Java service builds with either (GRADLE_USER_HOME ~/.gradle)
        "/root/.m2/**/*",
        "/root/.gradle/caches/**/*",
        "/root/.gradle/wrapper/**/*",
        "/root/.dependency-check/**/*",
    ]
    # each service runs its own steps ($SERVICE comes from its build project)
    pre = spec["phases"]["pre_build"]["commands"]
    mvn = next(c for c in pre if "dependency:go-offline" in c)
    assert mvn.startswith('if [ "$SERVICE" = order-service ]; then\n')
    npm = next(c for c in pre if "npm ci" in c)
    assert npm == 'if [ "$SERVICE" = product-service ]; then\nnpm ci\nfi'


def test_services_of_one_language_in_two_versions_get_theirs_from_their_projects() -> None:
    text = REFERENCE.replace(
        "    path: services/order\n", '    path: services/order\n    runtime:\n      node: "22"\n'
    )
    assert text != REFERENCE
    ir = compile_bytes("pipeline.yaml", text.encode())
    files = expected(ir, ("codebuild", "terraform"))
    spec = yaml.safe_load(files["ci/codebuild/build.yml"][1])
    assert spec["phases"]["install"]["runtime-versions"] == {"nodejs": "$RUNTIME_VERSION_NODE"}
    assert spec["env"]["variables"]["RUNTIME_VERSION_NODE"] == "20"  # the first service's
    tf = next(body for path, (_, body) in files.items() if str(path).endswith("codebuild.tf"))
    order = tf.split('resource "aws_codebuild_project" "build-order-service"')[1].split(
        "resource "
    )[0]
    assert 'name  = "RUNTIME_VERSION_NODE"\n      value = "22"' in order


def test_the_codebuild_runtimes_describe_the_image_terraform_gives_the_projects() -> None:
    from pipecompile.targets import data

    runtimes = data("codebuild", "runtimes.json")
    assert runtimes["image"] == data("terraform", "aws.json")["build_image"]
    assert set(runtimes["available"]) - {"source"} == {
        key for key, _ in runtimes["runtime_versions"].values()
    }
