"""The approver roles (issue 28, item 6): per approval environment the only principal
that may approve it, assumed with MFA by the principals an input variable lists; it
approves that environment's Approval actions and nothing else."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Block, Call, Ref
from .blocks import iam_role, inline_policy, policy_doc

# the principal tag naming the person of a role session (a session tag its identity
# provider sets; on an IAM user, a tag of that user)
APPROVER_TAG = "approver"


def approver_variable(ir: IR, env: Environment) -> Block:
    """Who may approve ``env``: IAM role or user ARN patterns, an input of the Terraform
    (default: environments.X.approver_principals, else the role <project>-<env>-approvers,
    which exists only once the operator creates it)."""
    acct = ir.aws.account_id
    var = Block("variable", (env.approver_variable,))
    var.attr(
        "description",
        f"IAM roles or users (ARN patterns, as ArnLike reads them) that may assume the "
        f"{env.name} approver role, with MFA: name the release managers, never a CI role",
    )
    var.attr("type", Ref("list(string)"))
    var.attr("default", list(env.approver_principals))
    # two checks (HCL's operators and for-expressions are not data): at least one, and
    # each an IAM role or user ARN whose name does not start with a wildcard
    some = var.block("validation")
    some.attr("condition", Call("can", (Ref(f"var.{env.approver_variable}[0]"),)))
    some.attr(
        "error_message",
        f"Name at least one IAM role or user (for example arn:aws:iam::{acct}:role/"
        "release-managers): nobody else may approve.",
    )
    arn = "arn:aws:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_-][A-Za-z0-9+=,.@_/*?-]*"
    joined = Call("join", (" ", Ref(f"var.{env.approver_variable}")))
    shape = var.block("validation")
    shape.attr("condition", Call("can", (Call("regex", (f"^{arn}( {arn})*$", joined)),)))
    shape.attr(
        "error_message",
        "Each entry is an IAM role or user ARN (an account root, or a name that starts "
        "with a wildcard, would let anyone in the account approve).",
    )
    return var


def approver_role(ir: IR, env: Environment) -> list[Block]:
    """The only principal that may approve ``env``: the listed people, who assume it with
    MFA; it approves this environment's Approval actions and nothing else."""
    region, acct = ir.aws.region, ir.aws.account_id
    label = "approve_" + env.name.replace("-", "_")
    pipelines = [
        dep.pipeline_name
        for svc in ir.services
        for dep in svc.deployments
        if dep.environment == env.name
    ]
    # an approval records a person: the session is named after whoever assumes the role
    # (CloudTrail and the pipeline show assumed-role/<role>/<session name>), never a name
    # the caller picks: an IAM user's own name, else the person tag its identity provider
    # put on the session (IAM Identity Center: attributes for access control)
    listed = ("ArnLike", "aws:PrincipalArn", Ref(f"var.{env.approver_variable}"))
    mfa = ("Bool", "aws:MultiFactorAuthPresent", ["true"])
    trust = policy_doc(
        f"{label}_assume",
        [
            {
                "sid": sid,
                "actions": ["sts:AssumeRole"],
                # the account as the principal, narrowed by the caller's own ARN: a pattern
                # may name an IAM Identity Center permission set's role (random suffix)
                "principals": [("AWS", [f"arn:aws:iam::{acct}:root"])],
                "conditions": [listed, mfa, ("StringEquals", "sts:RoleSessionName", [name])],
            }
            for sid, name in (
                ("IamUserByName", "${aws:username}"),
                ("PersonTaggedSession", f"${{aws:PrincipalTag/{APPROVER_TAG}}}"),
            )
        ],
        [
            f"who may approve {env.name}: var.{env.approver_variable}, with MFA, in a session "
            f"named after the person (an IAM user's name, else its {APPROVER_TAG} tag)"
        ],
    )
    role = iam_role(label, env.approver_role_name, f"{label}_assume")
    role.attr("max_session_duration", 3600)
    statements: list[dict[str, Any]] = [
        {
            "sid": "Approve",
            "actions": ["codepipeline:PutApprovalResult"],
            "resources": [
                f"arn:aws:codepipeline:{region}:{acct}:{name}/Approval/Approve"
                for name in pipelines
            ],
        },
        {
            "sid": "Review",
            "actions": ["codepipeline:GetPipelineState", "codepipeline:ListPipelineExecutions"],
            "resources": [f"arn:aws:codepipeline:{region}:{acct}:{name}" for name in pipelines],
        },
    ]
    return [
        approver_variable(ir, env),
        trust,
        role,
        policy_doc(label, statements),
        inline_policy(label, label, label),
    ]
