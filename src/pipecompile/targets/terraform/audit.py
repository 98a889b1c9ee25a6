"""notifications.tf (the pipeline topic and the approval topics), audit.tf (the
deploy credentials' secrets and the audit table) and outputs.tf."""

from __future__ import annotations

from typing import Any

from ...ir import IR
from ...serialize.hcl import Block, Ref
from .blocks import (
    policy_doc,
    resource,
)
from .foundation import TOPIC_PUBLISHERS


def notifications(ir: IR) -> list[Block]:
    topic = resource("aws_sns_topic", "events")
    topic.attr("name", ir.notifications.sns_topic)
    topic.attr("kms_master_key_id", Ref("aws_kms_key.cicd.id"))
    doc = policy_doc(
        "events_topic",
        [
            {
                "sid": "NotificationPublishers",
                "actions": ["sns:Publish"],
                "resources": [Ref("aws_sns_topic.events.arn")],
                "principals": [("Service", TOPIC_PUBLISHERS)],
                "conditions": [("StringEquals", "aws:SourceAccount", [ir.aws.account_id])],
            }
        ],
    )
    pol = resource("aws_sns_topic_policy", "events")
    pol.attr("arn", Ref("aws_sns_topic.events.arn"))
    pol.attr("policy", Ref("data.aws_iam_policy_document.events_topic.json"))
    blocks = [topic, doc, pol]  # notification rules: chatops.tf
    if ir.delivery == "codepipeline":
        blocks += _approval_topics(ir)
    return blocks


def _approval_topics(ir: IR) -> list[Block]:
    """Per approval environment: the topic its Approval actions notify, published only by
    the pipeline role, and its approvers' e-mail subscriptions."""
    blocks: list[Block] = []
    for env in ir.environments:
        if not env.approval:
            continue
        label = "approvals_" + env.name.replace("-", "_")
        t = resource("aws_sns_topic", label)
        t.attr("name", env.approval_topic)
        t.attr("kms_master_key_id", Ref("aws_kms_key.cicd.id"))
        doc = policy_doc(
            f"{label}_topic",
            [
                {
                    "sid": "PipelineRoleOnly",
                    "actions": ["sns:Publish"],
                    "resources": [Ref(f"aws_sns_topic.{label}.arn")],
                    "principals": [("AWS", [Ref("aws_iam_role.codepipeline.arn")])],
                }
            ],
        )
        pol = resource("aws_sns_topic_policy", label)
        pol.attr("arn", Ref(f"aws_sns_topic.{label}.arn"))
        pol.attr("policy", Ref(f"data.aws_iam_policy_document.{label}_topic.json"))
        blocks += [t, doc, pol]
        for i, address in enumerate(env.approvers):
            sub = resource("aws_sns_topic_subscription", f"{label}_{i}")
            sub.comment("pending until the address confirms the e-mail AWS sends it")
            sub.attr("topic_arn", Ref(f"aws_sns_topic.{label}.arn"))
            sub.attr("protocol", "email")
            sub.attr("endpoint", address)
            blocks.append(sub)
    return blocks


def _secret(label: str, name: str, description: str, why: str, rotated: bool = False) -> Block:
    secret = resource("aws_secretsmanager_secret", label)
    if not rotated:  # with terraform.secret_rotation: rotation.tf rotates it
        secret.comment(f"checkov:skip=CKV2_AWS_57: {why}")
    secret.attr("name", name)
    secret.attr("description", description)
    secret.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    return secret


def _gitops_credential(ir: IR) -> str:
    """What the GitOps secret holds: the deploy script uses exactly this (common.py)."""
    if ir.gitops.auth == "https":
        return "access token (HTTPS, contents: write)"
    return "SSH deploy key (the private key, write access)"


def audit(ir: IR) -> list[Block]:
    """The audit table; with CodePipeline, the secrets its CodeBuild projects read."""
    blocks: list[Block] = []
    if ir.delivery == "codepipeline":
        for env in ir.environments:  # one of each per environment: its deploy role's only
            label = "deploy_" + env.name.replace("-", "_")
            blocks.append(
                _secret(
                    f"gitops_{label}",
                    env.gitops_secret_name,
                    f"{_gitops_credential(ir)} the {env.name} deploy pushes to GitOps with",
                    f"the {_gitops_credential(ir)} is rotated by hand in the GitOps repository",
                    ir.secret_rotation is not None,
                )
            )
            blocks.append(
                _secret(
                    f"argocd_{label}",
                    env.argocd_secret_name,
                    f"Argo CD API server and read-only token for {env.name} (keys server, token)",
                    "an Argo CD API token is rotated in Argo CD",
                    ir.secret_rotation is not None,
                )
            )
        if ir.security.sast_fail_on:
            blocks.append(
                _secret(
                    "sonarqube",
                    ir.aws.sonar_secret_name,
                    "SonarQube server and token (JSON keys host_url, token) of the dev-tier "
                    "builds (any deploy branch's code reads it)",
                    "a SonarQube token is rotated in SonarQube",
                    ir.secret_rotation is not None,
                )
            )
            if ir.release_branches:  # a token feature builds never hold
                blocks.append(
                    _secret(
                        "sonarqube_release",
                        ir.aws.release_sonar_secret_name,
                        "SonarQube server and token (JSON keys host_url, token) of the "
                        "release builds only",
                        "a SonarQube token is rotated in SonarQube",
                        ir.secret_rotation is not None,
                    )
                )
        if ir.security.dependencies_fail_on:
            blocks.append(
                _secret(
                    "nvd",
                    ir.aws.nvd_secret_name,
                    "NVD API key for the OWASP dependency check (JSON key api_key): without "
                    "one, every update downloads the NVD at the anonymous rate limit",
                    # not with terraform.secret_rotation either: NVD issues keys by e-mail,
                    # no function can rotate one
                    "an NVD API key is rotated at nvd.nist.gov",
                )
            )
    if ir.deployments_table:
        t = resource("aws_dynamodb_table", "deployments")
        t.attr("name", ir.deployments_table)
        t.attr("billing_mode", "PAY_PER_REQUEST")
        t.comment(
            "one row per deploy run: stream <environment>/<service> (a deploy role writes "
            "only its own environment's: dynamodb:LeadingKeys), deployment "
            "<deployed_at>/<run id>"
        )
        t.attr("hash_key", "stream")
        t.attr("range_key", "deployment")
        t.attr("deletion_protection_enabled", True)
        for attr_name in ("stream", "deployment"):
            a = t.block("attribute")
            a.attr("name", attr_name)
            a.attr("type", "S")
        t.block("point_in_time_recovery").attr("enabled", True)
        sse = t.block("server_side_encryption")
        sse.attr("enabled", True)
        sse.attr("kms_key_arn", Ref("aws_kms_key.cicd.arn"))
        blocks.append(t)
    dast = ir.security.dast
    if dast is not None:
        t = resource("aws_dynamodb_table", "promotions")
        t.attr("name", ir.aws.promotions_table)
        t.attr("billing_mode", "PAY_PER_REQUEST")
        t.comment(
            "the digests that passed DAST: gate <environment>/<repository>, digest; only the "
            "DAST role writes (dynamodb:LeadingKeys), the environments after it read. Not an "
            "ECR tag: IAM cannot scope a tag, and the release build writes the repository"
        )
        t.attr("hash_key", "gate")
        t.attr("range_key", "digest")
        t.attr("deletion_protection_enabled", True)
        for attr_name in ("gate", "digest"):
            a = t.block("attribute")
            a.attr("name", attr_name)
            a.attr("type", "S")
        t.block("point_in_time_recovery").attr("enabled", True)
        sse = t.block("server_side_encryption")
        sse.attr("enabled", True)
        sse.attr("kms_key_arn", Ref("aws_kms_key.cicd.arn"))
        blocks.append(t)
    return blocks


def outputs(ir: IR) -> list[Block]:
    blocks = []

    def out(label: str, value: Any, description: str) -> None:
        o = Block("output", (label,))
        o.attr("description", description)
        o.attr("value", value)
        blocks.append(o)

    if ir.delivery == "codepipeline":
        out(
            "codestar_connection_arn",
            Ref("aws_codestarconnections_connection.github.arn"),
            "Confirm this connection once in the AWS console",
        )
    if ir.delivery == "github-actions":
        out(
            "github_build_role_arn",
            Ref("aws_iam_role.github_build.arn"),
            "Role the GitHub build jobs assume through OIDC (branches)",
        )
        out(
            "github_deploy_role_arns",
            {
                e.name: Ref(f"aws_iam_role.github_deploy_{e.name.replace('-', '_')}.arn")
                for e in ir.environments
            },
            "Role each GitHub environment's deploy jobs assume through OIDC",
        )
    if ir.delivery == "codepipeline":
        out("artifact_bucket", Ref("aws_s3_bucket.artifacts.bucket"), "Pipeline artifact bucket")
        out(
            "gitops_credential_secrets",
            {
                e.name: Ref(
                    f"aws_secretsmanager_secret.gitops_deploy_{e.name.replace('-', '_')}.name"
                )
                for e in ir.environments
            },
            f"Put each environment's GitOps {_gitops_credential(ir)} here",
        )
    out(
        "ecr_repository_urls",
        {s.name: Ref(f"aws_ecr_repository.{s.name}.repository_url") for s in ir.services},
        "ECR repository URL of each service",
    )
    return blocks
