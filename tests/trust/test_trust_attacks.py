"""Issue 28: an attacker who can push a feature branch, traced path by path; each path is
refused by the IAM generated for the samples (evaluated from the Terraform by
tests/iam_eval.py), by where buildspecs come from, or by the HCL writer."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import hcl2
import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets.common import SIGN_BUILDSPEC
from pipecompile.targets.github_actions.deliver import deliver_file
from tests.conftest import ROOT, hcl_norm
from tests.iam_eval import Account, Statement, evaluate, github_subject

ECOMMERCE = ROOT / "samples/ecommerce"
STOREFRONT = ROOT / "samples/storefront"


@cache
def ir_of(sample: Path) -> IR:
    p = sample / "pipeline.yaml"
    return compile_bytes(str(p), p.read_bytes())


@cache
def account(sample: Path) -> Account:
    ir = ir_of(sample)
    return Account(sample / ir.output("terraform"), ir.aws.account_id)


def repo_arn(ir: IR, name: str) -> str:
    return f"arn:aws:ecr:{ir.aws.region}:{ir.aws.account_id}:repository/{name}"


# -- the evaluator's own rules ---------------------------------------------------------------


def test_the_evaluator_explicit_deny_wins_and_allow_is_needed() -> None:
    allow = Statement("Allow", ("s3:*",), ("arn:aws:s3:::b/*",))
    deny = Statement("Deny", ("s3:PutObject",), ("*",))
    assert evaluate([allow], "s3:GetObject", "arn:aws:s3:::b/k") == "Allow"
    assert evaluate([allow, deny], "s3:PutObject", "arn:aws:s3:::b/k") == "Deny"
    assert evaluate([allow], "s3:GetObject", "arn:aws:s3:::other/k") == "ImplicitDeny"
    # actions are case-insensitive, resources are not
    assert evaluate([allow], "S3:getobject", "arn:aws:s3:::b/k") == "Allow"
    assert evaluate([allow], "s3:GetObject", "arn:aws:s3:::B/k") == "ImplicitDeny"


def test_the_evaluator_condition_semantics() -> None:
    lead = Statement(
        "Allow",
        ("dynamodb:PutItem",),
        ("*",),
        (("ForAllValues:StringLike", "dynamodb:LeadingKeys", ("dev/*",)),),
    )
    assert evaluate([lead], "dynamodb:PutItem", "t", {"dynamodb:LeadingKeys": ["dev/a"]}) == "Allow"
    assert (
        evaluate([lead], "dynamodb:PutItem", "t", {"dynamodb:LeadingKeys": ["prod/a"]}) != "Allow"
    )
    # ForAllValues holds vacuously when the key is absent (AWS documents this pitfall)
    assert evaluate([lead], "dynamodb:PutItem", "t", {}) == "Allow"
    mfa = Statement(
        "Allow", ("sts:AssumeRole",), ("*",), (("Bool", "aws:MultiFactorAuthPresent", ("true",)),)
    )
    assert evaluate([mfa], "sts:AssumeRole", "r", {}) == "ImplicitDeny"  # absent: false
    assert evaluate([mfa], "sts:AssumeRole", "r", {"aws:MultiFactorAuthPresent": "true"}) == "Allow"
    like = Statement("Allow", ("x:Y",), ("arn:aws:x:::a?c*",))
    assert evaluate([like], "x:Y", "arn:aws:x:::abc/d") == "Allow"
    assert evaluate([like], "x:Y", "arn:aws:x:::ac") == "ImplicitDeny"


# -- tag squatting ---------------------------------------------------------------------------

BUILD_ACTIONS = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart"]


@pytest.mark.parametrize(
    ("sample", "feature", "release", "signers"),
    [
        # CodePipeline: each tier's sign project signs, never a build (issue 28)
        (ECOMMERCE, "codebuild", "codebuild_release", ("codebuild_sign", "codebuild_sign_release")),
        (STOREFRONT, "github_build", "github_release", ("github_build", "github_release")),
    ],
)
def test_a_feature_build_cannot_squat_a_release_tag(
    sample: Path, feature: str, release: str, signers: tuple[str, str]
) -> None:
    """A feature build pushes rel-<develop's tree> first: its role cannot write the release
    repository at all (a tag cannot be scoped in IAM; a repository can)."""
    ir, acct = ir_of(sample), account(sample)
    dev_signer, release_signer = signers
    for svc in ir.services:
        for action in BUILD_ACTIONS:
            assert acct.can(feature, action, repo_arn(ir, svc.image))  # its own tier: yes
            assert not acct.can(feature, action, repo_arn(ir, svc.release_image))
            assert acct.can(release, action, repo_arn(ir, svc.release_image))
            assert not acct.can(release, action, repo_arn(ir, svc.image))
            # the dev tier's signer writes signatures into its own tier's repositories only
            assert not acct.can(dev_signer, action, repo_arn(ir, svc.release_image))
        # and it cannot sign with the release key; only the release tier's signer can
        for role in (feature, dev_signer):
            assert not acct.can(role, "kms:Sign", acct.arn("aws_kms_key.release"))
        assert acct.can(release_signer, "kms:Sign", acct.arn("aws_kms_key.release"))
    # approval environments deploy only from the release repository
    for env in ir.environments:
        for svc in ir.services:
            assert ir.image_of(svc, env)[0] == (svc.release_image if env.approval else svc.image)


def test_a_dast_marker_is_written_only_by_the_dast_role() -> None:
    ir, acct = ir_of(ECOMMERCE), account(ECOMMERCE)
    dast = ir.security.dast
    assert dast is not None
    table = acct.arn("aws_dynamodb_table.promotions")
    for svc in ir.services:
        release = repo_arn(ir, svc.release_image)
        writers = sorted(r for r in acct.roles if acct.can(r, "ecr:PutImage", release))
        # only the release build writes the release repository, and the release tier's
        # sign project its signatures and attestations (cosign pushes them into the
        # image's repository; that project runs Terraform's buildspec, no branch code);
        # the DAST gate no longer needs to (its pass is an item of the promotions table)
        assert writers == ["codebuild_release", "codebuild_sign_release"]
        lead = {"dynamodb:LeadingKeys": [f"{dast.environment}/{svc.release_image}"]}
        markers = sorted(r for r in acct.roles if acct.can(r, "dynamodb:PutItem", table, **lead))
        assert markers == ["codebuild_dast"]
        # DAST: no image write, no signing, no SonarQube
        assert not acct.can("codebuild_dast", "ecr:InitiateLayerUpload", release)
        for key in ("signing", "release"):
            assert not acct.can("codebuild_dast", "kms:Sign", acct.arn(f"aws_kms_key.{key}"))
        sonar = acct.arn("aws_secretsmanager_secret.sonarqube")
        assert not acct.can("codebuild_dast", "secretsmanager:GetSecretValue", sonar)
        assert acct.can("codebuild", "secretsmanager:GetSecretValue", sonar)
    # the DAST role marks only its own environment's passes
    other = {"dynamodb:LeadingKeys": ["production/ecommerce/x-release"]}
    assert not acct.can("codebuild_dast", "dynamodb:PutItem", table, **other)


TOOLS = ROOT / ".venv-tools" / "bin"


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
@pytest.mark.parametrize(("sample", "release", "dast_role"), [
    (ECOMMERCE, "codebuild_release", "codebuild_dast"),
    (STOREFRONT, "github_release", "github_dast"),
])  # fmt: skip
def test_the_release_role_cannot_mark_its_own_digest_as_passed_dast(
    tmp_path: Path, sample: Path, release: str, dast_role: str
) -> None:
    """Trace finding 1: the release build pushes the DAST marker tag onto its own digest.
    It may: PutImage on the release repository, and ECR cannot scope a tag in IAM.  The
    gate, run as a file with the real AWS CLI against moto (the generated promotions
    table, the release repository), refuses it: a pass is an item of the promotions table,
    which only the DAST role may write; the DAST role's mark then opens it."""
    import json
    import subprocess

    import boto3

    from pipecompile.targets.common import script_path
    from tests.harness.moto import audit_table, aws_env, moto_server

    ir, acct = ir_of(sample), account(sample)
    dast = ir.security.dast
    assert dast is not None
    svc = ir.services[0]
    repo = svc.release_image
    assert acct.can(release, "ecr:PutImage", repo_arn(ir, repo))  # the squat is allowed
    table_arn = acct.arn("aws_dynamodb_table.promotions")
    lead = {"dynamodb:LeadingKeys": [f"{dast.environment}/{repo}"]}
    assert not acct.can(release, "dynamodb:PutItem", table_arn, **lead)
    assert acct.can(dast_role, "dynamodb:PutItem", table_arn, **lead)
    after = [e for e in ir.environments if e.after_dast]
    assert after
    for env in after:  # every gated environment reads the passes
        label = env.name.replace("-", "_")
        deployer = f"deploy_{label}" if ir.delivery == "codepipeline" else f"github_deploy_{label}"
        assert acct.can(deployer, "dynamodb:GetItem", table_arn, **lead)
        assert not acct.can(deployer, "dynamodb:PutItem", table_arn, **lead)
    table = audit_table(sample, "promotions", ir.output("terraform"))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + "c" * 64, "size": 2},
            "layers": [],
        }
    )  # fmt: skip
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, ir.aws.region)}  # fmt: skip
        client = {"endpoint_url": endpoint, "region_name": ir.aws.region,
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
        boto3.client("dynamodb", **client).create_table(**table)
        ecr = boto3.client("ecr", **client)
        ecr.create_repository(repositoryName=repo)
        pushed = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="rel-abc")
        digest = pushed["image"]["imageId"]["imageDigest"]
        # the squat: the marker tag the gate used to read, on the release build's digest
        ecr.put_image(
            repositoryName=repo, imageManifest=manifest, imageTag=f"dast-{dast.environment}-rel-abc"
        )
        values = {
            "PROMOTIONS_TABLE": table["TableName"],
            "ECR_REPOSITORY": repo,
            "IMAGE_URI": f"{ir.aws.ecr_registry}/{repo}",
            "IMAGE_TAG": "rel-abc",
            "IMAGE_DIGEST": digest,
            "DAST_ENVIRONMENT": dast.environment,
        }

        def run(script: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", str(script_path(script))], env={**env, **values},
                                  capture_output=True, text=True, check=False)  # fmt: skip

        gate = run("promotion-gate.sh")
        assert gate.returncode == 1, (gate.stdout, gate.stderr)
        assert f"has not passed DAST in {dast.environment}" in gate.stderr
        mark = run("dast-mark.sh")  # what the DAST role runs after a pass
        assert mark.returncode == 0, mark.stderr
        assert run("promotion-gate.sh").returncode == 0
        again = run("dast-mark.sh")  # a re-run replaces nothing
        assert again.returncode == 0 and "recorded as passed already" in again.stdout
        values["IMAGE_DIGEST"] = "sha256:" + "d" * 64  # another digest of the same tag
        assert run("promotion-gate.sh").returncode == 1


def test_the_feature_tier_cannot_touch_release_artifacts_or_cache() -> None:
    ir, acct = ir_of(ECOMMERCE), account(ECOMMERCE)
    release = f"arn:aws:s3:::{ir.aws.release_artifact_bucket}"
    dev = f"arn:aws:s3:::{ir.aws.artifact_bucket}"
    for action in ("s3:GetObject", "s3:PutObject"):
        for key in ("codebuild-cache/build-product-service-release/x", "ecommerce-product-se/x"):
            assert not acct.can("codebuild", action, f"{release}/{key}")
            assert acct.can("codebuild_release", action, f"{release}/{key}")
        assert acct.can("codebuild", action, f"{dev}/codebuild-cache/build-product-service/x")
    for label in ("deploy_development", "deploy_testing"):
        assert not acct.can(label, "s3:GetObject", f"{release}/x")
    codebuild = hcl_norm(
        hcl2.loads((ECOMMERCE / ir.output("terraform") / "codebuild.tf").read_text())
    )
    pipelines = hcl_norm(
        hcl2.loads((ECOMMERCE / ir.output("terraform") / "codepipeline.tf").read_text())
    )
    for res in pipelines["resource"]:
        for body in res.get("aws_codepipeline", {}).values():
            env = next(e for e in ir.environments if body["name"].endswith(f"-{e.name}"))
            store = body["artifact_store"][0]["location"]
            assert store == (
                "${aws_s3_bucket.release_artifacts.bucket}"
                if env.approval
                else "${aws_s3_bucket.artifacts.bucket}"
            )
    for res in codebuild["resource"]:
        for label, body in res.get("aws_codebuild_project", {}).items():
            for c in body.get("cache", []):
                bucket = "release_artifacts" if label.endswith("-release") else "artifacts"
                assert c["location"].startswith(f"${{aws_s3_bucket.{bucket}.bucket}}/")


# -- the development credential and production ----------------------------------------------


@pytest.mark.parametrize(
    ("sample", "prefix"), [(ECOMMERCE, "deploy_"), (STOREFRONT, "github_deploy_")]
)
def test_a_development_deploy_cannot_reach_production(sample: Path, prefix: str) -> None:
    ir, acct = ir_of(sample), account(sample)
    dev = f"{prefix}development"
    for svc in ir.services:
        release = repo_arn(ir, svc.release_image)
        assert not acct.can(dev, "ecr:BatchGetImage", release)  # no release image either
    if ir.delivery == "codepipeline":
        prod_secret = acct.arn("aws_secretsmanager_secret.gitops_deploy_production")
        assert not acct.can(dev, "secretsmanager:GetSecretValue", prod_secret)
        assert acct.can(f"{prefix}production", "secretsmanager:GetSecretValue", prod_secret)
        for role in ("codebuild", "codebuild_release", "codebuild_dast"):
            assert not acct.can(role, "secretsmanager:GetSecretValue", prod_secret)
    # the GitHub deploy role of production trusts only the production environment
    if ir.delivery == "github-actions":
        provider = (
            "Federated",
            f"arn:aws:iam::{ir.aws.account_id}:oidc-provider/token.actions.githubusercontent.com",
        )
        aud = {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
        sub = "token.actions.githubusercontent.com:sub"
        prod = f"{prefix}production"
        for branch, environment, may in (
            ("main", "production", True),
            ("main", "development", False),
            ("feature/x", "development", False),
            ("feature/x", None, False),
        ):
            s = github_subject(ir.repository, "deploy.yml", branch, environment)
            assert acct.may_assume(prod, provider, **aud, **{sub: s}) == may, s


# -- buildspec rewrite -----------------------------------------------------------------------


def test_a_feature_push_cannot_rewrite_a_privileged_buildspec() -> None:
    """Every project whose role reads a deploy secret, signs with the release key or writes
    a release repository runs the buildspec Terraform applied (file() of the generated
    file), never the one in the source it builds."""
    ir, acct = ir_of(ECOMMERCE), account(ECOMMERCE)
    tf = ECOMMERCE / ir.output("terraform")
    codebuild = hcl_norm(hcl2.loads((tf / "codebuild.tf").read_text()))
    release_key = acct.arn("aws_kms_key.release")
    signing_key = acct.arn("aws_kms_key.signing")
    secrets = [k for k in acct.resources if k.startswith("aws_secretsmanager_secret.g")]
    promotions = acct.arn("aws_dynamodb_table.promotions")
    assert ir.security.dast is not None
    marker = {"dynamodb:LeadingKeys": [f"{ir.security.dast.environment}/x"]}
    checked = 0
    for res in codebuild["resource"]:
        for label, body in res.get("aws_codebuild_project", {}).items():
            # a counted deploy project (phases.tf) names its role's one instance, [0]
            role = re.fullmatch(
                r"\$\{aws_iam_role\.(\w+)(?:\[0\])?\.arn\}", body["service_role"]
            ).group(1)
            privileged = (
                # either tier's key: a sign project's buildspec is Terraform's too
                any(acct.can(role, "kms:Sign", key) for key in (release_key, signing_key))
                or any(
                    acct.can(role, "secretsmanager:GetSecretValue", acct.arn(s)) for s in secrets
                )
                or any(
                    acct.can(role, "ecr:PutImage", repo_arn(ir, s.release_image))
                    for s in ir.services
                )
                # records a DAST pass, which the later environments' gates trust
                or acct.can(role, "dynamodb:PutItem", promotions, **marker)
            )
            spec = body["source"][0]["buildspec"]
            if privileged:
                m = re.fullmatch(r"\$\{file\(\"\$\{path\.module\}/([^\"]+)\"\)\}", spec)
                assert m, (label, spec)
                assert (tf / m.group(1)).resolve().is_file()  # the generated buildspec
                checked += 1
            else:
                assert label.startswith("build-") and role == "codebuild", label
    # 2 release builds, the 2 tiers' sign projects, 4 deploys, DAST
    assert checked == 2 + 2 + 4 + 1


# -- audit rows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "prefix"), [(ECOMMERCE, "deploy_"), (STOREFRONT, "github_deploy_")]
)
def test_a_deploy_role_writes_only_its_own_environments_audit_rows(
    sample: Path, prefix: str
) -> None:
    ir, acct = ir_of(sample), account(sample)
    table = acct.arn("aws_dynamodb_table.deployments")
    for env in ir.environments:
        role = f"{prefix}{env.name.replace('-', '_')}"
        for other in ir.environments:
            key = {"dynamodb:LeadingKeys": [f"{other.name}/{ir.services[0].name}"]}
            assert acct.can(role, "dynamodb:PutItem", table, **key) == (other is env)
        for action in ("dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
            assert not acct.can(role, action, table, **{"dynamodb:LeadingKeys": [f"{env.name}/x"]})
    builders = [r for r in acct.roles if "build" in r or "release" in r or "dast" in r]
    assert builders
    for role in builders:
        assert not acct.can(
            role, "dynamodb:PutItem", table, **{"dynamodb:LeadingKeys": ["production/x"]}
        )
    body = acct.resources["aws_dynamodb_table.deployments"]
    assert (body["hash_key"], body["range_key"]) == ("stream", "deployment")


# -- self-approval ---------------------------------------------------------------------------


def test_no_ci_principal_approves_and_each_approver_only_its_environment() -> None:
    ir, acct = ir_of(ECOMMERCE), account(ECOMMERCE)
    region, a = ir.aws.region, ir.aws.account_id

    def approval(pipeline: str) -> str:
        return f"arn:aws:codepipeline:{region}:{a}:{pipeline}/Approval/Approve"

    approvers = {f"approve_{e.name}": e for e in ir.environments if e.approval}
    assert sorted(approvers) == ["approve_production", "approve_staging"]
    for svc in ir.services:
        for dep in svc.deployments:
            action = approval(dep.pipeline_name)
            for role in acct.roles:
                decision = acct.decision(role, "codepipeline:PutApprovalResult", action)
                if role in approvers:
                    assert (decision == "Allow") == (approvers[role].name == dep.environment)
                else:  # every CI role: explicitly denied, whatever else it is granted
                    assert decision == "Deny", role
    # by default only the role <project>-<env>-approvers (which the operator creates) may
    # assume an approver role; another person of the account may not, nor the account
    person = ("AWS", f"arn:aws:iam::{a}:user/release-manager")
    for role, env in approvers.items():
        mfa = {**PERSON, "aws:MultiFactorAuthPresent": "true"}
        assert not acct.may_assume(role, person, **mfa)
        assert not acct.may_assume(role, ("AWS", f"arn:aws:iam::{a}:root"), **mfa)
        default = ("AWS", f"arn:aws:iam::{a}:role/{ir.project}-{env.name}-approvers")
        assert acct.may_assume(role, default, **mfa)
        assert not acct.may_assume(role, default)  # without MFA
    for role in acct.roles:
        if role not in approvers:
            assert not acct.may_assume(role, person, **{"aws:MultiFactorAuthPresent": "true"})


# a person's session: the tag its identity provider sets, and the session named after it
PERSON = {"aws:PrincipalTag/approver": "alice", "sts:RoleSessionName": "alice"}


def test_self_approval_is_refused() -> None:
    """The author of a change (a developer role of the account, with MFA, and with
    sts:AssumeRole on '*' in its own policy) cannot assume an approver role, nor can any
    CI role; only the principals the operator lists can, with MFA, each for its own
    environment's approvals."""
    ir = ir_of(ECOMMERCE)
    a = ir.aws.account_id
    managers = f"arn:aws:iam::{a}:role/release-managers"
    sso = f"arn:aws:iam::{a}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Approvers_*"
    acct = Account(
        ECOMMERCE / ir.output("terraform"),
        a,
        {"approvers_production": [managers, sso], "approvers_staging": [managers]},
    )
    mfa = {**PERSON, "aws:MultiFactorAuthPresent": "true"}
    author = ("AWS", f"arn:aws:iam::{a}:role/developer")
    for role in ("approve_production", "approve_staging"):
        assert acct.may_assume(role, ("AWS", managers), **mfa)
        assert not acct.may_assume(role, ("AWS", managers))  # no MFA
        assert not acct.may_assume(role, author, **mfa)
        assert not acct.may_assume(role, ("AWS", f"arn:aws:iam::{a}:root"), **mfa)
        for ci in acct.roles:
            if not ci.startswith("approve_"):  # every CI role, by its own ARN
                ci_arn = f"arn:aws:iam::{a}:role/{acct.roles[ci].name}"
                assert not acct.may_assume(role, ("AWS", ci_arn), **mfa), (role, ci)
    sso_path = "role/aws-reserved/sso.amazonaws.com"
    member = f"arn:aws:iam::{a}:{sso_path}/eu-west-1/AWSReservedSSO_Approvers_0a1b"
    assert acct.may_assume("approve_production", ("AWS", member), **mfa)
    assert not acct.may_assume("approve_staging", ("AWS", member), **mfa)
    # ArnLike's '*' stays inside one part of the ARN: another account's look-alike fails
    other = f"arn:aws:iam::999999999999:{sso_path}/x/AWSReservedSSO_Approvers_1"
    assert not acct.may_assume("approve_production", ("AWS", other), **mfa)


def test_an_approval_records_the_person_who_approves() -> None:
    """A listed approver assumes the approver role only in a session named after
    themselves (CloudTrail and the pipeline record assumed-role/<role>/<session>): an IAM
    user by its own user name, a role session (IAM Identity Center) by the person tag its
    identity provider set. A shared role without that tag, a CI job naming the session
    after someone, or an approver naming it after another person are refused."""
    ir = ir_of(ECOMMERCE)
    a = ir.aws.account_id
    managers = f"arn:aws:iam::{a}:role/release-managers"
    bob = f"arn:aws:iam::{a}:user/people/bob"
    acct = Account(
        ECOMMERCE / ir.output("terraform"),
        a,
        {"approvers_production": [managers, bob], "approvers_staging": [managers]},
    )
    mfa = {"aws:MultiFactorAuthPresent": "true"}
    role = "approve_production"
    # an IAM user: the session bears its own name (AWS sets aws:username), no other
    assert acct.may_assume(role, ("AWS", bob), **mfa, **{"sts:RoleSessionName": "bob"})
    for other in ("alice", "release-bot", "bob-ci", ""):
        assert not acct.may_assume(role, ("AWS", bob), **mfa, **{"sts:RoleSessionName": other})
    assert not acct.may_assume(role, ("AWS", bob), **mfa)  # no session name: refused
    # a role session: its person tag names it
    tagged = {**mfa, "aws:PrincipalTag/approver": "alice"}
    assert acct.may_assume(role, ("AWS", managers), **tagged, **{"sts:RoleSessionName": "alice"})
    assert not acct.may_assume(role, ("AWS", managers), **tagged, **{"sts:RoleSessionName": "bob"})
    # a shared role without a person tag: no session name passes (not even the role's)
    for name in ("release-managers", "alice", "${aws:username}"):
        assert not acct.may_assume(role, ("AWS", managers), **mfa, **{"sts:RoleSessionName": name})
    # a CI role naming its session after an approver: not listed, refused
    ci = f"arn:aws:iam::{a}:role/{acct.roles['codebuild'].name}"
    assert not acct.may_assume(role, ("AWS", ci), **tagged, **{"sts:RoleSessionName": "alice"})
    # the policy variables are read from the generated Terraform, not assumed
    names = {
        vals
        for st in acct.roles[role].trust
        for op, key, vals in st.conditions
        if key == "sts:RoleSessionName"
    }
    assert names == {("${aws:username}",), ("${aws:PrincipalTag/approver}",)}


def test_the_evaluator_substitutes_policy_variables() -> None:
    named = Statement(
        "Allow",
        ("sts:AssumeRole",),
        ("*",),
        (("StringEquals", "sts:RoleSessionName", ("${aws:username}",)),),
    )
    ctx = {"aws:username": "bob", "sts:RoleSessionName": "bob"}
    assert evaluate([named], "sts:AssumeRole", "r", ctx) == "Allow"
    ctx["sts:RoleSessionName"] = "alice"
    assert evaluate([named], "sts:AssumeRole", "r", ctx) == "ImplicitDeny"
    # the variable's key absent: nothing matches, not even the literal text
    ctx = {"sts:RoleSessionName": "${aws:username}"}
    assert evaluate([named], "sts:AssumeRole", "r", ctx) == "ImplicitDeny"


def test_the_approver_list_refuses_the_account_root(tmp_path: Path) -> None:
    """Terraform itself checks approvers_<env>: empty, an account root or a bare
    wildcard are refused before any plan (terraform console evaluates the validations)."""
    import shutil
    import subprocess

    if not shutil.which("terraform"):
        pytest.skip("no terraform binary")
    ir = ir_of(ECOMMERCE)
    a = ir.aws.account_id
    iam_tf = (ECOMMERCE / ir.output("terraform") / "iam.tf").read_text()
    start = iam_tf.index('variable "approvers_production" {')
    block = iam_tf[start : iam_tf.index("\n}\n", start) + 3]
    (tmp_path / "main.tf").write_text(block)

    def console(value: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["terraform", "console", "-no-color", f"-var=approvers_production={value}"],
            cwd=tmp_path,
            input="length(var.approvers_production)\n",
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": "/dev/null"},
        )

    # the console reports a failed validation (and still exits 0): read its report
    ok = console(f'["arn:aws:iam::{a}:role/release-managers"]')
    assert "Invalid value for variable" not in ok.stdout + ok.stderr, ok.stderr
    assert ok.stdout.strip().endswith("1"), ok.stdout
    for bad in (
        "[]",
        f'["arn:aws:iam::{a}:root"]',
        f'["arn:aws:iam::{a}:role/*"]',
        '["release-managers"]',
    ):
        res = console(bad)
        assert "Invalid value for variable" in res.stdout + res.stderr, (bad, res.stdout)


def test_approvers_are_notified() -> None:
    ir = ir_of(ECOMMERCE)
    approvers = [e for e in ir.environments if e.approval]
    # approvers get the approval notification: the Approval action notifies the
    # environment's approval topic, where environments.X.approvers subscribe
    tf = (ECOMMERCE / ir.output("terraform") / "codepipeline.tf").read_text()
    for env in approvers:
        assert f"aws_sns_topic.approvals_{env.name}[0].arn" in tf  # counted (phases.tf)


def test_approvers_are_subscribed_to_their_environments_topic() -> None:
    text = (
        (ECOMMERCE / "pipeline.yaml")
        .read_text()
        .replace(
            "    approval: true\n    namespace: ecommerce\n",
            "    approval: true\n    approvers: [release-managers@example.com]\n"
            "    namespace: ecommerce\n",
        )
    )
    from pipecompile.targets.registry import render_all

    ir = compile_bytes("pipeline.yaml", text.encode())
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    notif = hcl_norm(hcl2.loads(files[f"{ir.output('terraform')}/notifications.tf"]))
    subs = [
        body
        for res in notif["resource"]
        for body in res.get("aws_sns_topic_subscription", {}).values()
    ]
    assert subs == [
        {
            "count": "${local.enabled.production}",  # production's own (phases.tf)
            "topic_arn": "${aws_sns_topic.approvals_production[0].arn}",
            "protocol": "email",
            "endpoint": "release-managers@example.com",
        }
    ]


# -- service principals on keys --------------------------------------------------------------

SOURCE_KEYS = {"aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID"}


@pytest.mark.parametrize("sample", [ECOMMERCE, STOREFRONT])
def test_every_kms_statement_for_a_service_principal_has_source_conditions(sample: Path) -> None:
    acct = account(sample)
    checked = events = 0
    for key, body in acct.resources.items():
        if not key.startswith("aws_kms_key."):
            continue
        for st in acct._doc(body["policy"]):
            services = [v for kind, vs in st.principals if kind == "Service" for v in vs]
            if not services:
                continue
            variables = {v for _, v, _ in st.conditions}
            if "events.amazonaws.com" in services:
                # The one documented exception: EventBridge publishing to an encrypted topic
                # fails when the key policy has aws:SourceAccount / aws:SourceArn /
                # aws:SourceOrgID (Amazon SNS Developer Guide, sns-key-management.html,
                # "Enable compatibility between event sources from AWS services and
                # encrypted topics"). So: EventBridge alone in its statement, with no source
                # key, and limited to the pipeline topic by the SNS encryption context.
                assert services == ["events.amazonaws.com"], (key, st)
                assert not variables & SOURCE_KEYS, (key, st)
                assert st.conditions == (
                    (
                        "StringEquals",
                        "kms:EncryptionContext:aws:sns:topicArn",
                        (ir_of(sample).aws.sns_topic_arn,),
                    ),
                ), (key, st)
                events += 1
            else:
                assert variables & {
                    "aws:SourceAccount",
                    "aws:SourceArn",
                    "kms:EncryptionContext:aws:logs:arn",
                }, (key, st)
            checked += 1
    assert checked >= 3
    assert events == 1


# -- what the two build tiers share ------------------------------------------------------------


def test_the_build_tiers_share_no_log_group_and_no_sonarqube_token() -> None:
    """Feature code runs in the dev tier: it must not write the release builds' logs (to
    forge or bury a release's record) nor hold the token that reports the release builds'
    SonarQube analyses (a forged analysis would pass their quality gate)."""
    ir, acct = ir_of(ECOMMERCE), account(ECOMMERCE)
    for svc in ir.services:
        dev_log = acct.arn(f"aws_cloudwatch_log_group.build-{svc.name}") + ":log-stream:x"
        rel_log = acct.arn(f"aws_cloudwatch_log_group.build-{svc.name}-release") + ":log-stream:x"
        assert acct.resources[f"aws_cloudwatch_log_group.build-{svc.name}-release"]["name"] == (
            svc.release_build_log_group
        )
        for action in ("logs:PutLogEvents", "logs:CreateLogStream"):
            assert acct.can("codebuild", action, dev_log)
            assert not acct.can("codebuild", action, rel_log)
            assert acct.can("codebuild_release", action, rel_log)
            assert not acct.can("codebuild_release", action, dev_log)
    dev_token = acct.arn("aws_secretsmanager_secret.sonarqube")
    rel_token = acct.arn("aws_secretsmanager_secret.sonarqube_release")
    read = "secretsmanager:GetSecretValue"
    assert acct.can("codebuild", read, dev_token) and not acct.can("codebuild", read, rel_token)
    assert acct.can("codebuild_release", read, rel_token)
    assert not acct.can("codebuild_release", read, dev_token)
    for role in acct.roles:
        if role != "codebuild_release":
            assert not acct.can(role, read, rel_token), role
    # the release projects' log group, and the release token in their own environment,
    # which no pipeline action overrides (an action's value takes precedence over a
    # project's, a project's over the buildspec's: AWS CodeBuild User Guide,
    # build-spec-ref, env)
    tf = ECOMMERCE / ir.output("terraform")
    codebuild = hcl_norm(hcl2.loads((tf / "codebuild.tf").read_text()))
    for res in codebuild["resource"]:
        for label, body in res.get("aws_codebuild_project", {}).items():
            group = body["logs_config"][0]["cloudwatch_logs"][0]["group_name"]
            # an environment's deploy project and its log group are counted (phases.tf)
            one = "[0]" if label.startswith("deploy-") else ""
            assert group == f"${{aws_cloudwatch_log_group.{label}{one}.name}}", label

    def environment(label: str) -> dict[str, tuple[str, str]]:
        (body,) = [
            res["aws_codebuild_project"][label]
            for res in codebuild["resource"]
            if label in res.get("aws_codebuild_project", {})
        ]
        rows = body["environment"][0]["environment_variable"]
        return {v["name"]: (v["value"], v.get("type", "PLAINTEXT")) for v in rows}

    text = (tf / "codepipeline.tf").read_text()
    assert "SONAR_HOST_URL" not in text and "SONAR_TOKEN" not in text
    for svc in ir.services:
        assert any(ir.environment(dep.environment).approval for dep in svc.deployments)
        for tier, secret in (
            (f"build-{svc.name}", ir.aws.sonar_secret_name),
            (f"build-{svc.name}-release", ir.aws.release_sonar_secret_name),
        ):
            own = environment(tier)
            assert own["SONAR_HOST_URL"] == (f"{secret}:host_url", "SECRETS_MANAGER"), tier
            assert own["SONAR_TOKEN"] == (f"{secret}:token", "SECRETS_MANAGER"), tier
        # and analyse a SonarQube project of their own, which the dev token is not granted:
        # the dev tier's analysis of the same tree cannot stand in for the release's
        release_key = f"{ir.project}_{svc.name}-release"
        assert (
            f'{{ name = "SONAR_PROJECT_KEY", value = "{release_key}", type = "PLAINTEXT" }}'
        ) in text
        # the dev tier's key is its build project's (one build.yml serves every service)
        assert environment(f"build-{svc.name}")["SONAR_PROJECT_KEY"] == (
            f"{ir.project}_{svc.name}",
            "PLAINTEXT",
        )


def test_the_github_dast_job_has_its_own_role_and_no_deploy_secret() -> None:
    """GitHub delivery: the ZAP scan runs in the DAST job, in GitHub environment
    <env>-dast (no deploy secret there), as a role that reads the scanned environment's
    images and tags a digest that passed; no deploy role writes a promotion marker."""
    ir, acct = ir_of(STOREFRONT), account(STOREFRONT)
    dast = ir.security.dast
    assert dast is not None
    provider = (
        "Federated",
        f"arn:aws:iam::{ir.aws.account_id}:oidc-provider/token.actions.githubusercontent.com",
    )
    aud = {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    sub = "token.actions.githubusercontent.com:sub"
    mine = github_subject(ir.repository, "zap.yml", "release/1", dast.github_environment)
    assert acct.may_assume("github_dast", provider, **aud, **{sub: mine})
    for other in (
        github_subject(ir.repository, "zap.yml", "release/1", "staging"),
        github_subject(ir.repository, "zap.yml", "release/1", "development"),
        github_subject(ir.repository, "zap.yml", "release/1"),
        github_subject(ir.repository, "zap.yml", "feature/x", dast.github_environment),
        github_subject(ir.repository, "deploy.yml", "release/1", dast.github_environment),
    ):
        assert not acct.may_assume("github_dast", provider, **aud, **{sub: other}), other
    for svc in ir.services:
        release = repo_arn(ir, svc.release_image)
        writers = sorted(r for r in acct.roles if acct.can(r, "ecr:PutImage", release))
        assert writers == ["github_release"]  # DAST's pass is in the promotions table
        assert not acct.can("github_dast", "ecr:InitiateLayerUpload", release)
        assert not acct.can("github_dast", "ecr:PutImage", repo_arn(ir, svc.image))
    for key in ("signing", "release"):
        assert not acct.can("github_dast", "kms:Sign", acct.arn(f"aws_kms_key.{key}"))
    # the jobs hold no secret: their steps read none, and they name no deploy environment
    # (the deliver workflow as GitHub runs it: deploy.yml's DAST job calls zap.yml, whose
    # scan holds no token at all and whose mark runs in the DAST's own environment)
    import yaml

    from tests.harness.reusable import expand

    for svc in ir.services:
        wf = expand(STOREFRONT / ir.output("github-actions") / deliver_file(svc))
        scan = wf["jobs"][f"deploy-{dast.environment}/dast"]
        mark = wf["jobs"][f"deploy-{dast.environment}/dast/mark"]
        assert "environment" not in scan and scan["permissions"] == {}
        assert mark["environment"] == dast.github_environment
        for job in (scan, mark):
            assert "secrets." not in yaml.safe_dump(job)
        assert mark["permissions"] == {"id-token": "write"}
    deploy = yaml.safe_load((STOREFRONT / ir.output("github-actions") / "deploy.yml").read_text())
    assert "secrets" not in deploy["jobs"]["dast"]  # no secret passed to zap.yml


# -- signing in the session that ran branch code ---------------------------------------------


def test_the_build_session_that_runs_branch_code_cannot_sign() -> None:
    """The release build project runs the branch's CI commands (pre_build) and its
    Dockerfile with its role: that role must not hold kms:Sign on the release key, or a
    test script of the branch could sign any digest.  Signing is an action of its own
    (the sign project: an inline buildspec from Terraform, its own role)."""
    ir, acct = ir_of(ECOMMERCE), account(ECOMMERCE)
    spec = (ECOMMERCE / ir.output("codebuild") / "build.yml").read_text()
    assert "pre_build" in spec  # the branch's CI steps run in this project's session
    assert not acct.can("codebuild_release", "kms:Sign", acct.arn("aws_kms_key.release"))
    # neither tier's build may sign with either key; the release build still verifies a
    # reused image with the release key (build-once.sh: REUSE_SIGNED_BY), which needs the
    # public key only
    for build in ("codebuild", "codebuild_release"):
        for key in ("signing", "release"):
            assert not acct.can(build, "kms:Sign", acct.arn(f"aws_kms_key.{key}"))
    for action in ("kms:GetPublicKey", "kms:DescribeKey"):
        assert acct.can("codebuild_release", action, acct.arn("aws_kms_key.release"))
    # who can sign: each tier's sign project, with its tier's key only
    signers = {
        key: sorted(
            r for r in acct.roles if acct.can(r, "kms:Sign", acct.arn(f"aws_kms_key.{key}"))
        )
        for key in ("signing", "release")
    }
    assert signers == {"signing": ["codebuild_sign"], "release": ["codebuild_sign_release"]}
    # the sign projects run none of the branch's commands: no CI phase, no ci.steps
    sign = (ECOMMERCE / ir.output("codebuild") / SIGN_BUILDSPEC).read_text()
    assert "pre_build" not in sign
    for svc in ir.services:
        for step in svc.steps:
            assert step.run not in sign
    # every pipeline signs in its tier's sign project, after its build, before anything
    # approves or deploys the digest
    tf = ECOMMERCE / ir.output("terraform")
    pipelines = {
        label: body
        for res in hcl_norm(hcl2.loads((tf / "codepipeline.tf").read_text()))["resource"]
        for label, body in res.get("aws_codepipeline", {}).items()
    }
    assert pipelines
    for svc in ir.services:
        for dep in svc.deployments:
            (p,) = [p for p in pipelines.values() if p["name"] == dep.pipeline_name]
            names = [st["name"] for st in p["stage"]]
            assert names.index("Sign") == names.index("Build") + 1
            approval = ir.environment(dep.environment).approval
            (stage,) = [st for st in p["stage"] if st["name"] == "Sign"]
            project = stage["action"][0]["configuration"]["ProjectName"]
            assert (
                project == f"${{aws_codebuild_project.sign{'-release' if approval else ''}.name}}"
            )


def test_explain_says_the_build_session_that_runs_branch_code_cannot_sign() -> None:
    from pipecompile.insight.trust import trust_report

    ir = ir_of(ECOMMERCE)
    report = "\n".join(trust_report(ir))
    assert "run in the session that signs, so they can sign any digest" not in report
    for env in ir.environments:
        project = ir.aws.release_sign_project if env.approval else ir.aws.sign_project
        lines = trust_report(ir)
        start = lines.index(
            next(line for line in lines if line.startswith(f"environment {env.name} "))
        )
        sign = next(line for line in lines[start:] if "who can sign:" in line)
        assert f"the sign project {project} alone" in sign
        assert (
            "its buildspec is Terraform's and it runs none of the branch's commands, so the "
            "build session that runs them (CI steps, Dockerfile) cannot sign"
        ) in sign


# -- the tables' key ---------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [ECOMMERCE, STOREFRONT], ids=["ecommerce", "storefront"])
def test_every_role_that_uses_a_table_may_decrypt_its_key_through_dynamodb(sample: Path) -> None:
    """Both tables are encrypted with the project's key, and DynamoDB decrypts the table
    key as the calling principal: a role with a table action but no kms:Decrypt on the key
    is refused by AWS (moto does not enforce KMS, so only the policy can show it). The
    GitHub deploy and DAST roles had none: their audit row, rollback history and DAST
    gate all failed on real AWS."""
    acct = account(sample)
    key = acct.arn("aws_kms_key.cicd")
    region = acct.region
    via = {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}
    users, missing = [], []
    for table in ("deployments", "promotions"):
        if f"aws_dynamodb_table.{table}" not in acct.resources:
            continue
        arn = acct.arn(f"aws_dynamodb_table.{table}")
        for role in acct.roles:
            uses = ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query")
            if any(acct.can(role, action, arn) for action in uses):
                users.append(role)
                if not acct.can(role, "kms:Decrypt", key, **via):
                    missing.append((table, role))
    assert users  # the check can fail: someone uses the tables
    assert missing == []
    # the GitHub deploy and DAST roles use the key for the tables only (CodeBuild's
    # roles for their artifacts too)
    other = {"kms:ViaService": f"s3.{region}.amazonaws.com"}
    for role in (r for r in users if r.startswith("github_") and ("deploy" in r or "dast" in r)):
        assert not acct.can(role, "kms:Decrypt", key, **other)
