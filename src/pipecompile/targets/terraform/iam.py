"""IAM statements both deliveries' roles share: the action lists (ECR push, cosign's KMS
calls, scan reports), each tier's repositories and artifact bucket, a deploy's
statements (its tier's images, its own audit rows), the DAST gate's promotions write,
the tables' key, and NEVER_APPROVE (every CI role is denied
codepipeline:PutApprovalResult).  The roles are in iam_codepipeline.py (CodePipeline
delivery) and iam_github.py (GitHub delivery).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Ref, Template


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
