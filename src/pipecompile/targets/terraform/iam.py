"""IAM: least privilege, build apart from deploy, one deploy role per environment, two
build tiers that share nothing they could write.

CodePipeline delivery: the pipeline role; the dev-tier CodeBuild role (any deploy branch's
code: its ECR repositories, the dev artifact bucket); the release-tier role (approval
environments' branches: the release repositories, the release bucket, verifying with the
release key); per tier a sign role (its sign project, which runs no branch code: the only
CodePipeline principal holding kms:Sign on the tier's key); the DAST project's own role
(records a passed digest in the promotions table, which no other role writes: an ECR tag
cannot be scoped in IAM; nothing else);
one role per environment for its deploy project (its own GitOps and Argo CD secrets,
its tier's images, its own rows of the audit table); one approver role per approval
environment, the only principal that may approve it (every CI role is denied
codepipeline:PutApprovalResult).  GitHub delivery's roles are in iam_github.py.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Block, Ref, Template
from ..common import rollback_notifies
from .approvers import approver_role
from .blocks import (
    inline_policy,
    policy_doc,
    service_role,
)
from .network import vpc_statements


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


# No CI principal approves: an approval is a person's, through the approver role.
NEVER_APPROVE = {
    "sid": "NeverApprove",
    "effect": "Deny",
    "actions": ["codepipeline:PutApprovalResult"],
    "resources": ["*"],
}


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
# what cosign sign and attest call on the repository: read the image, push the signature
# and the attestations (manifests and blobs of the same repository)
ECR_SIGN = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]
# what publishing a buildspec's report calls (CodeBuild creates the group on first use)
SCAN_REPORT_ACTIONS = [
    "codebuild:BatchPutTestCases",
    "codebuild:CreateReport",
    "codebuild:CreateReportGroup",
    "codebuild:UpdateReport",
]
# what verifying a signature calls (the public key is checked locally)
COSIGN_VERIFY_KMS = ["kms:DescribeKey", "kms:GetPublicKey"]


def _repos(ir: IR, release: bool) -> list[Ref]:
    """The ECR repositories of one tier: the release repositories only the release tier
    writes, or the dev tier's."""
    suffix = "-release" if release else ""
    return [Ref(f"aws_ecr_repository.{s.name}{suffix}.arn") for s in ir.services]


def _env_repos(ir: IR, env: Environment) -> list[Ref]:
    return _repos(ir, env.approval)


def bucket_label(release: bool) -> str:
    """The artifact bucket of a tier (the release tier's: approval environments)."""
    return "release_artifacts" if release else "artifacts"


def _bucket(release: bool = False) -> list[Ref | Template]:
    label = bucket_label(release)
    return [
        Ref(f"aws_s3_bucket.{label}.arn"),
        Template((Ref(f"aws_s3_bucket.{label}.arn"), "/*")),
    ]


def _log_arn(label: str) -> Template:
    """The log streams of one CodeBuild project's log group."""
    return Template((Ref(f"aws_cloudwatch_log_group.{label}.arn"), ":*"))


def _label(env: Environment) -> str:
    return "deploy_" + env.name.replace("-", "_")


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


def _deploy_statements(ir: IR, env: Environment) -> list[dict[str, Any]]:
    """What a deploy to ``env`` calls, in either orchestrator: only its tier's images, only
    its own audit rows."""
    out: list[dict[str, Any]] = []
    if ir.security.sign_images:
        keys = [Ref("aws_kms_key.release.arn")] if ir.release_branches else []
        if not env.approval or not ir.release_branches:  # approval: release images only
            keys.append(Ref("aws_kms_key.signing.arn"))
        out.append({"sid": "VerifySignatures", "actions": COSIGN_VERIFY_KMS, "resources": keys})
    dast = ir.security.dast
    repos = _env_repos(ir, env)
    if env.after_dast and dast is not None:
        # the DAST gate records a passed digest with its own role (CodePipeline: the DAST
        # project's; GitHub: the DAST job's) in the promotions table, which no build or
        # deploy role writes: an ECR tag cannot be scoped in IAM, an item's key can
        out.append(
            {
                "sid": "ReadPromotions",
                "actions": ["dynamodb:GetItem"],
                "resources": [Ref("aws_dynamodb_table.promotions.arn")],
                "conditions": [
                    ("ForAllValues:StringLike", "dynamodb:LeadingKeys", [f"{dast.environment}/*"])
                ],
            }
        )
    if ir.security.sign_images:
        out.append(
            {"sid": "EcrLogin", "actions": ["ecr:GetAuthorizationToken"], "resources": ["*"]}
        )
        actions = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]
        out.append({"sid": "ReadImages", "actions": sorted(actions), "resources": repos})
    if ir.deployments_table:
        out.append(
            {
                "sid": "RecordDeployments",  # new rows only, of this environment only
                "actions": ["dynamodb:PutItem"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
                "conditions": [
                    ("ForAllValues:StringLike", "dynamodb:LeadingKeys", [f"{env.name}/*"])
                ],
            }
        )
        out.append(
            {
                # the manual rollback's history (rollback-resolve.sh): this environment's
                # rows only, as the deploy that returns to one of them
                "sid": "RollbackHistory",
                "actions": ["dynamodb:Query"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
                "conditions": [
                    ("ForAllValues:StringLike", "dynamodb:LeadingKeys", [f"{env.name}/*"])
                ],
            }
        )
    if ir.deployments_table or (env.after_dast and dast is not None):
        out.append(table_key(ir))
    out.append(NEVER_APPROVE)
    return out


def table_key(ir: IR) -> dict[str, Any]:
    """The audit and promotions tables are encrypted with the project's key: DynamoDB
    decrypts the table key as the principal that calls it, so each role that reads or
    writes them needs kms:Decrypt on that key (awsdocs/amazon-dynamodb-developer-guide,
    "Authorizing use of your KMS key"), through DynamoDB only."""
    return {
        "sid": "TableKey",
        "actions": ["kms:Decrypt"],
        "resources": [Ref("aws_kms_key.cicd.arn")],
        "conditions": [
            ("StringEquals", "kms:ViaService", [f"dynamodb.{ir.aws.region}.amazonaws.com"])
        ],
    }


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


def _mark_passed(ir: IR) -> dict[str, Any]:
    """The DAST gate's one write: a new item, keyed by the scanned environment, in the
    promotions table (dast-mark.sh); the environments after it read only those items."""
    dast = ir.security.dast
    assert dast is not None
    return {
        "sid": "MarkPassed",
        "actions": ["dynamodb:GetItem", "dynamodb:PutItem"],
        "resources": [Ref("aws_dynamodb_table.promotions.arn")],
        "conditions": [
            ("ForAllValues:StringLike", "dynamodb:LeadingKeys", [f"{dast.environment}/*"])
        ],
    }


def dast_reads_deployments(ir: IR) -> list[dict[str, Any]]:
    """dast-mark.sh reads the scanned environment's newest deploy (its audit rows only):
    a pass is recorded only for the digest that environment runs."""
    dast = ir.security.dast
    if dast is None or not ir.deployments_table:
        return []
    return [
        {
            "sid": "ReadDeployments",
            "actions": ["dynamodb:Query"],
            "resources": [Ref("aws_dynamodb_table.deployments.arn")],
            "conditions": [
                ("ForAllValues:StringLike", "dynamodb:LeadingKeys", [f"{dast.environment}/*"])
            ],
        }
    ]


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
