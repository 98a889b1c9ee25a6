"""The account-level files: versions, variables, KMS, artifact store, ECR, SNS,
the audit table and the outputs."""

from __future__ import annotations

import json
from typing import Any

from ...ir import IR
from ...serialize.hcl import Block, Ref, Template
from .blocks import (
    KEY_POLICY_SKIPS,
    policy_doc,
    resource,
)

TOPIC_PUBLISHERS = [
    "codestar-notifications.amazonaws.com",
    "events.amazonaws.com",
    "cloudwatch.amazonaws.com",
]


def versions(ir: IR) -> list[Block]:
    tf = Block("terraform")
    be = ir.backend
    # S3's native state locking (use_lockfile) arrived in Terraform 1.10
    native_lock = be.kind == "s3" and be.lock_table is None
    tf.attr("required_version", ">= 1.10.0" if native_lock else ">= 1.6.0")
    tf.block("required_providers").attr(
        "aws", {"source": "hashicorp/aws", "version": ir.pins.terraform_aws_provider}
    )
    backend = tf.block("backend", be.kind)
    backend.comment("terraform.backend in the pipeline file")
    if be.kind == "s3":
        backend.attr("bucket", be.bucket)
        backend.attr("key", be.key)
        backend.attr("region", be.region)
        backend.attr("encrypt", True)
        if native_lock:
            backend.attr("use_lockfile", True)
        else:
            backend.attr("dynamodb_table", be.lock_table)
    provider = Block("provider", ("aws",))
    provider.attr("region", Ref("var.region"))
    provider.block("default_tags").attr("tags", Ref("var.tags"))
    return [tf, provider]


def variables(ir: IR) -> list[Block]:
    region = Block("variable", ("region",))
    region.attr("description", "AWS region of the pipelines")
    region.attr("type", Ref("string"))
    region.attr("default", ir.aws.region)
    tags = Block("variable", ("tags",))
    tags.attr("description", "Tags applied to every resource")
    tags.attr("type", Ref("map(string)"))
    tags.attr("default", {"project": ir.project, "managed-by": "pipecompile"})
    return [region, tags]


def kms(ir: IR) -> list[Block]:
    acct = ir.aws.account_id
    region = ir.aws.region
    key_policy = policy_doc(
        "cicd_key",
        [
            {
                "sid": "AccountAdministration",
                "actions": ["kms:*"],
                "resources": ["*"],
                "principals": [("AWS", [f"arn:aws:iam::{acct}:root"])],
            },
            {
                "sid": "CloudWatchLogs",
                "actions": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "resources": ["*"],
                "principals": [("Service", [f"logs.{region}.amazonaws.com"])],
                "conditions": [
                    (
                        "ArnLike",
                        "kms:EncryptionContext:aws:logs:arn",
                        [
                            f"arn:aws:logs:{region}:{acct}:log-group:/aws/codebuild/{ir.project}-*",
                            f"arn:aws:logs:{region}:{acct}:log-group:/aws/events/{ir.project}-*",
                        ],
                    )
                ],
            },
            {
                "sid": "NotificationsToEncryptedTopic",
                "actions": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "resources": ["*"],
                # EventBridge notification rules and CloudWatch alarms publish to the topic,
                # only for this account, through SNS, for the topic
                "principals": [("Service", TOPIC_PUBLISHERS)],
                "conditions": [
                    ("StringEquals", "aws:SourceAccount", [acct]),
                    ("StringEquals", "kms:ViaService", [f"sns.{region}.amazonaws.com"]),
                    (
                        "StringEquals",
                        "kms:EncryptionContext:aws:sns:topicArn",
                        [ir.aws.sns_topic_arn],
                    ),
                ],
            },
        ],
        KEY_POLICY_SKIPS,
    )
    key = resource("aws_kms_key", "cicd")
    key.attr("description", f"Encrypts the {ir.project} CI/CD artifacts, images, logs and topic")
    key.attr("enable_key_rotation", True)
    key.attr("deletion_window_in_days", 30)
    key.attr("policy", Ref("data.aws_iam_policy_document.cicd_key.json"))
    alias = resource("aws_kms_alias", "cicd")
    alias.attr("name", ir.aws.kms_alias)
    alias.attr("target_key_id", Ref("aws_kms_key.cicd.key_id"))
    blocks = [key_policy, key, alias]
    if ir.security.sign_images:
        sign_policy = policy_doc(
            "signing_key",
            [
                {
                    "sid": "AccountAdministration",
                    "actions": ["kms:*"],
                    "resources": ["*"],
                    "principals": [("AWS", [f"arn:aws:iam::{acct}:root"])],
                }
            ],
            KEY_POLICY_SKIPS,
        )
        sk = resource("aws_kms_key", "signing")
        sk.attr("description", f"Signs the {ir.project} container images (cosign)")
        sk.attr("key_usage", "SIGN_VERIFY")
        sk.attr("customer_master_key_spec", "ECC_NIST_P256")
        sk.attr("deletion_window_in_days", 30)
        sk.attr("policy", Ref("data.aws_iam_policy_document.signing_key.json"))
        sk.comment("checkov:skip=CKV_AWS_7: AWS KMS cannot rotate asymmetric signing keys")
        sa = resource("aws_kms_alias", "signing")
        sa.attr("name", ir.aws.signing_key_alias)
        sa.attr("target_key_id", Ref("aws_kms_key.signing.key_id"))
        blocks += [sign_policy, sk, sa]
        if ir.release_branches:  # only release-tier builds sign with it
            rk = resource("aws_kms_key", "release")
            rk.attr(
                "description",
                f"Signs the {ir.project} images built for approval environments (cosign)",
            )
            rk.attr("key_usage", "SIGN_VERIFY")
            rk.attr("customer_master_key_spec", "ECC_NIST_P256")
            rk.attr("deletion_window_in_days", 30)
            rk.attr("policy", Ref("data.aws_iam_policy_document.signing_key.json"))
            rk.comment("checkov:skip=CKV_AWS_7: AWS KMS cannot rotate asymmetric signing keys")
            ra = resource("aws_kms_alias", "release")
            ra.attr("name", ir.aws.release_key_alias)
            ra.attr("target_key_id", Ref("aws_kms_key.release.key_id"))
            blocks += [rk, ra]
    return blocks


def storage(ir: IR) -> list[Block]:
    """The artifact store; with approval environments a second one for their pipelines
    (artifacts and the release builds' cache), which no dev-tier role can read or write."""
    days = ir.build.artifact_retention_days
    blocks = _bucket("artifacts", ir.aws.artifact_bucket, days, ir.cloudtrail)
    if ir.release_branches:
        blocks += _bucket("release_artifacts", ir.aws.release_artifact_bucket, days, ir.cloudtrail)
    return blocks


def _bucket(label: str, name: str, retention_days: int, trailed: bool) -> list[Block]:
    b = resource("aws_s3_bucket", label)
    b.comment("checkov:skip=CKV_AWS_144: pipeline artifacts are transient; no cross-region copy")
    b.comment(
        "checkov:skip=CKV_AWS_18: access is audited through CloudTrail data events "
        "(cloudtrail.tf), not a second logging bucket"
        if trailed
        else "checkov:skip=CKV_AWS_18: transient artifacts, no access log kept (set "
        "audit.cloudtrail: true for CloudTrail data events on this bucket)"
    )
    b.comment("checkov:skip=CKV2_AWS_62: nothing consumes artifact bucket events")
    b.attr("bucket", name)
    v = resource("aws_s3_bucket_versioning", label)
    v.attr("bucket", Ref(f"aws_s3_bucket.{label}.id"))
    v.block("versioning_configuration").attr("status", "Enabled")
    enc = resource("aws_s3_bucket_server_side_encryption_configuration", label)
    enc.attr("bucket", Ref(f"aws_s3_bucket.{label}.id"))
    rule = enc.block("rule")
    rule.attr("bucket_key_enabled", True)
    d = rule.block("apply_server_side_encryption_by_default")
    d.attr("sse_algorithm", "aws:kms")
    d.attr("kms_master_key_id", Ref("aws_kms_key.cicd.arn"))
    pab = resource("aws_s3_bucket_public_access_block", label)
    pab.attr("bucket", Ref(f"aws_s3_bucket.{label}.id"))
    for a in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        pab.attr(a, True)
    tls = policy_doc(
        f"{label}_tls_only",
        [
            {
                "sid": "DenyInsecureTransport",
                "effect": "Deny",
                "actions": ["s3:*"],
                "resources": [
                    Ref(f"aws_s3_bucket.{label}.arn"),
                    Template((Ref(f"aws_s3_bucket.{label}.arn"), "/*")),
                ],
                "principals": [("*", ["*"])],
                "conditions": [("Bool", "aws:SecureTransport", ["false"])],
            }
        ],
    )
    pol = resource("aws_s3_bucket_policy", label)
    pol.attr("bucket", Ref(f"aws_s3_bucket.{label}.id"))
    pol.attr("policy", Ref(f"data.aws_iam_policy_document.{label}_tls_only.json"))
    lc = resource("aws_s3_bucket_lifecycle_configuration", label)
    lc.attr("bucket", Ref(f"aws_s3_bucket.{label}.id"))
    r = lc.block("rule")
    r.attr("id", "expire-artifacts")
    r.attr("status", "Enabled")
    r.block("filter")
    r.block("expiration").attr("days", retention_days)
    r.block("noncurrent_version_expiration").attr("noncurrent_days", 30)
    r.block("abort_incomplete_multipart_upload").attr("days_after_initiation", 7)
    return [b, v, enc, pab, tls, pol, lc]


def ecr(ir: IR) -> list[Block]:
    """A repository per service; with approval environments a second one, the release
    repository, that only the release tier writes (IAM: a tag cannot be scoped, a
    repository can)."""
    blocks = []
    for svc in ir.services:
        repos = [(svc.name, svc.image)]
        if ir.release_branches:
            repos.append((f"{svc.name}-release", svc.release_image))
        for label, name in repos:
            r = resource("aws_ecr_repository", label)
            r.attr("name", name)
            r.attr("image_tag_mutability", "IMMUTABLE")
            r.block("image_scanning_configuration").attr("scan_on_push", True)
            e = r.block("encryption_configuration")
            e.attr("encryption_type", "KMS")
            e.attr("kms_key", Ref("aws_kms_key.cicd.arn"))
            blocks.append(r)
            lp = resource("aws_ecr_lifecycle_policy", label)
            lp.comment(
                f"build.keep_images: the newest {ir.build.keep_images} images of each build "
                "tier stay (feature builds never push a release image out); signatures never "
                "expire; untagged images expire after a day"
            )
            lp.attr("repository", Ref(f"aws_ecr_repository.{label}.name"))
            lp.attr("policy", _ecr_lifecycle(ir.build.keep_images, dict(ir.plan.tag_prefixes)))
            blocks.append(lp)
    return blocks


def _ecr_lifecycle(keep: int, prefixes: dict[str, str]) -> str:
    """The lifecycle policy's JSON: untagged images after a day; the newest ``keep`` of each
    build tier, counted apart (feature churn never expires a release image); signatures
    (cosign's sha256-<digest>.sig tags) match no rule, so they never expire.

    ECR evaluates rules by priority and an image a rule selects is never expired by a
    lower one; tags no rule selects stay (Amazon ECR User Guide, lifecycle policies)."""
    rules: list[dict[str, object]] = [
        {
            "rulePriority": 1,
            "description": "untagged images",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        }
    ]
    # the plan's tag prefixes: rel- for release builds, src- for the others
    tiers = ((prefixes["release"], "release-tier"), (prefixes["dev"], "development-tier"))
    for priority, (prefix, what) in enumerate(tiers, start=2):
        rules.append(
            {
                "rulePriority": priority,
                "description": f"all but the newest {keep} {what} images ({prefix}-*)",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPrefixList": [f"{prefix}-"],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep,
                },
                "action": {"type": "expire"},
            }
        )
    return json.dumps({"rules": rules}, sort_keys=True)


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
