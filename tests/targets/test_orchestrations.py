"""GitHub Actions, Terraform and Argo CD agree with the IR and with each other on
which branches deploy to which environment and which environments need approval."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pipecompile.compiler import compile_file
from pipecompile.targets.github_actions.deliver import deliver_file
from tests.conftest import ROOT, SAMPLES, as_github_delivered, folder, terraform_blocks
from tests.harness.reusable import expand

# ref -> environments it must deploy to, for the GitFlow environments of both samples
GITFLOW_REFS = {
    "main": {"production"},
    "develop": {"testing"},
    "release/1.2": {"staging"},
    "feature/cart": {"development"},
    "feature/a/b": set(),  # '*' does not cross '/' in GitHub filters
    "hotfix/x": {"staging"},  # hotfixes follow the release path (LANGUAGE.md 1.2)
}


def route(step: dict[str, object], branch: str, tmp: Path) -> dict[str, str]:
    """Run the generated routing script of a delivery workflow for ``branch``."""
    env = {k: str(v) for k, v in dict(step["env"]).items()}  # type: ignore[call-overload]
    out = tmp / "github_output"
    out.write_text("")
    env.update(BRANCH=branch, GITHUB_OUTPUT=str(out), PATH="/usr/bin:/bin")
    subprocess.run(["bash", "-c", str(step["run"])], env=env, check=True, timeout=30)
    return dict(line.split("=", 1) for line in out.read_text().split())


def _pipelines(
    root: Path, tf: str = "infrastructure/terraform/cicd"
) -> dict[str, dict[str, object]]:
    """The generated aws_codepipeline resources, by pipeline name."""
    return {
        body["name"]: body
        for r in terraform_blocks(root, tf)["resource"]
        for kind, named in r.items()
        if kind == "aws_codepipeline"
        for body in named.values()
    }


@pytest.mark.parametrize("sample", SAMPLES)
def test_branches_and_approvals_agree(built: dict[str, Path], sample: str, tmp_path: Path) -> None:
    ir = compile_file(ROOT / "samples" / sample / "pipeline.yaml")
    root = built[sample]
    approvals = {e.name for e in ir.environments if e.approval}
    names = {e.name for e in ir.environments}
    workflows = root / folder(sample, "github-actions")
    deliver = sorted(workflows.glob("deliver-*.yml"))
    pipelines = _pipelines(root, folder(sample, "terraform"))

    # exactly one deliverer per service x environment
    if ir.delivery == "github-actions":
        assert [p.name for p in deliver] == sorted(deliver_file(s) for s in ir.services)
        assert pipelines == {}
    else:
        assert deliver == []
        assert len(pipelines) == len(ir.services) * len(ir.environments)

    # GitHub Actions: routing by branch; every deploy job runs in its GitHub environment
    for wf_path in deliver:
        wf = expand(wf_path)  # as GitHub runs it: route.yml and deploy.yml in it
        step = wf["jobs"]["route"]["steps"][0]
        for ref, expected in GITFLOW_REFS.items():
            out = route(step, ref, tmp_path)
            got = {e.name for e in ir.environments if out[e.name] == "true"}
            assert got == expected & names, (wf_path.name, ref, got)
            assert out["any"] == ("true" if expected & names else "false")
        deploys = {
            job_id: job
            for job_id, job in wf["jobs"].items()
            if job_id.startswith("deploy-") and "/" not in job_id  # not its DAST's jobs
        }
        environments = {
            job_id.removeprefix("deploy-"): j["environment"] for job_id, j in deploys.items()
        }
        assert environments == {name: name for name in names}
        for job_id, job in deploys.items():
            if job_id.startswith("deploy-"):
                env_name = job_id.removeprefix("deploy-")
                assert job["if"] == f"needs.route.outputs.{env_name} == 'true'"

    # Terraform: one pipeline per service x environment, same branches, same gates
    for name, p in pipelines.items():
        env = next(e for e in ir.environments if name.endswith("-" + e.name))
        push = p["trigger"][0]["git_configuration"][0]["push"][0]
        assert push["branches"][0]["includes"] == list(env.branches)
        stages = [s["name"] for s in p["stage"]]
        assert ("Approval" in stages) == (env.name in approvals)
        assert stages[0] == "Source" and stages[-1] == ("Dast" if env.dast else "Deploy")

    # Argo CD: one Application per service x environment, into that environment
    for svc in ir.services:
        for env in ir.environments:
            app = yaml.safe_load(
                (root / folder(sample, "argocd") / f"{svc.name}-{env.name}.yaml").read_text()
            )
            assert app["spec"]["destination"]["namespace"] == env.namespace
            assert app["spec"]["source"]["helm"]["valueFiles"] == [
                f"values-{env.name}.yaml",
                f"image-{env.name}.yaml",
            ]


@pytest.mark.parametrize("order", ["exclusion-last", "exclusion-first"])
def test_an_exclusion_excludes_wherever_it_is_written(order: str, tmp_path: Path) -> None:
    # '!' patterns are not last-match-wins: GitHub Actions and CodePipeline agree
    patterns = ['"release/*"', '"!release/old-*"']
    if order == "exclusion-first":
        patterns.reverse()
    text = (ROOT / "samples" / "ecommerce" / "pipeline.yaml").read_text("utf-8")
    text = text.replace('branches: ["release/*"]', f"branches: [{', '.join(patterns)}]")
    assert "release/old-*" in text
    from pipecompile.commands.cli import main

    root = tmp_path / "repo"
    root.mkdir()
    (root / "pipeline.yaml").write_text(as_github_delivered(text))
    assert main(["build", "-q", "-f", str(root / "pipeline.yaml")]) == 0
    wf = expand(root / ".github/workflows/deliver-order-service.yml")
    step = wf["jobs"]["route"]["steps"][0]
    assert route(step, "release/2.0", tmp_path)["staging"] == "true"
    assert route(step, "release/old-1", tmp_path)["staging"] == "false"
    assert "!release/old-*" not in wf["on"]["push"]["branches"]  # GitHub never sees a '!'
    (root / "pipeline.yaml").write_text(text)
    assert main(["build", "-q", "-f", str(root / "pipeline.yaml")]) == 0
    pipelines = _pipelines(root)
    push = pipelines["ecommerce-order-service-staging"]["trigger"][0]["git_configuration"][0]
    branches = push["push"][0]["branches"][0]
    assert branches["includes"] == ["release/*", "hotfix/*"]  # hotfixes: the release path
    assert branches["excludes"] == ["release/old-*"]


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s != "storefront"])
def test_a_manual_start_builds_only_a_branch_the_environment_deploys(
    built: dict[str, Path], sample: str
) -> None:
    # issue 26: BranchName = "main" in the feature and release pipelines, so a manual
    # "Release change" built main into development (CodePipeline user guide,
    # pipelines-filter: "the branch in the BranchName field in the action configuration
    # is the default when the pipeline is started manually"; a push trigger with branch
    # filters uses the pushed branch instead). BranchName is a branch the environment
    # deploys, or, where it names only patterns, a name git refuses as a branch (no such
    # branch can exist: a manual start without a source revision override fails at its
    # Source stage instead of building another branch).
    ir = compile_file(ROOT / "samples" / sample / "pipeline.yaml")
    pipelines = _pipelines(built[sample], folder(sample, "terraform"))
    assert pipelines
    for name, p in pipelines.items():
        env = next(e for e in ir.environments if name.endswith("-" + e.name))
        source = p["stage"][0]["action"][0]
        branch = source["configuration"]["BranchName"]
        refname = subprocess.run(
            ["git", "check-ref-format", "--branch", branch], capture_output=True, check=False
        )
        if refname.returncode == 0:
            assert branch in env.includes and branch not in env.excludes, (name, branch)
        else:
            assert not any(not set("*?[]").intersection(b) for b in env.includes), name
