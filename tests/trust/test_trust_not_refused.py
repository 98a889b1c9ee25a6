"""explain --trust names what is not refused yet (README, "Not refused yet"), each only
where its condition holds (issue 28 trace, item 3)."""

from __future__ import annotations

from pipecompile.compiler import compile_bytes
from pipecompile.insight.trust import trust_lines
from pipecompile.ir import IR
from tests.conftest import ROOT


def _ir(sample: str) -> IR:
    p = ROOT / f"samples/{sample}/pipeline.yaml"
    return compile_bytes(str(p), p.read_bytes())


def _open(ir: IR, env: str) -> list[str]:
    lines = trust_lines(ir, ir.environment(env))
    return [line for line in lines if line.startswith("not refused yet:")]


def test_codepipeline_names_the_release_squat() -> None:
    ir = _ir("ecommerce")
    staging = _open(ir, "staging")
    assert any("rel-<its own tree>" in line for line in staging)
    # the mark reads staging's newest audit row (tests/trust/test_trust_dast_mark.py)
    assert not any("without checking that staging ran that digest" in line for line in staging)
    # signing is on: the sign project reads the digest's findings itself
    assert not any("ECR scan gate runs in the build session" in line for line in staging)
    assert not any("scan" in line for line in staging)
    # signing is on: the build's variables reach no later action, so no injection line
    assert not any("EnvironmentVariables JSON" in line for line in staging)
    # the dev tier's environments: no release squat, no approval text
    assert not any("rel-<" in line for line in _open(ir, "development"))


def test_github_names_the_branch_trust_of_the_release_role_and_the_dast_environment() -> None:
    ir = _ir("storefront")
    staging = _open(ir, "staging")
    assert not any("OIDC trust is by branch ref" in line for line in staging)
    assert any(
        "trusts only build.yml's jobs in GitHub environment 'build-release'" in line
        and "no required reviewers" in line
        for line in staging
    )
    assert any("'staging-dast'" in line and "no required reviewers" in line for line in staging)
    assert not any("build-release" in line for line in _open(ir, ir.environments[0].name))
    # a feature branch's caller of build.yml, deploy.yml or zap.yml at a trusted branch
    # is refused by the trust itself (the ref claim, tests/trust/
    # test_trust_oidc_subject.py): no longer listed as not refused
    production = _open(ir, "production")
    for line in staging + production:
        assert ".yml@<" not in line and "presents" not in line, line


def test_without_an_audit_table_the_dast_mark_checks_nothing_and_says_so() -> None:
    p = ROOT / "samples/ecommerce/pipeline.yaml"
    text = p.read_text()
    assert "  deployments_table: ecommerce-deployments\n" in text
    ir = compile_bytes(
        "pipeline.yaml", text.replace("  deployments_table: ecommerce-deployments\n", "").encode()
    )
    assert not ir.deployments_table
    staging = _open(ir, "staging")
    assert any("without checking that staging ran that digest" in line for line in staging)
