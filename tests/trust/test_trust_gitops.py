"""Per-tier GitOps trust (issue 28, item 2) and explain's trust report: an approval
environment can read a GitOps repository that only its own deployer writes; the
reference's single repository stays valid and explain warns what it allows."""

from __future__ import annotations

import hcl2
import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.insight.explain import explain_event
from pipecompile.insight.trust import trust_report
from pipecompile.targets.common import DEPLOY_BUILDSPEC
from pipecompile.targets.registry import render_all
from tests.conftest import ROOT, codebuild_deploy, hcl_norm

REFERENCE = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
PROD_REPO = "git@github.com:example/ecommerce-production.git"


def per_tier(text: str = REFERENCE, repo: str = PROD_REPO) -> str:
    old = "    cluster: https://kubernetes.default.svc\n    url: https://shop.example.com\n"
    assert old in text
    return text.replace(old, old + f"    gitops:\n      repository: {repo}\n      revision: main\n")


def test_an_approval_environment_reads_its_own_gitops_repository() -> None:
    ir = compile_bytes("pipeline.yaml", per_tier().encode())
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    argocd, codebuild = ir.output("argocd"), ir.output("codebuild")
    for svc in ir.services:
        for dep in svc.deployments:
            app = yaml.safe_load(files[f"{argocd}/{dep.app_name}.yaml"])
            source = app["spec"]["source"]
            prod = dep.environment == "production"
            assert source["repoURL"] == (PROD_REPO if prod else ir.gitops.repository)
            assert source["targetRevision"] == ("main" if prod else "HEAD")
    project = yaml.safe_load(files[f"{argocd}/project-production.yaml"])
    assert project["spec"]["sourceRepos"] == [PROD_REPO]  # nothing else syncs there
    for env in ir.environments:
        # the one deploy buildspec, with what its environment's project sets (Terraform)
        got = codebuild_deploy(
            files[f"{codebuild}/{DEPLOY_BUILDSPEC}"],
            files[f"{ir.output('terraform')}/codebuild.tf"],
            env.name,
        )
        want = PROD_REPO if env.name == "production" else ir.gitops.repository
        assert got["GITOPS_REPOSITORY"] == want
        # its credential: only its own deploy role reads it (the IAM is in
        # test_trust_attacks); the secret is per environment
        assert got[ir.gitops.credential] == ("secret", env.gitops_secret_name)
    iam = hcl_norm(hcl2.loads(files[f"{ir.output('terraform')}/iam.tf"]))
    readers = [
        label
        for d in iam["data"]
        for label, body in d.get("aws_iam_policy_document", {}).items()
        for st in body.get("statement", [])
        # production's own secret, counted by phases.tf: its one instance
        if "${aws_secretsmanager_secret.gitops_deploy_production[0].arn}" in st.get("resources", [])
    ]
    assert readers == ["deploy_production"]
    report = "\n".join(trust_report(ir))
    assert (
        f"Argo CD reads {PROD_REPO} at main (no other environment's deployer writes it)" in report
    )
    assert "rewrite production's folder" not in report
    assert "rewrite staging's folder" in report  # staging still shares the repository


def test_the_reference_single_repository_stays_valid_and_explain_warns() -> None:
    ir = compile_bytes("pipeline.yaml", REFERENCE.encode())
    assert all(e.gitops_repository == ir.gitops.repository for e in ir.environments)
    lines = explain_event(ir, "push", "main")
    warning = next(line for line in lines if "warning:" in line)
    assert "development, testing deploy to the same GitOps repository" in warning
    assert "service account" in warning and "older digest" in warning
    assert "environments.production.gitops.repository" in warning
    assert any(
        "who can approve: only the principals of var.approvers_production "
        "(arn:aws:iam::123456789012:role/ecommerce-production-approvers)" in x
        for x in lines
    )
    assert any(
        "admission: Kyverno ImageValidatingPolicy ecommerce-production-verify-images" in x
        for x in lines
    )


def test_an_environment_repository_with_another_scheme_is_refused() -> None:
    text = per_tier(repo="https://github.com/example/ecommerce-production.git")
    with pytest.raises(PipelineError) as exc:
        compile_bytes("pipeline.yaml", text.encode())
    messages = [d.message for d in exc.value.diagnostics]
    assert any("must use the same scheme as gitops.repository" in m for m in messages), messages


@pytest.mark.parametrize("sample", ["ecommerce", "storefront", "minimal", "shared-account"])
def test_explain_trust_covers_every_environment(sample: str) -> None:
    p = ROOT / "samples" / sample / "pipeline.yaml"
    ir = compile_bytes(str(p), p.read_bytes())
    report = trust_report(ir)
    for env in ir.environments:
        i = report.index(f"environment {env.name} (namespace {env.namespace} on {env.cluster}):")
        block = report[i + 1 : i + 7]
        for what in ("build", "sign", "approve", "deploy"):
            assert any(line.startswith(f"  who can {what}: ") for line in block), (env.name, what)
        assert any(line.startswith("  GitOps: Argo CD reads ") for line in block)
        assert any(line.startswith("  admission: ") for line in report[i + 1 : i + 9])


def test_explain_trust_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from pipecompile.commands.cli import main

    assert main(["explain", "--trust", "-f", str(ROOT / "samples/storefront/pipeline.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("environment development (namespace storefront-development")
    assert "who can approve: the required reviewers of GitHub environment 'production'" in out


def test_approvers_without_an_approval_are_a_warning() -> None:
    text = REFERENCE.replace(
        "    branches: [develop]\n", "    branches: [develop]\n    approvers: [qa@example.com]\n"
    )
    ir = compile_bytes("pipeline.yaml", text.encode())
    (w,) = [w for w in ir.warnings if "approvers would never be notified" in w.message]
    assert w.severity == "warning" and "testing has no approval" in w.message


def test_sharing_an_approval_environments_repository_is_a_located_warning() -> None:
    """The reference's single repository stays valid: lowering warns (PC208), once per
    approval environment, at gitops.repository, saying what the sharing allows."""
    ir = compile_bytes("pipeline.yaml", REFERENCE.encode())
    shared = [w for w in ir.warnings if w.code == "PC208"]
    assert [w.message.split(" ", 1)[0] for w in shared] == ["staging", "production"]
    for w in shared:
        assert w.severity == "warning" and w.path == ("gitops", "repository")
        assert "shares its GitOps repository with development, testing" in w.message
        assert "Argo CD syncs it without an approval" in w.message
        # the whole truth: the workloads change, not only their images
        for what in ("command", "service account", "environment", "volumes", "analysis"):
            assert what in w.message, what
        assert "older digest signed for" in w.message
        assert "refuses only images not signed" in w.message
    line = REFERENCE.splitlines()[shared[0].line - 1]
    assert line.strip().startswith("repository: git@github.com:example/ecommerce-infra.git")
    # production on its own repository: only staging is still warned about
    ir = compile_bytes("pipeline.yaml", per_tier().encode())
    assert [w.message.split(" ", 1)[0] for w in ir.warnings if w.code == "PC208"] == ["staging"]


def test_two_approval_environments_sharing_a_repository_are_warned_about() -> None:
    text = per_tier()
    old = "    approval: true\n    namespace: ecommerce-staging\n"
    assert old in text
    text = text.replace(
        old, old + f"    gitops:\n      repository: {PROD_REPO}\n      revision: main\n"
    )
    ir = compile_bytes("pipeline.yaml", text.encode())
    (w,) = [w for w in ir.warnings if w.code == "PC208" and w.message.startswith("production")]
    assert "with staging's approval only" in w.message
    assert w.path == ("environments", "production", "gitops", "repository")
    report = "\n".join(trust_report(ir))
    assert "note: staging (approved by its own approvers) also writes this repository" in report


@pytest.mark.parametrize("sample", ["storefront"])
def test_the_hardened_sample_gives_each_approval_environment_its_own_repository(
    sample: str,
) -> None:
    p = ROOT / "samples" / sample / "pipeline.yaml"
    ir = compile_bytes(str(p), p.read_bytes())
    assert not [w for w in ir.warnings if w.code == "PC208"]
    repos = [e.gitops_repository for e in ir.environments]
    assert len(set(repos)) == len(repos)


def test_the_trust_report_states_what_is_not_refused_yet() -> None:
    """Attacker traces left open (issue 28): explain --trust says so instead of implying
    a guard.  A feature build (dev role, dev key) can push src-<tree> for a tree develop
    builds later; a GitHub approval environment has no reviewers until someone names them."""
    ir = compile_bytes("pipeline.yaml", REFERENCE.encode())
    report = "\n".join(trust_report(ir))
    testing = report.split("environment testing", 1)[1].split("environment staging", 1)[0]
    assert "a build of feature/* (same role, same key) can push" in testing
    assert "testing's build reuses it" in testing
    development = report.split("environment testing", 1)[0]
    assert "can push the image of a tree" not in development
    sf = (ROOT / "samples/storefront/pipeline.yaml").read_bytes()
    report = "\n".join(trust_report(compile_bytes("pipeline.yaml", sf)))
    assert "sets no reviewers" in report and '"reviewers": [{"type": "Team"' in report


def test_explain_trust_says_which_environments_share_a_cluster() -> None:
    """Trace finding 5: every environment of the reference runs in one cluster and no
    NetworkPolicy is generated; explain --trust says who shares it and what that allows,
    and an environment on a cluster of its own is told so."""
    ir = compile_bytes("pipeline.yaml", REFERENCE.encode())
    report = trust_report(ir)
    prod = next(x for x in report if x.startswith("  cluster: ") and "production's" in x)
    assert prod.startswith("  cluster: shared with development, testing, staging")
    assert "(also development, testing's, which run code no one approved)" in prod
    assert "no NetworkPolicy is generated" in prod
    # true of the chart: it renders no NetworkPolicy (were it to, its AppProjects would
    # have to admit it: tests/targets/argocd/test_trust_argocd.py checks every kind)
    from pipecompile.targets.argocd import CHART_KINDS

    assert ("networking.k8s.io", "NetworkPolicy") not in CHART_KINDS
    old = "    cluster: https://kubernetes.default.svc\n    url: https://shop.example.com\n"
    own = REFERENCE.replace(old, old.replace("kubernetes.default.svc", "prod.k8s.example.com"))
    report = trust_report(compile_bytes("pipeline.yaml", own.encode()))
    i = report.index(
        "environment production (namespace ecommerce on https://prod.k8s.example.com):"
    )
    assert "  cluster: https://prod.k8s.example.com, no other environment runs there" in report[i:]
    staging = next(x for x in report if x.startswith("  cluster: ") and "staging's" in x)
    assert "shared with development, testing (" in staging


def test_explain_trust_names_who_may_record_a_dast_pass() -> None:
    ir = compile_bytes("pipeline.yaml", REFERENCE.encode())
    report = trust_report(ir)
    gates = [x for x in report if x.startswith("  DAST gate: ")]
    assert len(gates) == len([e for e in ir.environments if e.after_dast]) == 1
    assert (
        "recorded as passed in staging in DynamoDB table ecommerce-promotions, which only "
        "IAM role ecommerce-codebuild-dast writes" in gates[0]
    )
