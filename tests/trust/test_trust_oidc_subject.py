"""Issue 28, attacker trace of the GitHub environments: GitHub creates an environment a
workflow names but the repository lacks, with no protection rules ("anyone that can edit
workflows in the repository can create environments via a workflow file", GitHub docs,
managing environments).  So a trust that names only the environment hands the release
key to a feature branch's own workflow naming ``environment: build-release`` until an
admin creates that environment.  Every GitHub OIDC role now trusts one workflow file's
jobs, in its environment, on the branches that environment admits: the ``sub`` of the
repository's subject template ``["repo", "context", "ref", "job_workflow_ref"]``
(terraform/oidc.py), and with GitHub's default ``sub`` (template not set) no role at all.
The branch is the run's own (``ref``): a feature branch's workflow calling the trusted
file at a trusted branch (``<repo>/.github/workflows/deploy.yml@main``) is refused too
(attacker trace of the first template, which named only the called file's ref).

IAM evaluated from the generated Terraform (tests/iam_eval.py); the subjects as GitHub
issues them (tests/iam_eval.py's github_subject)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from pipecompile.commands.cli import main
from pipecompile.compiler import compile_bytes
from pipecompile.targets.terraform import describe
from pipecompile.targets.terraform.oidc import SUBJECT_TEMPLATE, workflow_subjects
from tests.conftest import ROOT
from tests.iam_eval import Account, github_subject

STOREFRONT = ROOT / "samples/storefront"
OIDC = "token.actions.githubusercontent.com"
REPO = "example/storefront"
ir = compile_bytes(str(STOREFRONT / "pipeline.yaml"), (STOREFRONT / "pipeline.yaml").read_bytes())
acct = Account(STOREFRONT / ir.output("terraform"), ir.aws.account_id)
WORKFLOWS = STOREFRONT / ir.output("github-actions")


def assume(role: str, sub: str) -> bool:
    provider = ("Federated", f"arn:aws:iam::{acct.account}:oidc-provider/{OIDC}")
    return acct.may_assume(
        role, provider, **{f"{OIDC}:aud": "sts.amazonaws.com", f"{OIDC}:sub": sub}
    )


def github_roles() -> list[str]:
    """The roles a GitHub OIDC token may assume (their trust names the provider)."""
    return sorted(
        label
        for label, role in acct.roles.items()
        if any(
            p[0] == "Federated" and OIDC in " ".join(p[1]) for s in role.trust for p in s.principals
        )
    )


def test_every_github_role_is_covered() -> None:
    assert github_roles() == sorted(
        [
            "github_build",
            "github_release",
            "github_dast",
            "github_drift",
            "github_review",
            "github_daily_summary",
            "github_metrics",
            *("github_deploy_" + e.name for e in ir.environments),
        ]
    )


def test_a_feature_branch_naming_build_release_gets_no_release_role() -> None:
    """(a) The attack: on feature/x, a workflow of the attacker's own naming
    ``environment: build-release`` (GitHub creates that environment unprotected if it is
    missing), or build.yml itself edited on feature/x and run there.  (c) The release
    build (build.yml on release/1.2 in build-release) still assumes it."""
    for workflow in ("steal.yml", "build.yml", "deliver-web.yml"):
        for branch in ("feature/x", "develop", "release-x", "release/a/b", "mainx"):
            sub = github_subject(REPO, workflow, branch, "build-release")
            assert not assume("github_release", sub), sub
    # its own workflow on a release branch is refused too: the file is named
    assert not assume(
        "github_release", github_subject(REPO, "steal.yml", "release/1.2", "build-release")
    )
    # nor does a job without an environment get it, on any branch
    assert not assume("github_release", github_subject(REPO, "build.yml", "release/1.2"))
    for branch in ("release/1.2", "hotfix/1", "main"):
        assert assume("github_release", github_subject(REPO, "build.yml", branch, "build-release"))
    # the dev build role: build.yml on feature branches, in build only
    assert assume("github_build", github_subject(REPO, "build.yml", "feature/x", "build"))
    assert not assume("github_build", github_subject(REPO, "steal.yml", "feature/x", "build"))
    assert not assume(
        "github_build", github_subject(REPO, "build.yml", "feature/x", "build-release")
    )


def test_a_feature_branch_naming_production_gets_no_deploy_role() -> None:
    """The same for a deploy role: deploy.yml on main in production can, deploy.yml (or
    a file of its own) on feature/x in production cannot."""
    prod = "github_deploy_production"
    assert assume(prod, github_subject(REPO, "deploy.yml", "main", "production"))
    for workflow, branch in (
        ("deploy.yml", "feature/x"),
        ("steal.yml", "feature/x"),
        ("steal.yml", "main"),
        ("rollback.yml", "main"),  # the caller's file: the called deploy.yml's job assumes it
        ("deploy.yml", "release/1.2"),  # staging's branches, not production's
    ):
        sub = github_subject(REPO, workflow, branch, "production")
        assert not assume(prod, sub), sub
    assert not assume(prod, github_subject(REPO, "deploy.yml", "main", "staging"))
    assert not assume(prod, github_subject(REPO, "deploy.yml", "main"))


def test_a_feature_branch_calling_the_trusted_file_at_a_trusted_branch_is_refused() -> None:
    """Attacker trace of the first template (repo, context, job_workflow_ref): with an
    environment its ``sub`` named the called file at the ref the caller names, not the
    run's branch.  A workflow on feature/x calling
    ``<repo>/.github/workflows/deploy.yml@main`` in ``production`` (its own commit, its
    own chart and values) presented production's subject; so did build.yml@release/1.2
    in build-release and zap.yml@<a staging branch> in the DAST environment.  The ``ref``
    claim is the run's: each is refused, whatever the called ref."""
    dast = ir.security.dast
    assert dast is not None
    staging = ir.environment(dast.environment)
    cases = [
        ("github_deploy_production", "deploy.yml", "main", "production"),
        ("github_release", "build.yml", "release/1.2", "build-release"),
        ("github_dast", "zap.yml", staging.includes[0], dast.github_environment),
        ("github_deploy_" + staging.name, "deploy.yml", staging.includes[0], staging.name),
    ]
    for role, workflow, trusted, environment in cases:
        # the legitimate job: the caller on the trusted branch, the file from its commit
        assert assume(role, github_subject(REPO, workflow, trusted, environment)), role
        for branch in ("feature/x", "develop", "mainx", "release-x"):
            if fnmatchcase(branch, trusted):
                continue
            sub = github_subject(REPO, workflow, branch, environment, called_at=trusted)
            assert not assume(role, sub), sub


def test_the_called_file_may_read_at_a_commit() -> None:
    """What ``job_workflow_ref`` reads for a ``$/`` call is documented nowhere (it
    resolves "at the exact commit that is running", changelog 2026-07-30): a commit SHA
    there must not refuse the legitimate job, since the run's branch is what the trust
    binds; another file at that commit is still refused."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    sub = github_subject(REPO, "deploy.yml", "main", "production", called_at=sha)
    assert sub.endswith(f"deploy.yml@{sha}")
    assert assume("github_deploy_production", sub)
    steal = github_subject(REPO, "steal.yml", "main", "production", called_at=sha)
    assert not assume("github_deploy_production", steal)
    build = github_subject(REPO, "build.yml", "feature/x", "build", called_at=sha)
    assert assume("github_build", build)


def test_without_the_subject_template_no_role_can_be_assumed() -> None:
    """(b) Fail closed: until the repository's template is set, GitHub issues its default
    ``sub`` (repo:<repo>:environment:<env>, repo:<repo>:ref:<ref>, ...), which no role
    trusts, on any branch, in any environment."""
    environments = [e.name for e in ir.environments] + [
        "build",
        "build-release",
        "compliance",
        "daily-summary",
        "staging-dast",
        None,
    ]
    branches = ["main", "release/1.2", "hotfix/1", "feature/x", "develop"]
    for role in github_roles():
        for env in environments:
            for branch in branches:
                sub = github_subject(REPO, "x.yml", branch, env, template=False)
                assert not assume(role, sub), (role, sub)
        assert not assume(role, f"repo:{REPO}:pull_request")
    # a repository still on the first template (no ``ref``) matches no trust either
    first = f"repo:{REPO}:environment:production:job_workflow_ref:{REPO}/.github/workflows/"
    assert not assume("github_deploy_production", first + "deploy.yml@refs/heads/main")


@pytest.mark.parametrize("role", github_roles())
def test_each_role_trusts_the_file_whose_job_assumes_it(role: str) -> None:
    """The workflow file each trust names is the one whose configure-aws-credentials
    step assumes that role in the generated workflows (and no other file's)."""
    arn = acct.arn(f"aws_iam_role.{role}")
    files = sorted(
        p.name
        for p in WORKFLOWS.glob("*.yml")
        if re.search(r"role-to-assume: .*" + re.escape(arn) + r"\b", p.read_text())
    )
    named = sorted(
        {
            m
            for s in acct.roles[role].trust
            for op, key, values in s.conditions
            if key == f"{OIDC}:sub" and op == "StringLike"
            for v in values
            for m in re.findall(r"/\.github/workflows/([^@]+)@", v)
        }
    )
    assert files and named == files, (role, named, files)


def _iam_admits(subjects: list[str], spans: list[list[str]], sub: str) -> bool:
    """IAM's reading of workflow_subjects' statements (StringLike, then StringNotLike;
    '*' any run of characters, ':' and '/' included, as tests/iam_eval.py reads it)."""

    def like(pattern: str) -> bool:
        return fnmatchcase(sub, pattern.replace("[", "[[]"))

    return any(
        like(s) and not any(like(n) for n in ns) for s, ns in zip(subjects, spans, strict=True)
    )


def test_a_wildcard_never_reaches_across_a_colon_into_the_next_claim() -> None:
    """IAM's ``*`` matches ':' too.  A legitimate subject has exactly the template's
    colons (a branch name never holds one, git check-ref-format), so each wildcard is
    also refused across a ':' (defence in depth: a ``**`` pattern, which may span '/',
    would otherwise let a ``*`` stretch over the job_workflow_ref of another file)."""
    subjects, spans = workflow_subjects(ir, "build.yml", ("release/*",), "build-release")
    called = f"job_workflow_ref:{REPO}/.github/workflows/build.yml@*"
    assert subjects == [f"repo:{REPO}:environment:build-release:ref:refs/heads/release/*:{called}"]
    assert [s.split(":ref:", 1)[1] for s in spans[0]] == [
        f"refs/heads/release/*/*:{called}",
        f"refs/heads/release/*:*:{called}",
    ]
    # no environment: the ref twice, each of its wildcards refused across '/' and ':'
    subjects, spans = workflow_subjects(ir, "metrics.yml", ("release/**",), None)
    assert subjects == [
        f"repo:{REPO}:ref:refs/heads/release/*:ref:refs/heads/release/*:job_workflow_ref:"
        f"{REPO}/.github/workflows/metrics.yml@*"
    ]
    assert _iam_admits(subjects, spans, github_subject(REPO, "metrics.yml", "release/a/b"))
    forged = (
        f"repo:{REPO}:ref:refs/heads/release/x:ref:refs/heads/release/x:job_workflow_ref:"
        f"{REPO}/.github/workflows/steal.yml@refs/heads/release/x:job_workflow_ref:"
        f"{REPO}/.github/workflows/metrics.yml@refs/heads/release/x"
    )
    assert fnmatchcase(forged, subjects[0])  # the StringLike alone would admit it
    assert not _iam_admits(subjects, spans, forged)
    assert not _iam_admits(subjects, spans, github_subject(REPO, "steal.yml", "release/x"))


def test_explain_sets_the_subject_template_first() -> None:
    """The checklist prints the gh api command with its JSON, before the roles, and says
    no role can be assumed without it."""
    lines = describe(ir)
    (i,) = [n for n, line in enumerate(lines) if "customization/sub --input -" in line]
    line = lines[i]
    body = re.search(r"echo '(\{.*?\})'", line)
    assert body is not None
    assert (
        json.loads(body.group(1))
        == SUBJECT_TEMPLATE
        == {
            "use_default": False,
            "include_claim_keys": ["repo", "context", "ref", "job_workflow_ref"],
        }
    )
    assert f"gh api -X PUT repos/{REPO}/actions/oidc/customization/sub --input -" in line
    assert "no role can be assumed" in line
    first_role = next(n for n, x in enumerate(lines) if x.startswith("  IAM role "))
    assert i < first_role


def test_with_repository_ids_every_role_trusts_the_immutable_subject_only(
    tmp_path: Path,
) -> None:
    """A repository created, renamed or transferred on or after 2026-07-15 (or opted in)
    issues ``repo:<owner>@<owner id>/<name>@<repository id>`` (GitHub changelog
    2026-04-23, immutable subject claims): with ``source.repository_ids`` every GitHub
    role trusts that form and not the name form, which a recycled name would present;
    explain says which form each reads."""
    text = (STOREFRONT / "pipeline.yaml").read_text()
    line = f"  repository: {REPO}\n"
    assert line in text
    text = text.replace(line, line + "  repository_ids: {owner: 123456, repository: 456789}\n")
    (tmp_path / "pipeline.yaml").write_text(text)
    assert main(["build", "-q", "-f", str(tmp_path / "pipeline.yaml")]) == 0
    other = Account(tmp_path / ir.output("terraform"), ir.aws.account_id)
    immutable = "repo:example@123456/storefront@456789"
    provider = ("Federated", f"arn:aws:iam::{other.account}:oidc-provider/{OIDC}")

    def may(role: str, sub: str) -> bool:
        return other.may_assume(
            role, provider, **{f"{OIDC}:aud": "sts.amazonaws.com", f"{OIDC}:sub": sub}
        )

    for role in github_roles():
        subs = [
            v
            for s in other.roles[role].trust
            for op, key, values in s.conditions
            if key == f"{OIDC}:sub" and op == "StringLike"
            for v in values
        ]
        assert subs and all(v.startswith(immutable + ":") for v in subs), (role, subs)
    names = github_subject(REPO, "deploy.yml", "main", "production")
    assert assume("github_deploy_production", names)  # the sample, without the IDs
    assert not may("github_deploy_production", names)
    assert may("github_deploy_production", names.replace(f"repo:{REPO}:", immutable + ":", 1))
    # another ID, or the IDs swapped, is another repository
    for forged in (
        "repo:example@123456/storefront@456780",
        "repo:example@456789/storefront@123456",
    ):
        assert not may("github_deploy_production", names.replace(f"repo:{REPO}:", forged + ":", 1))
    # explain: the customization's sub_claim_prefix must print the trusts' first claim
    # (use_immutable_subject has read false for a repository issuing the IDs)
    lines = describe(compile_bytes(str(tmp_path / "pipeline.yaml"), text.encode()))
    (check,) = [x for x in lines if "--jq .sub_claim_prefix" in x]
    assert f"must print {immutable} exactly" in check
    (plain,) = [x for x in describe(ir) if "--jq .sub_claim_prefix" in x]
    assert f"must print repo:{REPO} exactly" in plain and "source.repository_ids" in plain
    assert "use_immutable_subject" not in check + plain


def test_repository_ids_without_github_delivery_is_a_warning() -> None:
    """Only GitHub delivery's roles are assumed with a GitHub token: with CodePipeline
    delivery the IDs change nothing, and the author is told (PC304, at the key)."""
    sample = ROOT / "samples/minimal/pipeline.yaml"
    text = sample.read_text()
    assert compile_bytes(str(sample), text.encode()).delivery == "codepipeline"
    line = next(x for x in text.splitlines(keepends=True) if x.startswith("  repository: "))
    text = text.replace(line, line + "  repository_ids: {owner: 1, repository: 2}\n", 1)
    other = compile_bytes(str(sample), text.encode())
    (w,) = [d for d in other.warnings if d.code == "PC304" and "repository_ids" in d.message]
    assert "changes nothing" in w.message
    assert w.line == text.splitlines().index("  repository_ids: {owner: 1, repository: 2}") + 1
