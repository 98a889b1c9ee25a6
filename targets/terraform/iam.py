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
    bucket = [Ref("aws_s3_bucket.artifacts.arn"), Ref('"${aws_s3_bucket.artifacts.arn}/*"')]
    projects = [Ref(f"aws_codebuild_project.build-{s.name}.arn") for s in ir.services]
    projects += [Ref(f"aws_codebuild_project.deploy-{e.name}.arn") for e in ir.environments]
    repos = [Ref(f"aws_ecr_repository.{s.name}.arn") for s in ir.services]
    log_groups = [Ref(f'"${{aws_cloudwatch_log_group.build-{s.name}.arn}}:*"') for s in ir.services]
    log_groups += [
        Ref(f'"${{aws_cloudwatch_log_group.deploy-{e.name}.arn}}:*"') for e in ir.environments
    ]
    if ir.security.dast:
        projects.append(Ref("aws_codebuild_project.dast.arn"))
        log_groups.append(Ref('"${aws_cloudwatch_log_group.dast.arn}:*"'))
    blocks: list[Block] = []
    if ir.delivery == "codepipeline":
        blocks += _pipeline_roles(ir, bucket, projects, log_groups)
    blocks += _github_role(ir, list(ECR_PUSH), repos, [Ref("aws_kms_key.cicd.arn")])
    return document(blocks)


ECR_PUSH = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# everything cosign's AWS KMS client calls: DescribeKey (key spec), GetPublicKey, Sign
COSIGN_KMS = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"]


def _pipeline_roles(
    ir: IR, bucket: list[Ref], projects: list[Ref], log_groups: list[Ref]
) -> list[Block]:
    """CodePipeline's role and the CodeBuild role its projects run with."""
    acct, region = ir.aws.account_id, ir.aws.region
    kms_key = [Ref("aws_kms_key.cicd.arn")]
    repos = [Ref(f"aws_ecr_repository.{s.name}.arn") for s in ir.services]
    ecr_push = list(ECR_PUSH)
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
            "sid": "Source",  # the git clone (CODEBUILD_CLONE_REF) the build keys images by
            "actions": ["codestar-connections:UseConnection"],
            "resources": [Ref("aws_codestarconnections_connection.github.arn")],
        },
        {
            "sid": "Secrets",
            "actions": ["secretsmanager:GetSecretValue"],
            "resources": [
                Ref("aws_secretsmanager_secret.gitops_credential.arn"),
                Ref("aws_secretsmanager_secret.argocd.arn"),
                *(
                    [Ref("aws_secretsmanager_secret.sonarqube.arn")]
                    if ir.security.sast_fail_on
                    else []
                ),
            ],
        },
    ]
    approvals = [
        f"arn:aws:codepipeline:{region}:{acct}:{dep.pipeline_name}"
        for svc in ir.services
        for dep in svc.deployments
        if ir.environment(dep.environment).approval
    ]
    if approvals and ir.deployments_table:
        statements.append(
            {
                "sid": "Approvers",  # the audit row names who approved
                "actions": ["codepipeline:GetPipelineState"],
                "resources": approvals,
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
    return blocks


def _github_role(ir: IR, ecr_push: list[str], repos: list[Ref], kms_key: list[Ref]) -> list[Block]:
    """The role GitHub Actions assumes through OIDC."""
    blocks: list[Block] = []

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
                "actions": COSIGN_KMS,
                "resources": [Ref("aws_kms_key.signing.arn")],
            }
        )
    if ir.delivery == "github-actions" and ir.deployments_table:
        gh_statements.append(
            {
                "sid": "RecordDeployments",
                "actions": ["dynamodb:PutItem"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
            }
        )
    blocks.append(policy_doc("github_actions", gh_statements))
    blocks.append(inline_policy("github_actions", "github_actions", "github_actions"))
    return blocks
