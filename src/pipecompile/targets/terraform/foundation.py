"""The account-level files: versions, variables, KMS, artifact store, ECR (the topics,
the audit table and the outputs: audit.py)."""

from __future__ import annotations

import json

from ...ir import IR
from ...serialize.hcl import Block, Ref, Template
from .blocks import (
    KEY_POLICY_SKIPS,
    policy_doc,
    resource,
)

EVENTBRIDGE = "events.amazonaws.com"
TOPIC_PUBLISHERS = [
    "codestar-notifications.amazonaws.com",
    EVENTBRIDGE,
    "cloudwatch.amazonaws.com",
]
# on the key, EventBridge gets a statement of its own (see kms())
KEY_SOURCE_CONDITIONED_PUBLISHERS = [p for p in TOPIC_PUBLISHERS if p != EVENTBRIDGE]


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
                # CodeStar notification rules and CloudWatch alarms publish to the topic,
                # only for this account, through SNS, for the topic
                "principals": [("Service", KEY_SOURCE_CONDITIONED_PUBLISHERS)],
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
            {
                "sid": "EventBridgeToEncryptedTopic",
                "actions": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "resources": ["*"],
                # EventBridge rules (the deploy and pipeline state changes) publish to the
                # topic. A statement of their own, without aws:SourceAccount: the Amazon SNS
                # Developer Guide (sns-key-management.html, "Enable compatibility between
                # event sources from AWS services and encrypted topics") says the
                # aws:SourceAccount, aws:SourceArn and aws:SourceOrgID condition keys are
                # not supported in a KMS key policy for EventBridge to encrypted topics: with
                # them every event is dropped (FailedInvocations). What limits it instead is
                # the data key's encryption context, which SNS sets to the topic's ARN
                # (aws:sns:topicArn; the same condition AWS documents for a service principal
                # publishing to an encrypted topic: GameLift FlexMatch Guide,
                # queue-notification-sns-sse.html). The topic policy (audit.py) still admits
                # events.amazonaws.com only with aws:SourceAccount: SNS resource policies do
                # support it.
                "principals": [("Service", [EVENTBRIDGE])],
                "conditions": [
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
            signed = ir.security.sign_images
            lp.comment(
                f"build.keep_images: the newest {ir.build.keep_images} images of each build "
                "tier stay (feature builds never push a release image out); signatures never "
                "expire; "
                + (
                    "untagged manifests stay: cosign v3 stores signatures and attestations "
                    "as untagged OCI referrers"
                    if signed
                    else "untagged images expire after a day"
                )
            )
            lp.attr("repository", Ref(f"aws_ecr_repository.{label}.name"))
            lp.attr(
                "policy",
                _ecr_lifecycle(ir.build.keep_images, dict(ir.plan.tag_prefixes), signed),
            )
            blocks.append(lp)
    return blocks


def _ecr_lifecycle(keep: int, prefixes: dict[str, str], signed: bool) -> str:
    """The lifecycle policy's JSON: the newest ``keep`` of each build tier, counted apart
    (feature churn never expires a release image); untagged images after a day, unless
    the images are signed.

    Signed images keep every untagged manifest: cosign v3 (the pinned v3.0.6) signs and
    attests in the new bundle format by default (cmd/cosign/cli/options/sign.go and
    attest.go: --new-bundle-format defaults to true, "attach a Sigstore bundle using OCI
    referrers API"), and pkg/oci/remote/write.go's WriteReferrer pushes each bundle as
    an OCI 1.1 manifest with a ``subject``, addressed by its own digest (referrerManifest
    .targetRef: <repo>@sha256:<manifest digest>), never tagged: no
    sha256-<digest>.sig tag any more.  ECR keeps referrers as images of the repository,
    and a lifecycle rule selects only by tag status, tag patterns and age or count
    (Amazon ECR User Guide, lifecycle policy properties), not by subject or artifact
    type (aws/containers-roadmap#2613 asks for it), so "untagged after a day" would
    expire every signature and attestation a day after the build: a promotion, or a
    rollback to an older digest, would then fail its signature check.  The pipeline
    pushes every image with a tag (tags are immutable), so little else is untagged; a
    referrer left behind by an expired image is a few kilobytes.

    ECR evaluates rules by priority and an image a rule selects is never expired by a
    lower one; tags no rule selects stay (Amazon ECR User Guide, lifecycle policies)."""
    rules: list[dict[str, object]] = []
    if not signed:
        rules.append(
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
        )
    # the plan's tag prefixes: rel- for release builds, src- for the others
    tiers = ((prefixes["release"], "release-tier"), (prefixes["dev"], "development-tier"))
    for priority, (prefix, what) in enumerate(tiers, start=len(rules) + 1):
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
