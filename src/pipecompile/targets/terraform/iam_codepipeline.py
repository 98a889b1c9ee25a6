"""CodePipeline delivery's IAM roles: least privilege, build apart from deploy, one
deploy role per environment, two build tiers that share nothing they could write.

The pipeline role; the dev-tier CodeBuild role (any deploy branch's code: its ECR
repositories, the dev artifact bucket); the release-tier role (approval environments'
branches: the release repositories, the release bucket, verifying with the release key);
per tier a sign role (its sign project, which runs no branch code: the only
CodePipeline principal holding kms:Sign on the tier's key); the DAST project's own role
(records a passed digest in the promotions table, which no other role writes: an ECR tag
cannot be scoped in IAM; nothing else);
one role per environment for its deploy project (its own GitOps and Argo CD secrets,
its tier's images, its own rows of the audit table); one approver role per approval
environment, the only principal that may approve it (every CI role is denied
codepipeline:PutApprovalResult).  GitHub delivery's roles are in iam_github.py; the
statements both share are in iam.py.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Block, Ref, Template
from ..common import rollback_notifies
from .approvers import approver_role
from .blocks import inline_policy, policy_doc, service_role
from .iam import (
    COSIGN_KMS,
    COSIGN_VERIFY_KMS,
    ECR_PUSH,
    ECR_SIGN,
    NEVER_APPROVE,
    SCAN_REPORT_ACTIONS,
    _bucket,
    _deploy_statements,
    _label,
    _log_arn,
    _mark_passed,
    _repos,
    _scan_statements,
    dast_reads_deployments,
)
from .network import vpc_statements


def iam(ir: IR) -> list[Block]:
    """CodePipeline delivery's roles (GitHub delivery's: iam_github.github_roles)."""
    blocks: list[Block] = []
    if ir.delivery == "codepipeline":
        blocks += _pipeline_role(ir)
        blocks += _codebuild_build_role(ir, "codebuild", ir.aws.build_role_name, False)
        if ir.release_branches:
            name = ir.aws.release_build_role_name
            blocks += _codebuild_build_role(ir, "codebuild_release", name, True)
        if ir.security.sign_images and ir.services:
            for tier in ir.plan.build(ir.services[0].name).tiers:
                blocks += _codebuild_sign_role(ir, tier.name == "release")
        if ir.security.dast:
            blocks += _dast_role(ir)
        for env in ir.environments:
            blocks += _codebuild_deploy_role(ir, env)
            if env.approval:
                blocks += approver_role(ir, env)
    return blocks


def _pipeline_role(ir: IR) -> list[Block]:
    projects = [Ref(f"aws_codebuild_project.build-{s.name}.arn") for s in ir.services]
    if ir.release_branches:
        projects += [Ref(f"aws_codebuild_project.build-{s.name}-release.arn") for s in ir.services]
    if ir.security.sign_images and ir.services:
        tiers = ir.plan.build(ir.services[0].name).tiers
        projects += [Ref(f"aws_codebuild_project.{_sign_label(t.name)}.arn") for t in tiers]
    projects += [Ref(f"aws_codebuild_project.deploy-{e.name}.arn") for e in ir.environments]
    if ir.security.dast:
        projects.append(Ref("aws_codebuild_project.dast.arn"))
    acct = ir.aws.account_id
    blocks = service_role(
        "codepipeline", ir.aws.pipeline_role_name, "codepipeline.amazonaws.com", acct
    )
    blocks.append(
        policy_doc(
            "codepipeline",
            [
                {
                    "sid": "Artifacts",
                    "actions": [
                        "s3:GetObject",
                        "s3:GetObjectVersion",
                        "s3:PutObject",
                        "s3:GetBucketVersioning",
                        "s3:GetBucketLocation",
                    ],
                    "resources": _bucket() + (_bucket(True) if ir.release_branches else []),
                },
                {
                    "sid": "ArtifactKey",
                    "actions": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                    "resources": [Ref("aws_kms_key.cicd.arn")],
                },
                {
                    "sid": "Source",
                    "actions": ["codestar-connections:UseConnection"],
                    "resources": [Ref("aws_codestarconnections_connection.github.arn")],
                },
                {
                    "sid": "Builds",
                    "actions": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                    "resources": projects,
                },
                {
                    "sid": "Approvals",
                    "actions": ["sns:Publish"],
                    "resources": [Ref("aws_sns_topic.events.arn")]
                    + [
                        Ref(f"aws_sns_topic.approvals_{_label(e).removeprefix('deploy_')}.arn")
                        for e in ir.environments
                        if e.approval
                    ],
                },
                NEVER_APPROVE,
            ],
        )
    )
    blocks.append(inline_policy("codepipeline", "codepipeline", "codepipeline"))
    return blocks


def _common_codebuild(ir: IR, log_groups: list[Template], release: bool) -> list[dict[str, Any]]:
    """What every CodeBuild project needs: its logs, its tier's artifacts, the key, the
    clone; and never an approval."""
    return [
        {
            "sid": "Logs",
            "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "resources": log_groups,
        },
        {
            "sid": "Artifacts",
            "actions": [
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:GetBucketAcl",
                "s3:GetBucketLocation",
            ],
            "resources": _bucket(release),
        },
        {
            "sid": "Key",
            "actions": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "resources": [Ref("aws_kms_key.cicd.arn")],
        },
        {
            "sid": "Source",  # the git clone (CODEBUILD_CLONE_REF) images are keyed by
            "actions": ["codestar-connections:UseConnection"],
            "resources": [Ref("aws_codestarconnections_connection.github.arn")],
        },
        {
            "sid": "EcrLogin",  # GetAuthorizationToken has no resource to scope to
            "actions": ["ecr:GetAuthorizationToken"],
            "resources": ["*"],
        },
        NEVER_APPROVE,
    ]


def _codebuild_build_role(ir: IR, label: str, role_name: str, release: bool) -> list[Block]:
    """Build projects: code from a branch (CI steps, the Dockerfile), never a deploy
    credential and never a signing key (the tier's sign project signs). The dev tier
    writes the dev repositories; the release tier (approval environments' pipelines)
    writes only the release repositories and may verify (not sign) with the release key."""
    region, acct = ir.aws.region, ir.aws.account_id
    key = "release" if release else "signing"
    suffix = "-release" if release else ""  # each tier writes only its own log groups
    logs = [_log_arn(f"build-{s.name}{suffix}") for s in ir.services]
    statements = _common_codebuild(ir, logs, release)
    # the plan's: with signing the scan gate is the sign project's (a build session that
    # runs the branch's code could fake it)
    gate = any(s.kind == "scan-gate" for svc in ir.services for s in ir.plan.build(svc.name).steps)
    statements += [
        *(_scan_statements(ir) if gate else []),
        {"sid": "EcrPush", "actions": ECR_PUSH, "resources": _repos(ir, release)},
    ]
    if ir.security.sast_fail_on:
        statements.append(
            {
                "sid": "SonarQube",  # its own tier's token
                "actions": ["secretsmanager:GetSecretValue"],
                "resources": [
                    Ref(f"aws_secretsmanager_secret.sonarqube{'_release' if release else ''}.arn")
                ],
            }
        )
    if ir.security.dependencies_fail_on:
        statements.append(
            {
                "sid": "NvdApiKey",
                "actions": ["secretsmanager:GetSecretValue"],
                "resources": [Ref("aws_secretsmanager_secret.nvd.arn")],
            }
        )
    if gate:
        statements.append(
            {
                "sid": "ScanReports",
                "actions": SCAN_REPORT_ACTIONS,
                # CodeBuild names a buildspec's report group <project>-<report>: the
                # release tier's projects report into their own groups
                "resources": [
                    f"arn:aws:codebuild:{region}:{acct}:report-group/"
                    + (
                        s.scan_report_group
                        if label == "codebuild"
                        else s.release_build_project + "-ecr-image-scan"
                    )
                    for s in ir.services
                ],
            }
        )
    if ir.security.sign_images and release:
        # the reuse check (build-once.sh): an existing rel- image only when the release
        # key signed it; verifying reads the public key, it never signs
        statements.append(
            {
                "sid": "VerifyReuse",
                "actions": COSIGN_VERIFY_KMS,
                "resources": [Ref(f"aws_kms_key.{key}.arn")],
            }
        )
    blocks = service_role(label, role_name, "codebuild.amazonaws.com", acct)
    blocks.append(policy_doc(label, statements))
    blocks.append(inline_policy(label, label, label))
    return blocks


def _sign_label(tier: str) -> str:
    return "sign-release" if tier == "release" else "sign"


def _codebuild_sign_role(ir: IR, release: bool) -> list[Block]:
    """A tier's sign project: the only CodeBuild role that may sign with the tier's key.
    Its buildspec is Terraform's and it runs no branch command; it reads the clone (the
    tree keys the image), reads the tier's images and pushes their signatures and
    attestations; no secret, no other tier."""
    label = "codebuild_sign_release" if release else "codebuild_sign"
    name = ir.aws.release_sign_role_name if release else ir.aws.sign_role_name
    key = "release" if release else "signing"
    logs = [_log_arn(_sign_label("release" if release else "dev"))]
    statements = _common_codebuild(ir, logs, release)
    if ir.security.image_scan_fail_on:
        # the scan gate: it reads the findings of the digest it signs itself
        # (ecr-scan-gate.sh) and reports them into its own group, <project>-<report>
        statements += _scan_statements(ir)
        actions = ["ecr:DescribeImageScanFindings"]
        statements.append(
            {"sid": "ScanFindings", "actions": actions, "resources": _repos(ir, release)}
        )
        project = ir.aws.release_sign_project if release else ir.aws.sign_project
        statements.append(
            {
                "sid": "ScanReports",
                "actions": SCAN_REPORT_ACTIONS,
                "resources": [
                    f"arn:aws:codebuild:{ir.aws.region}:{ir.aws.account_id}:report-group/"
                    f"{project}-ecr-image-scan"
                ],
            }
        )
    statements += [
        {"sid": "EcrSignatures", "actions": ECR_SIGN, "resources": _repos(ir, release)},
        {"sid": "SignImages", "actions": COSIGN_KMS, "resources": [Ref(f"aws_kms_key.{key}.arn")]},
    ]
    blocks = service_role(label, name, "codebuild.amazonaws.com", ir.aws.account_id)
    blocks.append(policy_doc(label, statements))
    blocks.append(inline_policy(label, label, label))
    return blocks


def _codebuild_deploy_role(ir: IR, env: Environment) -> list[Block]:
    """The deploy project of one environment: only its own secrets."""
    label = _label(env)
    region, acct = ir.aws.region, ir.aws.account_id
    logs = [_log_arn(f"deploy-{env.name}")]
    statements = _common_codebuild(ir, logs, env.approval)
    statements.append(
        {
            "sid": "Secrets",  # this environment's GitOps credential and Argo CD token only
            "actions": ["secretsmanager:GetSecretValue"],
            "resources": [
                Ref(f"aws_secretsmanager_secret.gitops_{label}.arn"),
                Ref(f"aws_secretsmanager_secret.argocd_{label}.arn"),
            ],
        }
    )
    statements += _deploy_statements(ir, env)
    if env.deploy_network:  # CodeBuild places the project's builds in its VPC
        statements += vpc_statements(ir, env.deploy_network)
    if env.approval and ir.deployments_table:
        statements.append(
            {
                "sid": "Approvers",  # the audit row names who approved
                "actions": ["codepipeline:ListActionExecutions"],  # by execution id
                "resources": [
                    f"arn:aws:codepipeline:{region}:{acct}:{dep.pipeline_name}"
                    for svc in ir.services
                    for dep in svc.deployments
                    if dep.environment == env.name
                ],
            }
        )
    if rollback_notifies(ir):
        # a manual rollback's notice (rollback-notify.sh); the topic's key, the project
        # key, is the common "Key" statement's
        statements.append(
            {
                "sid": "RollbackNotice",
                "actions": ["sns:Publish"],
                "resources": [Ref("aws_sns_topic.events.arn")],
            }
        )
    # a statement's sid must be unique: the common EcrLogin may repeat
    unique = list({st["sid"]: st for st in reversed(statements)}.values())[::-1]
    blocks = service_role(label, env.codebuild_role_name, "codebuild.amazonaws.com", acct)
    blocks.append(policy_doc(label, unique))
    blocks.append(inline_policy(label, label, label))
    return blocks


def _dast_role(ir: IR) -> list[Block]:
    """The DAST project: records a digest that passed in the promotions table; no image
    write, no signing key, no SonarQube secret, no other tier."""
    dast = ir.security.dast
    assert dast is not None
    env = ir.environment(dast.environment)
    statements = _common_codebuild(ir, [_log_arn("dast")], env.approval)
    statements.append(_mark_passed(ir))
    statements += dast_reads_deployments(ir)
    acct = ir.aws.account_id
    blocks = service_role("codebuild_dast", ir.aws.dast_role_name, "codebuild.amazonaws.com", acct)
    blocks.append(policy_doc("codebuild_dast", statements))
    blocks.append(inline_policy("codebuild_dast", "codebuild_dast", "codebuild_dast"))
    return blocks
