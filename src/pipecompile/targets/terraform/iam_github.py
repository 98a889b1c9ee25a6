"""IAM for GitHub delivery (the roles iam.tf holds when delivery is github-actions): the
OIDC provider, the build roles by tier (each trusted by its GitHub environment), per
environment a deploy role that only that GitHub environment's jobs can assume, and the
DAST job's role.  Each trusts one workflow file's jobs in one environment, in runs on the
branches that environment admits (oidc.py's workflow_trust: the OIDC subject
repo:<repo>:environment:<env>:ref:<the run's ref>:job_workflow_ref:<repo>/.github/
workflows/<file>@<any ref>),
since GitHub creates an environment a workflow names with no protection rules.  What they share with
CodePipeline delivery's roles (the deploy statements, the never-approve deny, the ECR
and signing actions) stays in iam.py.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR
from ...serialize.hcl import Block, Ref
from ..common import BUILD_ENVIRONMENT as BUILD
from ..common import BUILD_RELEASE_ENVIRONMENT as BUILD_RELEASE
from ..common import GH_BUILD, GH_DEPLOY, GH_ZAP
from .blocks import iam_role, inline_policy, policy_doc
from .iam import (
    COSIGN_KMS,
    ECR_PUSH,
    NEVER_APPROVE,
    _deploy_statements,
    _label,
    _mark_passed,
    _repos,
    _scan_statements,
    dast_reads_deployments,
    table_key,
)
from .oidc import oidc_provider, workflow_trust


def _github_build_role(
    ir: IR,
    provider: Ref,
    label: str,
    role_name: str,
    branches: list[str],
    environment: str,
    release: bool,
) -> list[Block]:
    """A build job's role: trusted only for build.yml's jobs in the tier's GitHub
    environment on the tier's branches, as a deploy role is: a branch ref alone is no
    trust, whoever may push creates one, nor the environment alone (issue 28 trace)."""
    blocks = [workflow_trust(ir, label, provider, GH_BUILD, branches, environment)]
    role = iam_role(label, role_name, f"{label}_assume")
    role.attr("max_session_duration", 3600)
    blocks.append(role)
    statements: list[dict[str, Any]] = [
        {
            "sid": "EcrLogin",  # GetAuthorizationToken has no resource to scope to
            "actions": ["ecr:GetAuthorizationToken"],
            "resources": ["*"],
        },
        *_scan_statements(ir),
        {"sid": "EcrPush", "actions": ECR_PUSH, "resources": _repos(ir, release)},
        {
            "sid": "ImageKey",
            "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
            "resources": [Ref("aws_kms_key.cicd.arn")],
        },
    ]
    if ir.security.sign_images:
        statements.append(
            {
                "sid": "SignImages",
                "actions": COSIGN_KMS,
                "resources": [Ref(f"aws_kms_key.{'release' if release else 'signing'}.arn")],
            }
        )
    statements.append(NEVER_APPROVE)
    blocks.append(policy_doc(label, statements))
    blocks.append(inline_policy(label, label, label))
    return blocks


def github_roles(ir: IR) -> list[Block]:
    """The build roles (dev and release tier, by branch) and a deploy role per environment."""
    gh, provider = oidc_provider(ir)
    blocks: list[Block] = [gh]
    dev = [b for b in ir.deploy_branches if b not in ir.release_branches]
    for label, role_name, branches, environment, release in (
        ("github_build", ir.aws.github_build_role_name, dev, BUILD, False),
        (
            "github_release",
            ir.aws.github_release_role_name,
            list(ir.release_branches),
            BUILD_RELEASE,
            True,
        ),
    ):
        if branches:
            blocks += _github_build_role(
                ir, provider, label, role_name, branches, environment, release
            )
    for env in ir.environments:
        label = _label(env)
        blocks.append(
            workflow_trust(ir, f"github_{label}", provider, GH_DEPLOY, env.includes, env.name)
        )
        role = iam_role(f"github_{label}", env.github_role_name, f"github_{label}_assume")
        role.attr("max_session_duration", 3600)
        blocks.append(role)
        statements = _deploy_statements(ir, env)
        if all(st.get("effect") == "Deny" for st in statements):
            # nothing to call in AWS: the role still proves the environment
            statements.insert(
                0, {"sid": "Identity", "actions": ["sts:GetCallerIdentity"], "resources": ["*"]}
            )
        blocks.append(policy_doc(f"github_{label}", statements))
        blocks.append(inline_policy(f"github_{label}", f"github_{label}", f"github_{label}"))
    dast = ir.security.dast
    if dast is not None:
        blocks += _github_dast_role(ir, provider)
    return blocks


def _github_dast_role(ir: IR, provider: Ref) -> list[Block]:
    """The DAST job's role: only zap.yml's jobs in its GitHub environment assume it; it reads the
    promotions table's items of the scanned environment, nothing else (no ECR)."""
    dast = ir.security.dast
    assert dast is not None
    branches = ir.environment(dast.environment).includes  # its environment's (insight)
    blocks = [
        workflow_trust(ir, "github_dast", provider, GH_ZAP, branches, dast.github_environment)
    ]
    role = iam_role("github_dast", dast.github_role_name, "github_dast_assume")
    role.attr("max_session_duration", 3600)
    blocks.append(role)
    statements: list[dict[str, Any]] = [
        _mark_passed(ir),
        *dast_reads_deployments(ir),
        table_key(ir),
        NEVER_APPROVE,
    ]
    blocks.append(policy_doc("github_dast", statements))
    blocks.append(inline_policy("github_dast", "github_dast", "github_dast"))
    return blocks
