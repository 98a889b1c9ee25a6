"""Issue 28, attacker trace 3: a writer pushes ``release/a/b`` (a name the rulesets for
``release/*`` do not protect, and GitHub's ``*`` does not match) and assumes the release
role from a workflow of their own; IAM's ``*`` spans '/', so the trust policy must refuse
nested names itself.  Evaluated from the generated Terraform (tests/iam_eval.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.insight.ruleset import release_ruleset, ruleset
from pipecompile.ir import IR
from pipecompile.targets.common import glob_to_regex
from pipecompile.targets.terraform import render
from pipecompile.targets.terraform.oidc import iam_alternatives, nested_cover
from tests.conftest import ROOT
from tests.iam_eval import Account
from tests.trust.test_trust_environments import fnmatch_pathname

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


def test_a_nested_release_branch_cannot_assume_the_release_role() -> None:
    ir_repo = "example/storefront"
    acct = Account(STOREFRONT / "infrastructure/terraform", "345678901234")
    ref = f"repo:{ir_repo}:ref:refs/heads/"
    for name in ("release/1.4", "hotfix/x", "main"):
        assert _assume(acct, "github_release", ref + name), name
    # the attack: GitHub's release/* does not match these, IAM's '*' would
    for name in ("release/a/b", "release/1.4/x/y", "hotfix/a/b", "main/x", "xmain"):
        assert not _assume(acct, "github_release", ref + name), name
    assert _assume(acct, "github_build", ref + "feature/x")
    assert not _assume(acct, "github_build", ref + "feature/x/y")
    assert not _assume(acct, "github_build", ref + "release/1")


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
def test_the_trust_policy_admits_exactly_what_githubs_pattern_matches(
    tmp_path: Path, pattern: str
) -> None:
    """Per pattern, over names with and without extra slashes: IAM (as generated) assumes
    the release role exactly when GitHub's filter pattern (targets/common.py's
    glob_to_regex, what the workflows route by) matches the branch."""
    acct, ir = _account(tmp_path, {'["release/*"]': [pattern]})
    repo = ir.repository
    assert pattern in ir.release_branches
    github = re.compile("^(" + "|".join(glob_to_regex(b) for b in ir.release_branches) + ")$")
    for name in NAMES:
        want = bool(github.match(name))
        got = _assume(acct, "github_release", f"repo:{repo}:ref:refs/heads/{name}")
        assert got == want, (pattern, name, want)


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
