"""CloudTrail where asked (``audit.cloudtrail: true``): cloudtrail.tf.

Off by default, because a trail is usually the account's (or the organisation's),
not a project's.  When on: one multi-region trail with log file validation, its own
KMS key (so nothing else's key policy grows) and its own bucket, whose objects expire
after 90 days (the specification's retention).  With CodePipeline delivery it records
S3 data events of the artifact bucket, which is what storage.tf's logging claim rests on.
"""

from __future__ import annotations

from ...ir import IR
from ...serialize.hcl import Block, Ref, Template
from .blocks import KEY_POLICY_SKIPS, policy_doc, resource

RETENTION_DAYS = 90


def trail_name(ir: IR) -> str:
    return f"{ir.project}-cicd"


def cloudtrail(ir: IR) -> list[Block]:
    acct, region, name = ir.aws.account_id, ir.aws.region, trail_name(ir)
    trail_arn = f"arn:aws:cloudtrail:{region}:{acct}:trail/{name}"
    bucket = f"{ir.project}-cicd-trail-{acct}"
    blocks: list[Block] = []
    key_policy = policy_doc(
        "trail_key",
        [
            {
                "sid": "AccountAdministration",
                "actions": ["kms:*"],
                "resources": ["*"],
                "principals": [("AWS", [f"arn:aws:iam::{acct}:root"])],
            },
            {
                "sid": "CloudTrailEncryptsLogs",
                "actions": ["kms:GenerateDataKey*", "kms:DescribeKey"],
                "resources": ["*"],
                "principals": [("Service", ["cloudtrail.amazonaws.com"])],
                "conditions": [("StringEquals", "aws:SourceArn", [trail_arn])],
            },
        ],
        KEY_POLICY_SKIPS,
    )
    key = resource("aws_kms_key", "trail")
    key.attr("description", f"Encrypts the {name} CloudTrail logs")
    key.attr("enable_key_rotation", True)
    key.attr("deletion_window_in_days", 30)
    key.attr("policy", Ref("data.aws_iam_policy_document.trail_key.json"))
    blocks += [key_policy, key]

    b = resource("aws_s3_bucket", "trail")
    b.comment("checkov:skip=CKV_AWS_144: audit logs stay in the region of the pipelines")
    b.comment("checkov:skip=CKV_AWS_18: the trail's own bucket; logging it needs another")
    b.comment("checkov:skip=CKV2_AWS_62: nothing consumes trail bucket events")
    b.attr("bucket", bucket)
    v = resource("aws_s3_bucket_versioning", "trail")
    v.attr("bucket", Ref("aws_s3_bucket.trail.id"))
    v.block("versioning_configuration").attr("status", "Enabled")
    enc = resource("aws_s3_bucket_server_side_encryption_configuration", "trail")
    enc.attr("bucket", Ref("aws_s3_bucket.trail.id"))
    rule = enc.block("rule")
    rule.attr("bucket_key_enabled", True)
    d = rule.block("apply_server_side_encryption_by_default")
    d.attr("sse_algorithm", "aws:kms")
    d.attr("kms_master_key_id", Ref("aws_kms_key.trail.arn"))
    pab = resource("aws_s3_bucket_public_access_block", "trail")
    pab.attr("bucket", Ref("aws_s3_bucket.trail.id"))
    for a in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        pab.attr(a, True)
    pab.attr("restrict_public_buckets", True)
    lc = resource("aws_s3_bucket_lifecycle_configuration", "trail")
    lc.attr("bucket", Ref("aws_s3_bucket.trail.id"))
    r = lc.block("rule")
    r.attr("id", f"expire-after-{RETENTION_DAYS}-days")
    r.attr("status", "Enabled")
    r.block("filter")
    r.block("expiration").attr("days", RETENTION_DAYS)
    r.block("noncurrent_version_expiration").attr("noncurrent_days", 1)
    r.block("abort_incomplete_multipart_upload").attr("days_after_initiation", 7)
    # CloudTrail's documented bucket policy: ACL check and writes for this trail only
    doc = policy_doc(
        "trail_bucket",
        [
            {
                "sid": "CloudTrailAclCheck",
                "actions": ["s3:GetBucketAcl"],
                "resources": [Ref("aws_s3_bucket.trail.arn")],
                "principals": [("Service", ["cloudtrail.amazonaws.com"])],
                "conditions": [("StringEquals", "aws:SourceArn", [trail_arn])],
            },
            {
                "sid": "CloudTrailWrite",
                "actions": ["s3:PutObject"],
                "resources": [Template((Ref("aws_s3_bucket.trail.arn"), f"/AWSLogs/{acct}/*"))],
                "principals": [("Service", ["cloudtrail.amazonaws.com"])],
                "conditions": [
                    ("StringEquals", "aws:SourceArn", [trail_arn]),
                    ("StringEquals", "s3:x-amz-acl", ["bucket-owner-full-control"]),
                ],
            },
            {
                "sid": "DenyInsecureTransport",
                "effect": "Deny",
                "actions": ["s3:*"],
                "resources": [
                    Ref("aws_s3_bucket.trail.arn"),
                    Template((Ref("aws_s3_bucket.trail.arn"), "/*")),
                ],
                "principals": [("*", ["*"])],
                "conditions": [("Bool", "aws:SecureTransport", ["false"])],
            },
        ],
    )
    pol = resource("aws_s3_bucket_policy", "trail")
    pol.attr("bucket", Ref("aws_s3_bucket.trail.id"))
    pol.attr("policy", Ref("data.aws_iam_policy_document.trail_bucket.json"))
    blocks += [b, v, enc, pab, lc, doc, pol]

    t = resource("aws_cloudtrail", "cicd")
    t.comment("checkov:skip=CKV_AWS_252: alerts come from the pipeline topic, not the trail")
    t.comment(
        "checkov:skip=CKV2_AWS_10: the trail is read in S3 (90 days); no CloudWatch Logs copy"
    )
    t.attr("depends_on", [Ref("aws_s3_bucket_policy.trail")])
    t.attr("name", name)
    t.attr("s3_bucket_name", Ref("aws_s3_bucket.trail.id"))
    t.attr("kms_key_id", Ref("aws_kms_key.trail.arn"))
    t.attr("is_multi_region_trail", True)
    t.attr("include_global_service_events", True)
    t.attr("enable_log_file_validation", True)
    if ir.delivery == "codepipeline":
        sel = t.block("event_selector")
        sel.attr("read_write_type", "All")
        sel.attr("include_management_events", True)
        data = sel.block("data_resource")
        data.attr("type", "AWS::S3::Object")
        buckets = ["artifacts", "release_artifacts"] if ir.release_branches else ["artifacts"]
        data.attr("values", [Template((Ref(f"aws_s3_bucket.{b}.arn"), "/")) for b in buckets])
    blocks.append(t)
    return blocks


def secret_labels(ir: IR) -> list[str]:
    """The Terraform labels of the secrets audit.tf creates (CodePipeline delivery)."""
    labels = []
    for env in ir.environments:
        label = "deploy_" + env.name.replace("-", "_")
        labels += [f"gitops_{label}", f"argocd_{label}"]
    if ir.security.sast_fail_on:
        labels.append("sonarqube")
        if ir.release_branches:
            labels.append("sonarqube_release")
    return labels


def rotation(ir: IR) -> list[Block]:
    """rotation.tf: Secrets Manager rotates each secret with the given function."""
    assert ir.secret_rotation is not None
    function_arn, days = ir.secret_rotation
    perm = resource("aws_lambda_permission", "secrets_rotation")
    perm.attr("statement_id", f"{ir.project}-secrets-rotation")
    perm.attr("action", "lambda:InvokeFunction")
    perm.attr("function_name", function_arn)
    perm.attr("principal", "secretsmanager.amazonaws.com")
    perm.attr("source_account", ir.aws.account_id)
    blocks: list[Block] = [perm]
    for label in secret_labels(ir):
        r = resource("aws_secretsmanager_secret_rotation", label)
        r.attr("secret_id", Ref(f"aws_secretsmanager_secret.{label}.id"))
        r.attr("rotation_lambda_arn", function_arn)
        # the provider's default (true) rotates at apply, when the secret holds no value
        # yet (the one-time setup puts it in): the first rotation waits for the schedule
        r.attr("rotate_immediately", False)
        r.block("rotation_rules").attr("automatically_after_days", days)
        r.attr("depends_on", [Ref("aws_lambda_permission.secrets_rotation")])
        blocks.append(r)
    return blocks
