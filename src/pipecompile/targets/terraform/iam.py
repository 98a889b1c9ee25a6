"""IAM: least privilege, build apart from deploy, one deploy role per environment.

CodePipeline delivery: the pipeline role; one CodeBuild role for the build and DAST
projects (untrusted code: ECR push, scanners, signing); one CodeBuild role per
environment for its deploy project (its own GitOps and Argo CD secrets, signature
verification, the audit table).  GitHub delivery: a build role for the deploy
branches, and per environment a deploy role that only that GitHub environment's
jobs can assume (OIDC subject repo:<repo>:environment:<env>).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Block, Ref, document
from .blocks import (
    aws_constants,
    iam_role,
    inline_policy,
    policy_doc,
    resource,
    service_role,
)


def _scan_statements(ir: IR) -> list[dict[str, Any]]:
    """What the scan gate asks besides the image's findings: the registry's scan type,
    and (enhanced scanning) the Inspector findings behind them; neither has a resource."""
    sec = ir.security
    if sec.image_scan_fail_on is None:
        return []
    out: list[dict[str, Any]] = []
    if sec.image_scanning == "auto":
        actions = ["ecr:GetRegistryScanningConfiguration"]
        out.append({"sid": "ScanType", "actions": actions, "resources": ["*"]})
    if sec.image_scanning != "basic":
        actions = ["inspector2:ListCoverage", "inspector2:ListFindings"]
        out.append({"sid": "EnhancedScanFindings", "actions": actions, "resources": ["*"]})
    return out


def iam(ir: IR) -> str:
    blocks: list[Block] = []
    if ir.delivery == "codepipeline":
        blocks += _pipeline_role(ir)
        blocks += _codebuild_build_role(ir, "codebuild", ir.aws.build_role_name, "signing")
        if ir.release_branches:
            name = ir.aws.release_build_role_name
            blocks += _codebuild_build_role(ir, "codebuild_release", name, "release")
        for env in ir.environments:
            blocks += _codebuild_deploy_role(ir, env)
    else:
        blocks += _github_roles(ir)
    return document(blocks)


ECR_PUSH = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
# everything cosign's AWS KMS client calls: DescribeKey (key spec), GetPublicKey, Sign
COSIGN_KMS = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"]
# what verifying a signature calls (the public key is checked locally)
COSIGN_VERIFY_KMS = ["kms:DescribeKey", "kms:GetPublicKey"]


def _repos(ir: IR) -> list[Ref]:
    return [Ref(f"aws_ecr_repository.{s.name}.arn") for s in ir.services]


def _bucket() -> list[Ref]:
    return [Ref("aws_s3_bucket.artifacts.arn"), Ref('"${aws_s3_bucket.artifacts.arn}/*"')]


def _label(env: Environment) -> str:
    return "deploy_" + env.name.replace("-", "_")


def _pipeline_role(ir: IR) -> list[Block]:
    projects = [Ref(f"aws_codebuild_project.build-{s.name}.arn") for s in ir.services]
    if ir.release_branches:
        projects += [Ref(f"aws_codebuild_project.build-{s.name}-release.arn") for s in ir.services]
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
                    "resources": _bucket(),
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
                    "resources": [Ref("aws_sns_topic.events.arn")],
                },
            ],
        )
    )
    blocks.append(inline_policy("codepipeline", "codepipeline", "codepipeline"))
    return blocks


def _common_codebuild(ir: IR, log_groups: list[Ref]) -> list[dict[str, Any]]:
    """What every CodeBuild project needs: its logs, the artifacts, the key, the clone."""
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
            "resources": _bucket(),
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
    ]


def _codebuild_build_role(ir: IR, label: str, role_name: str, key: str) -> list[Block]:
    """Build (and DAST) projects: code from a branch, never a deploy credential. The dev
    tier signs with the signing key; the release tier (approval environments' pipelines)
    with the release key, which no other role may use."""
    region, acct = ir.aws.region, ir.aws.account_id
    logs = [Ref(f'"${{aws_cloudwatch_log_group.build-{s.name}.arn}}:*"') for s in ir.services]
    if ir.security.dast and label == "codebuild":
        logs.append(Ref('"${aws_cloudwatch_log_group.dast.arn}:*"'))
    statements = _common_codebuild(ir, logs)
    statements += [
        *_scan_statements(ir),
        {"sid": "EcrPush", "actions": ECR_PUSH, "resources": _repos(ir)},
    ]
    if ir.security.sast_fail_on:
        statements.append(
            {
                "sid": "SonarQube",
                "actions": ["secretsmanager:GetSecretValue"],
                "resources": [Ref("aws_secretsmanager_secret.sonarqube.arn")],
            }
        )
    if ir.security.image_scan_fail_on:
        statements.append(
            {
                "sid": "ScanReports",
                "actions": [
                    "codebuild:BatchPutTestCases",
                    "codebuild:CreateReport",
                    "codebuild:CreateReportGroup",
                    "codebuild:UpdateReport",
                ],
                "resources": [
                    f"arn:aws:codebuild:{region}:{acct}:report-group/{s.scan_report_group}"
                    for s in ir.services
                ],
            }
        )
    if ir.security.sign_images:
        statements.append(
            {
                "sid": "SignImages",
                "actions": COSIGN_KMS,
                "resources": [Ref(f"aws_kms_key.{key}.arn")],
            }
        )
    blocks = service_role(label, role_name, "codebuild.amazonaws.com", acct)
    blocks.append(policy_doc(label, statements))
    blocks.append(inline_policy(label, label, label))
    return blocks


def _deploy_statements(ir: IR, env: Environment) -> list[dict[str, Any]]:
    """What a deploy to ``env`` calls, in either orchestrator."""
    out: list[dict[str, Any]] = []
    if ir.security.sign_images:
        keys = [Ref("aws_kms_key.release.arn")] if ir.release_branches else []
        if not env.approval or not ir.release_branches:  # approval: release images only
            keys.append(Ref("aws_kms_key.signing.arn"))
        out.append({"sid": "VerifySignatures", "actions": COSIGN_VERIFY_KMS, "resources": keys})
    dast = ir.security.dast
    if env.after_dast or (env.dast and dast is not None):
        out.append(
            {"sid": "EcrLogin", "actions": ["ecr:GetAuthorizationToken"], "resources": ["*"]}
        )
        actions = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]
        if env.dast:  # a passed scan tags the digest
            actions.append("ecr:PutImage")
        out.append({"sid": "DastTags", "actions": sorted(actions), "resources": _repos(ir)})
    elif ir.security.sign_images:
        out.append(
            {"sid": "EcrLogin", "actions": ["ecr:GetAuthorizationToken"], "resources": ["*"]}
        )
        actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
        out.append({"sid": "ReadSignatures", "actions": actions, "resources": _repos(ir)})
    if ir.deployments_table:
        out.append(
            {
                "sid": "RecordDeployments",
                "actions": ["dynamodb:PutItem"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
            }
        )
    return out


def _codebuild_deploy_role(ir: IR, env: Environment) -> list[Block]:
    """The deploy project of one environment: only its own secrets."""
    label = _label(env)
    region, acct = ir.aws.region, ir.aws.account_id
    logs = [Ref(f'"${{aws_cloudwatch_log_group.deploy-{env.name}.arn}}:*"')]
    statements = _common_codebuild(ir, logs)
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
    if env.approval and ir.deployments_table:
        statements.append(
            {
                "sid": "Approvers",  # the audit row names who approved
                "actions": ["codepipeline:GetPipelineState"],
                "resources": [
                    f"arn:aws:codepipeline:{region}:{acct}:{dep.pipeline_name}"
                    for svc in ir.services
                    for dep in svc.deployments
                    if dep.environment == env.name
                ],
            }
        )
    # a statement's sid must be unique: the common EcrLogin may repeat
    unique = list({st["sid"]: st for st in reversed(statements)}.values())[::-1]
    blocks = service_role(label, env.codebuild_role_name, "codebuild.amazonaws.com", acct)
    blocks.append(policy_doc(label, unique))
    blocks.append(inline_policy(label, label, label))
    return blocks


def _oidc_provider(ir: IR) -> tuple[Block, Ref]:
    oidc = aws_constants()["github_oidc_host"]
    if ir.github_oidc_provider == "create":
        gh = resource("aws_iam_openid_connect_provider", "github")
        gh.attr("url", f"https://{oidc}")
        gh.attr("client_id_list", ["sts.amazonaws.com"])
        gh.attr("thumbprint_list", list(aws_constants()["github_thumbprints"]))
        return gh, Ref("aws_iam_openid_connect_provider.github.arn")
    # an account holds one provider per URL: use the one that exists
    gh = Block("data", ("aws_iam_openid_connect_provider", "github"))
    gh.comment("aws.github_oidc_provider: existing (the account has one already)")
    gh.attr("url", f"https://{oidc}")
    return gh, Ref("data.aws_iam_openid_connect_provider.github.arn")


def _github_trust(label: str, provider: Ref, subjects: list[str]) -> Block:
    oidc = aws_constants()["github_oidc_host"]
    return policy_doc(
        f"{label}_assume",
        [
            {
                "actions": ["sts:AssumeRoleWithWebIdentity"],
                "principals": [("Federated", [provider])],
                "conditions": [
                    ("StringEquals", f"{oidc}:aud", ["sts.amazonaws.com"]),
                    ("StringLike", f"{oidc}:sub", subjects),
                ],
            }
        ],
    )


def _github_build_role(
    ir: IR, provider: Ref, label: str, role_name: str, branches: list[str], key: str
) -> list[Block]:
    """A build job's role: trusted by these branches' pushes; signs with ``key``."""
    subjects = [f"repo:{ir.repository}:ref:refs/heads/{b}" for b in branches]
    blocks = [_github_trust(label, provider, subjects)]
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
        {"sid": "EcrPush", "actions": ECR_PUSH, "resources": _repos(ir)},
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
                "resources": [Ref(f"aws_kms_key.{key}.arn")],
            }
        )
    blocks.append(policy_doc(label, statements))
    blocks.append(inline_policy(label, label, label))
    return blocks


def _github_roles(ir: IR) -> list[Block]:
    """The build roles (dev and release tier, by branch) and a deploy role per environment."""
    gh, provider = _oidc_provider(ir)
    blocks: list[Block] = [gh]
    dev = [b for b in ir.deploy_branches if b not in ir.release_branches]
    for label, role_name, branches, key in (
        ("github_build", ir.aws.github_build_role_name, dev, "signing"),
        ("github_release", ir.aws.github_release_role_name, list(ir.release_branches), "release"),
    ):
        if branches:
            blocks += _github_build_role(ir, provider, label, role_name, branches, key)
    for env in ir.environments:
        label = _label(env)
        blocks.append(
            _github_trust(
                f"github_{label}", provider, [f"repo:{ir.repository}:environment:{env.name}"]
            )
        )
        role = iam_role(f"github_{label}", env.github_role_name, f"github_{label}_assume")
        role.attr("max_session_duration", 3600)
        blocks.append(role)
        statements = _deploy_statements(ir, env)
        if not statements:  # nothing to call in AWS: the role still proves the environment
            statements = [
                {"sid": "Identity", "actions": ["sts:GetCallerIdentity"], "resources": ["*"]}
            ]
        blocks.append(policy_doc(f"github_{label}", statements))
        blocks.append(inline_policy(f"github_{label}", f"github_{label}", f"github_{label}"))
    return blocks
