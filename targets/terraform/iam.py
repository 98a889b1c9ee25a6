"""IAM: the pipeline, build and GitHub OIDC roles, each with what its jobs call."""

from __future__ import annotations

from typing import Any

from ...hcl import Block, Ref, document
from ...ir import IR
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
    acct, region = ir.aws.account_id, ir.aws.region
    bucket = [Ref("aws_s3_bucket.artifacts.arn"), Ref('"${aws_s3_bucket.artifacts.arn}/*"')]
    build_projects = [Ref(f"aws_codebuild_project.build-{s.name}.arn") for s in ir.services]
    deploy_projects = [Ref(f"aws_codebuild_project.deploy-{e.name}.arn") for e in ir.environments]
    repos = [Ref(f"aws_ecr_repository.{s.name}.arn") for s in ir.services]
    log_groups = [Ref(f'"${{aws_cloudwatch_log_group.build-{s.name}.arn}}:*"') for s in ir.services]
    log_groups += [
        Ref(f'"${{aws_cloudwatch_log_group.deploy-{e.name}.arn}}:*"') for e in ir.environments
    ]
    kms_key = [Ref("aws_kms_key.cicd.arn")]
    ecr_push = [
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
    blocks: list[Block] = []

    blocks += service_role(
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
                    "resources": bucket,
                },
                {
                    "sid": "ArtifactKey",
                    "actions": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                    "resources": kms_key,
                },
                {
                    "sid": "Source",
                    "actions": ["codestar-connections:UseConnection"],
                    "resources": [Ref("aws_codestarconnections_connection.github.arn")],
                },
                {
                    "sid": "Builds",
                    "actions": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                    "resources": build_projects + deploy_projects,
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

    blocks += service_role("codebuild", ir.aws.build_role_name, "codebuild.amazonaws.com", acct)
    statements: list[dict[str, Any]] = [
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
            "resources": bucket,
        },
        {
            "sid": "Key",
            "actions": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "resources": kms_key,
        },
        {"sid": "EcrLogin", "actions": ["ecr:GetAuthorizationToken"], "resources": ["*"]},
        *_scan_statements(ir),
        {"sid": "EcrPush", "actions": ecr_push, "resources": repos},
        {
            "sid": "GitopsCredential",
            "actions": ["secretsmanager:GetSecretValue"],
            "resources": [Ref("aws_secretsmanager_secret.gitops_credential.arn")],
        },
    ]
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
                "actions": ["kms:GetPublicKey", "kms:Sign"],
                "resources": [Ref("aws_kms_key.signing.arn")],
            }
        )
    if ir.deployments_table:
        statements.append(
            {
                "sid": "RecordDeployments",
                "actions": ["dynamodb:PutItem"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
            }
        )
    blocks.append(policy_doc("codebuild", statements))
    blocks.append(inline_policy("codebuild", "codebuild", "codebuild"))

    oidc = aws_constants()["github_oidc_host"]
    if ir.github_oidc_provider == "create":
        gh = resource("aws_iam_openid_connect_provider", "github")
        gh.attr("url", f"https://{oidc}")
        gh.attr("client_id_list", ["sts.amazonaws.com"])
        gh.attr("thumbprint_list", list(aws_constants()["github_thumbprints"]))
        provider_arn = Ref("aws_iam_openid_connect_provider.github.arn")
    else:  # an account holds one provider per URL: use the one that exists
        gh = Block("data", ("aws_iam_openid_connect_provider", "github"))
        gh.comment("aws.github_oidc_provider: existing (the account has one already)")
        gh.attr("url", f"https://{oidc}")
        provider_arn = Ref("data.aws_iam_openid_connect_provider.github.arn")
    blocks.append(gh)
    subjects = []
    for env in ir.environments:
        for b in env.includes:
            subjects.append(f"repo:{ir.repository}:ref:refs/heads/{b}")
        if env.approval:
            subjects.append(f"repo:{ir.repository}:environment:{env.name}")
    subjects = list(dict.fromkeys(subjects))
    blocks.append(
        policy_doc(
            "github_assume",
            [
                {
                    "actions": ["sts:AssumeRoleWithWebIdentity"],
                    "principals": [("Federated", [provider_arn])],
                    "conditions": [
                        ("StringEquals", f"{oidc}:aud", ["sts.amazonaws.com"]),
                        ("StringLike", f"{oidc}:sub", subjects),
                    ],
                }
            ],
        )
    )
    role = iam_role("github_actions", ir.aws.github_role_name, "github_assume")
    role.attr("max_session_duration", 3600)
    blocks.append(role)
    gh_statements: list[dict[str, Any]] = [
        {"sid": "EcrLogin", "actions": ["ecr:GetAuthorizationToken"], "resources": ["*"]},
        *_scan_statements(ir),
        {"sid": "EcrPush", "actions": ecr_push, "resources": repos},
        {
            "sid": "ImageKey",
            "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
            "resources": kms_key,
        },
    ]
    if ir.security.sign_images:
        gh_statements.append(
            {
                "sid": "SignImages",
                "actions": ["kms:GetPublicKey", "kms:Sign", "kms:Verify"],
                "resources": [Ref("aws_kms_key.signing.arn")],
            }
        )
    blocks.append(policy_doc("github_actions", gh_statements))
    blocks.append(inline_policy("github_actions", "github_actions", "github_actions"))
    return document(blocks)
