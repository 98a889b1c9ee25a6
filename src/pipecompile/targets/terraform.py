"""Terraform for AWS CodePipeline and everything it needs, apply-ready.

One V2 pipeline per service x environment: its trigger is the environment's
branch patterns (and the service's folder in a monorepo), its stages are
Source (CodeStarSourceConnection) -> Build (CodeBuild) -> Approval (Manual,
only where the environment asks) -> Deploy (a CodeBuild action that records
the new image tag where Argo CD reads it).  Only action types AWS documents
are used; there is no "CodeBuildDeploy".

Files: versions.tf, variables.tf, outputs.tf, kms.tf, storage.tf, ecr.tf,
codebuild.tf, codepipeline.tf, iam.tf, notifications.tf, audit.tf.
"""

from __future__ import annotations

import json
from typing import Any

from ..hcl import Block, Ref, document
from ..ir import IR, Deployment, Service
from . import Finding, data

name = "terraform"


def _aws() -> dict[str, Any]:
    table: dict[str, Any] = data("terraform", "aws.json")
    return table


def resource(type_: str, label: str) -> Block:
    return Block("resource", (type_, label))


KEY_POLICY_SKIPS = [
    f'checkov:skip={check}: a KMS key policy\'s Resource "*" is the key itself'
    for check in ("CKV_AWS_109", "CKV_AWS_111", "CKV_AWS_356")
]


def policy_doc(
    label: str, statements: list[dict[str, Any]], comments: list[str] | None = None
) -> Block:
    doc = Block("data", ("aws_iam_policy_document", label))
    for c in comments or ():
        doc.comment(c)
    for st in statements:
        s = doc.block("statement")
        if "sid" in st:
            s.attr("sid", st["sid"])
        s.attr("effect", st.get("effect", "Allow"))
        s.attr("actions", st["actions"])
        if "resources" in st:
            s.attr("resources", st["resources"])
        for kind, ids in st.get("principals", []):
            p = s.block("principals")
            p.attr("type", kind)
            p.attr("identifiers", ids)
        for test, variable, values in st.get("conditions", []):
            cond = s.block("condition")
            cond.attr("test", test)
            cond.attr("variable", variable)
            cond.attr("values", values)
    return doc


def _service_role(label: str, name: str, service: str, account: str) -> list[Block]:
    """An IAM role that only ``service``, acting for this account, may assume."""
    trust = policy_doc(
        f"{label}_assume",
        [
            {
                "actions": ["sts:AssumeRole"],
                "principals": [("Service", [service])],
                "conditions": [("StringEquals", "aws:SourceAccount", [account])],
            }
        ],
    )
    return [trust, _role(label, name, f"{label}_assume")]


def versions(ir: IR) -> str:
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
    return document([tf, provider])


def variables(ir: IR) -> str:
    region = Block("variable", ("region",))
    region.attr("description", "AWS region of the pipelines")
    region.attr("type", Ref("string"))
    region.attr("default", ir.aws.region)
    tags = Block("variable", ("tags",))
    tags.attr("description", "Tags applied to every resource")
    tags.attr("type", Ref("map(string)"))
    tags.attr("default", {"project": ir.project, "managed-by": "pipecompile"})
    return document([region, tags])


def kms(ir: IR) -> str:
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
                        [f"arn:aws:logs:{region}:{acct}:log-group:/aws/codebuild/{ir.project}-*"],
                    )
                ],
            },
            {
                "sid": "NotificationsToEncryptedTopic",
                "actions": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "resources": ["*"],
                "principals": [("Service", ["codestar-notifications.amazonaws.com"])],
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
    return document(blocks)


def storage(ir: IR) -> str:
    b = resource("aws_s3_bucket", "artifacts")
    b.comment("checkov:skip=CKV_AWS_144: pipeline artifacts are transient; no cross-region copy")
    b.comment(
        "checkov:skip=CKV_AWS_18: access is audited through CloudTrail data events, "
        "not a second logging bucket"
    )
    b.comment("checkov:skip=CKV2_AWS_62: nothing consumes artifact bucket events")
    b.attr("bucket", ir.aws.artifact_bucket)
    v = resource("aws_s3_bucket_versioning", "artifacts")
    v.attr("bucket", Ref("aws_s3_bucket.artifacts.id"))
    v.block("versioning_configuration").attr("status", "Enabled")
    enc = resource("aws_s3_bucket_server_side_encryption_configuration", "artifacts")
    enc.attr("bucket", Ref("aws_s3_bucket.artifacts.id"))
    rule = enc.block("rule")
    rule.attr("bucket_key_enabled", True)
    d = rule.block("apply_server_side_encryption_by_default")
    d.attr("sse_algorithm", "aws:kms")
    d.attr("kms_master_key_id", Ref("aws_kms_key.cicd.arn"))
    pab = resource("aws_s3_bucket_public_access_block", "artifacts")
    pab.attr("bucket", Ref("aws_s3_bucket.artifacts.id"))
    for a in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        pab.attr(a, True)
    tls = policy_doc(
        "artifacts_tls_only",
        [
            {
                "sid": "DenyInsecureTransport",
                "effect": "Deny",
                "actions": ["s3:*"],
                "resources": [
                    Ref("aws_s3_bucket.artifacts.arn"),
                    Ref('"${aws_s3_bucket.artifacts.arn}/*"'),
                ],
                "principals": [("*", ["*"])],
                "conditions": [("Bool", "aws:SecureTransport", ["false"])],
            }
        ],
    )
    pol = resource("aws_s3_bucket_policy", "artifacts")
    pol.attr("bucket", Ref("aws_s3_bucket.artifacts.id"))
    pol.attr("policy", Ref("data.aws_iam_policy_document.artifacts_tls_only.json"))
    lc = resource("aws_s3_bucket_lifecycle_configuration", "artifacts")
    lc.attr("bucket", Ref("aws_s3_bucket.artifacts.id"))
    r = lc.block("rule")
    r.attr("id", "expire-artifacts")
    r.attr("status", "Enabled")
    r.block("filter")
    r.block("expiration").attr("days", ir.build.artifact_retention_days)
    r.block("noncurrent_version_expiration").attr("noncurrent_days", 30)
    r.block("abort_incomplete_multipart_upload").attr("days_after_initiation", 7)
    return document([b, v, enc, pab, tls, pol, lc])


def ecr(ir: IR) -> str:
    blocks = []
    for svc in ir.services:
        r = resource("aws_ecr_repository", svc.name)
        r.attr("name", svc.image)
        r.attr("image_tag_mutability", "IMMUTABLE")
        r.block("image_scanning_configuration").attr("scan_on_push", True)
        e = r.block("encryption_configuration")
        e.attr("encryption_type", "KMS")
        e.attr("kms_key", Ref("aws_kms_key.cicd.arn"))
        blocks.append(r)
        lp = resource("aws_ecr_lifecycle_policy", svc.name)
        lp.comment(
            f"build.keep_images: the newest {ir.build.keep_images} images stay (the ones "
            "environments run among them); untagged ones expire after a day"
        )
        lp.attr("repository", Ref(f"aws_ecr_repository.{svc.name}.name"))
        lp.attr("policy", _ecr_lifecycle(ir.build.keep_images))
        blocks.append(lp)
    return document(blocks)


def _ecr_lifecycle(keep: int) -> str:
    """The lifecycle policy's JSON: untagged images after a day, then all but the newest."""
    rules = [
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
        },
        {
            "rulePriority": 2,
            "description": f"all but the newest {keep} images",
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": keep,
            },
            "action": {"type": "expire"},
        },
    ]
    return json.dumps({"rules": rules}, sort_keys=True)


def _project(
    ir: IR,
    label: str,
    project_name: str,
    description: str,
    buildspec: str,
    log_label: str,
    privileged: bool,
    timeout: int,
    cache: str,
) -> Block:
    p = resource("aws_codebuild_project", label)
    if privileged:
        p.comment("checkov:skip=CKV_AWS_316: docker builds need privileged mode")
    p.attr("name", project_name)
    p.attr("description", description)
    p.attr("service_role", Ref("aws_iam_role.codebuild.arn"))
    p.attr("build_timeout", timeout)
    p.attr("encryption_key", Ref("aws_kms_key.cicd.arn"))
    p.block("artifacts").attr("type", "CODEPIPELINE")
    src = p.block("source")
    src.attr("type", "CODEPIPELINE")
    src.attr("buildspec", buildspec)
    env = p.block("environment")
    env.attr("compute_type", ir.build.compute_type if privileged else "BUILD_GENERAL1_SMALL")
    env.attr("image", _aws()["build_image"])
    env.attr("type", "LINUX_CONTAINER")
    env.attr("image_pull_credentials_type", "CODEBUILD")
    env.attr("privileged_mode", privileged)
    if cache == "s3":
        c = p.block("cache")
        c.attr("type", "S3")
        c.attr("location", Ref(f'"${{aws_s3_bucket.artifacts.bucket}}/codebuild-cache/{label}"'))
    elif cache == "local":
        c = p.block("cache")
        c.attr("type", "LOCAL")
        c.attr("modes", ["LOCAL_DOCKER_LAYER_CACHE", "LOCAL_SOURCE_CACHE"])
    logs = p.block("logs_config")
    cw = logs.block("cloudwatch_logs")
    cw.attr("group_name", Ref(f"aws_cloudwatch_log_group.{log_label}.name"))
    cw.attr("status", "ENABLED")
    return p


def _log_group(ir: IR, label: str, group: str) -> Block:
    lg = resource("aws_cloudwatch_log_group", label)
    lg.attr("name", group)
    lg.attr("retention_in_days", ir.log_retention_days)
    lg.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    return lg


def codebuild(ir: IR) -> str:
    folder = ir.buildspec_folder
    blocks: list[Block] = []
    for svc in ir.services:
        label = f"build-{svc.name}"
        blocks.append(_log_group(ir, label, svc.build_log_group))
        blocks.append(
            _project(
                ir,
                label,
                svc.build_project,
                f"Build and push {svc.name}",
                f"{folder}/{svc.buildspec}",
                label,
                True,
                ir.build.timeout_minutes,
                ir.build.cache,
            )
        )
    for env in ir.environments:
        label = f"deploy-{env.name}"
        blocks.append(_log_group(ir, label, env.deploy_log_group))
        blocks.append(
            _project(
                ir,
                label,
                env.deploy_project,
                f"Record new image tags for {env.name} in the GitOps repository",
                f"{folder}/{env.deploy_buildspec}",
                label,
                False,
                15,
                "none",
            )
        )
    return document(blocks)


def _pipeline_label(ir: IR, dep: Deployment) -> str:
    """Terraform label of a deployment's pipeline: its name without the project prefix."""
    return dep.pipeline_name.removeprefix(f"{ir.project}-")


def _pipeline(ir: IR, svc: Service, dep: Deployment) -> Block:
    env = ir.environment(dep.environment)
    p = resource("aws_codepipeline", _pipeline_label(ir, dep))
    p.attr("name", dep.pipeline_name)
    p.attr("role_arn", Ref("aws_iam_role.codepipeline.arn"))
    p.attr("pipeline_type", "V2")
    p.attr("execution_mode", "QUEUED")
    store = p.block("artifact_store")
    store.attr("location", Ref("aws_s3_bucket.artifacts.bucket"))
    store.attr("type", "S3")
    key = store.block("encryption_key")
    key.attr("id", Ref("aws_kms_key.cicd.arn"))
    key.attr("type", "KMS")
    trig = p.block("trigger")
    trig.attr("provider_type", "CodeStarSourceConnection")
    git = trig.block("git_configuration")
    git.attr("source_action_name", "Source")
    push = git.block("push")
    br = push.block("branches")
    br.attr("includes", list(env.includes))
    excludes = list(env.excludes)
    if excludes:
        br.attr("excludes", excludes)
    if svc.build_trigger_paths:
        push.block("file_paths").attr("includes", list(svc.build_trigger_paths))

    def action(stage_name: str, **attrs: Any) -> Block:
        st = p.block("stage")
        st.attr("name", stage_name)
        a = st.block("action")
        config = attrs.pop("configuration")
        for k, v in attrs.items():
            a.attr(k, v)
        a.attr("configuration", config)
        return a

    action(
        "Source",
        name="Source",
        category="Source",
        owner="AWS",
        provider="CodeStarSourceConnection",
        version="1",
        output_artifacts=["source_output"],
        configuration={
            "ConnectionArn": Ref("aws_codestarconnections_connection.github.arn"),
            "FullRepositoryId": ir.repository,
            "BranchName": env.manual_start_branch,
            "OutputArtifactFormat": "CODE_ZIP",
        },
    )
    action(
        "Build",
        name="Build",
        category="Build",
        owner="AWS",
        provider="CodeBuild",
        version="1",
        input_artifacts=["source_output"],
        output_artifacts=["image_output"],
        namespace="BuildVariables",
        configuration={"ProjectName": Ref(f"aws_codebuild_project.build-{svc.name}.name")},
    )
    if env.approval:
        action(
            "Approval",
            name="Approve",
            category="Approval",
            owner="AWS",
            provider="Manual",
            version="1",
            configuration={
                "NotificationArn": Ref("aws_sns_topic.events.arn"),
                "CustomData": f"Approve deploying {svc.name} to {env.name}",
            },
        )
    variables = Ref(
        f'jsonencode([{{ name = "SERVICE", value = "{svc.name}", type = "PLAINTEXT" }}, '
        '{ name = "IMAGE_TAG", value = "#{BuildVariables.IMAGE_TAG}", '
        'type = "PLAINTEXT" }])'
    )
    action(
        "Deploy",
        name="RecordImageTag",
        category="Build",
        owner="AWS",
        provider="CodeBuild",
        version="1",
        input_artifacts=["source_output"],
        configuration={
            "ProjectName": Ref(f"aws_codebuild_project.deploy-{env.name}.name"),
            "EnvironmentVariables": variables,
        },
    )
    return p


def codepipeline(ir: IR) -> str:
    conn = resource("aws_codestarconnections_connection", "github")
    conn.comment(
        "Created PENDING: confirm it once in the AWS console (Developer Tools > Connections)."
    )
    conn.attr("name", ir.aws.connection_name)
    conn.attr("provider_type", "GitHub")
    blocks = [conn]
    for svc in ir.services:
        for dep in svc.deployments:
            blocks.append(_pipeline(ir, svc, dep))
    return document(blocks)


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


def _role(label: str, role_name: str, assume_doc: str) -> Block:
    r = resource("aws_iam_role", label)
    r.attr("name", role_name)
    r.attr("assume_role_policy", Ref(f"data.aws_iam_policy_document.{assume_doc}.json"))
    return r


def _inline(label: str, role: str, doc: str) -> Block:
    p = resource("aws_iam_role_policy", label)
    p.attr("name", label)
    p.attr("role", Ref(f"aws_iam_role.{role}.id"))
    p.attr("policy", Ref(f"data.aws_iam_policy_document.{doc}.json"))
    return p


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

    blocks += _service_role(
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
    blocks.append(_inline("codepipeline", "codepipeline", "codepipeline"))

    blocks += _service_role("codebuild", ir.aws.build_role_name, "codebuild.amazonaws.com", acct)
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
    blocks.append(_inline("codebuild", "codebuild", "codebuild"))

    oidc = _aws()["github_oidc_host"]
    if ir.github_oidc_provider == "create":
        gh = resource("aws_iam_openid_connect_provider", "github")
        gh.attr("url", f"https://{oidc}")
        gh.attr("client_id_list", ["sts.amazonaws.com"])
        gh.attr("thumbprint_list", list(_aws()["github_thumbprints"]))
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
    role = _role("github_actions", ir.aws.github_role_name, "github_assume")
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
    blocks.append(_inline("github_actions", "github_actions", "github_actions"))
    return document(blocks)


def notifications(ir: IR) -> str:
    topic = resource("aws_sns_topic", "events")
    topic.attr("name", ir.notifications.sns_topic)
    topic.attr("kms_master_key_id", Ref("aws_kms_key.cicd.id"))
    doc = policy_doc(
        "events_topic",
        [
            {
                "sid": "CodestarNotifications",
                "actions": ["sns:Publish"],
                "resources": [Ref("aws_sns_topic.events.arn")],
                "principals": [("Service", ["codestar-notifications.amazonaws.com"])],
                "conditions": [("StringEquals", "aws:SourceAccount", [ir.aws.account_id])],
            }
        ],
    )
    pol = resource("aws_sns_topic_policy", "events")
    pol.attr("arn", Ref("aws_sns_topic.events.arn"))
    pol.attr("policy", Ref("data.aws_iam_policy_document.events_topic.json"))
    blocks = [topic, doc, pol]
    events = [_aws()["pipeline_events"][e] for e in ir.notifications.sns_events]
    if events:
        for svc in ir.services:
            for dep in svc.deployments:
                label = _pipeline_label(ir, dep)
                rule = resource("aws_codestarnotifications_notification_rule", label)
                rule.attr("name", dep.notification_rule_name)
                rule.attr("resource", Ref(f"aws_codepipeline.{label}.arn"))
                rule.attr("detail_type", "BASIC")
                rule.attr("event_type_ids", events)
                rule.block("target").attr("address", Ref("aws_sns_topic.events.arn"))
                blocks.append(rule)
    return document(blocks)


def audit(ir: IR) -> str:
    secret = resource("aws_secretsmanager_secret", "gitops_credential")
    secret.comment(
        "checkov:skip=CKV2_AWS_57: a deploy key or token is rotated by hand in "
        "the GitOps repository"
    )
    secret.attr("name", ir.aws.gitops_secret_name)
    secret.attr("description", "Deploy key or token the deploy builds use to push image tags")
    secret.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    blocks = [secret]
    if ir.deployments_table:
        t = resource("aws_dynamodb_table", "deployments")
        t.attr("name", ir.deployments_table)
        t.attr("billing_mode", "PAY_PER_REQUEST")
        t.attr("hash_key", "service")
        t.attr("range_key", "deployed_at")
        t.attr("deletion_protection_enabled", True)
        for attr_name in ("service", "deployed_at"):
            a = t.block("attribute")
            a.attr("name", attr_name)
            a.attr("type", "S")
        t.block("point_in_time_recovery").attr("enabled", True)
        sse = t.block("server_side_encryption")
        sse.attr("enabled", True)
        sse.attr("kms_key_arn", Ref("aws_kms_key.cicd.arn"))
        blocks.append(t)
    return document(blocks)


def outputs(ir: IR) -> str:
    blocks = []

    def out(label: str, value: Any, description: str) -> None:
        o = Block("output", (label,))
        o.attr("description", description)
        o.attr("value", value)
        blocks.append(o)

    out(
        "codestar_connection_arn",
        Ref("aws_codestarconnections_connection.github.arn"),
        "Confirm this connection once in the AWS console",
    )
    out(
        "github_actions_role_arn",
        Ref("aws_iam_role.github_actions.arn"),
        "Role the GitHub Actions workflows assume through OIDC",
    )
    out("artifact_bucket", Ref("aws_s3_bucket.artifacts.bucket"), "Pipeline artifact bucket")
    out(
        "gitops_credential_secret",
        Ref("aws_secretsmanager_secret.gitops_credential.name"),
        "Put the GitOps deploy key or token here",
    )
    out(
        "ecr_repository_urls",
        {s.name: Ref(f"aws_ecr_repository.{s.name}.repository_url") for s in ir.services},
        "ECR repository URL of each service",
    )
    return document(blocks)


# CodePipeline trigger limits (GitBranchFilterCriteria: 8 patterns per list) and
# the longest pipeline name it allows.
MAX_BRANCH_PATTERNS = 8
MAX_PIPELINE_NAME = 100


def check(ir: IR) -> list[Finding]:
    """What CodePipeline cannot take: too many trigger patterns, too long a name."""
    out: list[Finding] = []
    for env in ir.environments:
        for label, pats in (("branch patterns", env.includes), ("excluded patterns", env.excludes)):
            if len(pats) > MAX_BRANCH_PATTERNS:
                out.append(
                    Finding(
                        ("environments", env.name, "branches"),
                        f"{len(pats)} {label}; an AWS CodePipeline trigger accepts "
                        f"at most {MAX_BRANCH_PATTERNS}",
                    )
                )
    for svc in ir.services:
        for dep in svc.deployments:
            if len(dep.pipeline_name) > MAX_PIPELINE_NAME:
                out.append(
                    Finding(
                        ("services", svc.name),
                        f"pipeline name '{dep.pipeline_name}' is longer than the "
                        f"{MAX_PIPELINE_NAME} characters AWS CodePipeline allows; shorten "
                        "the project, service or environment name",
                        key=True,
                    )
                )
    if "codebuild" not in dict(ir.outputs):
        out.append(
            Finding(
                ("outputs",),
                "the terraform output's CodeBuild projects read buildspecs from "
                f"{ir.buildspec_folder}/, but the codebuild output is off: "
                "keep buildspecs there yourself, or turn the codebuild output on",
                severity="warning",
            )
        )
    return out


def _before_first_apply(ir: IR, tf_folder: str) -> list[str]:
    """What the account must have before ``terraform init`` and the first ``apply``."""
    out = [f"Before the first terraform apply in {tf_folder}:"]
    be = ir.backend
    if be.kind == "local":
        out.append(
            "  state: local (terraform.backend), for trying things out; set "
            "terraform.backend.type: s3 before a team or CI applies"
        )
    else:
        out.append(
            f"  S3 bucket {be.bucket} in {be.region} for the state (key {be.key}): "
            "versioning and encryption on, public access blocked"
        )
        if be.lock_table:
            out.append(
                f"  DynamoDB table {be.lock_table} with the string partition key LockID "
                "(state locking)"
            )
        else:
            out.append("  Terraform >= 1.10 (state locking with an S3 lock file, use_lockfile)")
    host = "token.actions.githubusercontent.com"
    if ir.github_oidc_provider == "existing":
        out.append(f"  the account's IAM OIDC provider for https://{host} (read, not created)")
    else:
        out.append(
            f"  no IAM OIDC provider for https://{host} yet (an account holds one per "
            "URL; if it has one, set aws.github_oidc_provider: existing)"
        )
    if ir.security.image_scan_fail_on:
        mode = ir.security.image_scanning
        out.append(
            "  ECR registry scanning: "
            + {
                "auto": "basic or enhanced (the gate asks the registry)",
                "basic": "basic (scan on push)",
                "enhanced": "enhanced (Amazon Inspector activated for ECR)",
            }[mode]
        )
    return out


def describe(ir: IR) -> list[str]:
    """What the account needs before the first apply, and what to do after it."""
    tf_folder = ir.output(name)
    out = _before_first_apply(ir, tf_folder)
    out.append(f"AWS (terraform apply in {tf_folder}):")
    out.append(f"  IAM role {ir.aws.github_role_arn} trusted by GitHub OIDC for {ir.repository}")
    out.append(
        f"  CodeStar connection '{ir.aws.connection_name}': confirm it once in the "
        "console (Developer Tools > Settings > Connections)"
    )
    out.append(
        f"  Secrets Manager secret {ir.aws.gitops_secret_name}: the GitOps deploy "
        "key or token, for the CodeBuild deploy"
    )
    out.append(f"  SNS topic {ir.notifications.sns_topic}: subscribe approvers")
    return out


def render(ir: IR) -> dict[str, str]:
    files = {
        "versions.tf": versions(ir),
        "variables.tf": variables(ir),
        "outputs.tf": outputs(ir),
        "kms.tf": kms(ir),
        "storage.tf": storage(ir),
        "ecr.tf": ecr(ir),
        "codebuild.tf": codebuild(ir),
        "codepipeline.tf": codepipeline(ir),
        "iam.tf": iam(ir),
        "notifications.tf": notifications(ir),
        "audit.tf": audit(ir),
    }
    return files
