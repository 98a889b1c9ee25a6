"""Issue 28, attacker trace 3: a writer pushes a branch (``release/x``, or ``release/a/b``,
a name the rulesets for ``release/*`` do not protect and GitHub's ``*`` does not match)
and assumes the release role from a workflow of their own.  No build role trusts a branch
ref (IAM evaluated from the generated Terraform, tests/iam_eval.py); each trusts its
GitHub environment, whose deployment branch policy GitHub matches itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.insight.environments import environment_requests
from pipecompile.insight.ruleset import release_ruleset, ruleset
from pipecompile.ir import IR
from pipecompile.targets.common import glob_to_regex
from pipecompile.targets.terraform import render
from pipecompile.targets.terraform.oidc import iam_alternatives, nested_cover
from tests.conftest import ROOT
from tests.iam_eval import Account, github_subject
from tests.trust.test_trust_environments import fnmatch_pathname, may_run, policies

STOREFRONT = ROOT / "samples/storefront"
OIDC = "token.actions.githubusercontent.com"
AUD = {f"{OIDC}:aud": "sts.amazonaws.com"}


def _assume(acct: Account, role: str, subject: str) -> bool:
    provider = ("Federated", f"arn:aws:iam::{acct.account}:oidc-provider/{OIDC}")
    return acct.may_assume(role, provider, **AUD, **{f"{OIDC}:sub": subject})


def _account(tmp_path: Path, branches: dict[str, list[str]]) -> tuple[Account, IR]:
    """The storefront sample with other branch patterns (by the text of the old ones),
    its Terraform rendered."""
    text = (STOREFRONT / "pipeline.yaml").read_text()
    for old, patterns in branches.items():
        assert f"branches: {old}\n" in text
        text = text.replace(f"branches: {old}\n", f"branches: {json.dumps(patterns)}\n")
    raw = text.encode()
    ir = compile_bytes("pipeline.yaml", raw)
    for name, text in render(ir).items():
        (tmp_path / Path(name).name).write_text(text)
    return Account(tmp_path, ir.aws.account_id), ir


def test_no_branch_ref_assumes_a_build_role() -> None:
    """The attack: a writer pushes a branch (any ref whoever may push creates: release/x
    or a nested release/a/b the rulesets' release/* would not name) with a workflow of
    their own and asks for the release role. Neither build role trusts a branch ref;
    each trusts only its GitHub environment's subject, as the deploy roles do."""
    acct = Account(STOREFRONT / "infrastructure/terraform", "345678901234")
    repo = "example/storefront"
    ref = f"repo:{repo}:ref:refs/heads/"
    for role in ("github_release", "github_build"):
        for name in ("release/1.4", "release/a/b", "hotfix/x", "main", "feature/x", "xmain"):
            assert not _assume(acct, role, ref + name), (role, name)
        assert not _assume(acct, role, f"repo:{repo}:pull_request")

    def build(branch: str, environment: str) -> str:
        return github_subject(repo, "build.yml", branch, environment)

    assert _assume(acct, "github_release", build("release/1.4", "build-release"))
    assert _assume(acct, "github_build", build("feature/x", "build"))
    for other in ("build", "staging", "production", "ci-release", "build-release-x"):
        assert not _assume(acct, "github_release", build("release/1.4", other)), other
    assert not _assume(acct, "github_build", build("feature/x", "build-release"))


def test_only_a_release_branch_runs_the_build_job_in_build_release() -> None:
    """What keeps a feature branch from that subject is the environment's deployment
    branch policy (explain --environments): a workflow that names build-release on
    feature/x never starts that job; build.yml runs a release build there, any other
    in build."""
    ir = compile_bytes(
        str(STOREFRONT / "pipeline.yaml"), (STOREFRONT / "pipeline.yaml").read_bytes()
    )
    policy = policies(environment_requests(ir))
    assert policy["build-release"] == list(ir.release_branches)
    for name in ("feature/x", "feature/release/1", "release/a/b", "develop", "mainx"):
        assert not may_run(policy, "build-release", name), name
    for name in ("release/1.4", "hotfix/x", "main"):
        assert may_run(policy, "build-release", name), name
    assert may_run(policy, "build", "feature/x") and not may_run(policy, "build", "release/1")
    build = yaml.safe_load((STOREFRONT / ".github/workflows/build.yml").read_text())
    job = build["jobs"]["build"]
    assert job["environment"] == "${{ inputs.release && 'build-release' || 'build' }}"
    # the role follows the same input: the release role only in build-release
    role = next(s for s in job["steps"] if s["name"] == "Configure AWS credentials (OIDC)")
    assert role["with"]["role-to-assume"] == (
        f"${{{{ inputs.release && '{ir.aws.github_release_role_arn}' || "
        f"'{ir.aws.github_build_role_arn}' }}}}"
    )


NAMES = [
    "main",
    "mainx",
    "release/1",
    "release/1.2",
    "release/a/b",
    "release/a/b/c",
    "release/",
    "releases/1",
    "hotfix/v1",
    "hotfix/v11",
    "hotfix/v",
    "hotfix/va",
    "hotfix/a/v1",
    "rc-1/x",
    "rc-1/x/y",
    "rc-a/x",
    "team/a/release/b",
    "team/release/b",
    "release/1/x",
    "release/a/b/x",
    "hotfix/1/2",
]
PATTERNS = [
    "main",
    "release/*",
    "release/**",
    "hotfix/v[0-9]",
    "hotfix/v1?",
    "rc-*/*",
    "release/*/x",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_build_release_admits_no_branch_githubs_pattern_refuses(
    tmp_path: Path, pattern: str
) -> None:
    """Per pattern, over names with and without extra slashes: the build-release
    environment's policy (fnmatch, FNM_PATHNAME) admits a branch only when GitHub's
    filter pattern (targets/common.py's glob_to_regex, what the workflows route by)
    matches it, exactly so but for '**' (fnmatch reads a trailing '**' as '*': a
    release build on release/a/b is refused, never a feature branch admitted)."""
    acct, ir = _account(tmp_path, {'["release/*"]': [pattern]})
    assert pattern in ir.release_branches
    policy = policies(environment_requests(ir))
    github = re.compile("^(" + "|".join(glob_to_regex(b) for b in ir.release_branches) + ")$")
    for name in NAMES:
        want = bool(github.match(name))
        got = may_run(policy, "build-release", name)
        assert got <= want, (pattern, name)
        if "**" not in pattern:
            assert got == want, (pattern, name)
        # the release role's trust reads the pattern as GitHub does, on the same names
        sub = github_subject(ir.repository, "build.yml", name, "build-release")
        assert _assume(acct, "github_release", sub) == want, (pattern, name)


def test_a_literal_or_double_star_pattern_needs_no_exclusion() -> None:
    assert iam_alternatives("main") == [("main", [])]
    assert iam_alternatives("release/**") == [("release/*", [])]
    assert iam_alternatives("release/*") == [("release/*", ["release/*/*"])]
    assert iam_alternatives("a/*-*") == [("a/*-*", ["a/*/*-*", "a/*-*/*"])]
    assert iam_alternatives("v1?") == [("v1", []), ("v", [])]


def test_the_rulesets_protect_the_nested_names_too() -> None:
    """Defence in depth: the merge and the creation rulesets cover release/a/b too
    (fnmatch with FNM_PATHNAME: release/* alone would not; '**/' spans folders)."""
    assert nested_cover("release/*") == ["release/*", "release/*/**/*"]
    assert nested_cover("main") == ["main"]
    assert not fnmatch_pathname("refs/heads/release/*", "refs/heads/release/a/b")
    p = STOREFRONT / "pipeline.yaml"
    ir = compile_bytes(str(p), p.read_bytes())
    for body in (ruleset(ir), release_ruleset(ir)):
        include = body["conditions"]["ref_name"]["include"]
        for name in ("release/1", "release/a/b", "release/a/b/c", "hotfix/a/b"):
            ref = f"refs/heads/{name}"
            assert any(fnmatch_pathname(i, ref) for i in include), (name, include)
        assert not any(fnmatch_pathname(i, "refs/heads/feature/a/b") for i in include)
