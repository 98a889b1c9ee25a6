"""The compliance jobs (specification 9.2; issue 29, item 4): reviews.tf.

* **Drift check**, daily: ``terraform plan -detailed-exitcode`` of the generated folder
  (drift-check.sh) with a role that may only read: AWS's ``ReadOnlyAccess`` minus the
  data it would otherwise read (secret values, table items, artifacts, log events,
  image layers), plus the state object; the plan takes no lock.  Exit 2 is drift.
* **Security review**, monthly: the digest each environment runs (the audit table's
  newest succeeded row) re-scanned in ECR, its findings at or above the threshold
  listed, and zizmor over the workflows (security-review.sh).

Both end in review-report.sh: an audit row ``review/<review>`` and, on CodePipeline
delivery, a custom notification to the topic (the channel).  On CodePipeline delivery
they are CodeBuild projects on EventBridge schedules (here); on GitHub Actions delivery
scheduled workflows (github_actions/compliance.py) assume the two roles made here
through OIDC, from the GitHub environment ``compliance`` only.  With local state the
drift schedule is off: the state the applies write is not where a job can read it.
"""

from __future__ import annotations

from typing import Any

from ..._version import __version__
from ...ir import IR
from ...serialize.hcl import Block, Ref, Template
from ..common import GH_COMPLIANCE, GH_SUMMARY, ZIZMOR
from ..compliance import (
    CONFIG_REVIEW_SCHEDULE,
    DRIFT_SCHEDULE,
    ENVIRONMENT,
    REVIEW_SCHEDULE,
    SUMMARY_ENVIRONMENT,
    drift_scheduled,
    drift_variables,
    github_roles,
    images,
    review_variables,
    security_review,
    summary_role,
    titles,
)
from .blocks import iam_role, inline_policy, policy_doc, resource
from .iam import NEVER_APPROVE, _scan_statements, table_key
from .oidc import provider_ref, workflow_trust
from .phases import DRIFT_VARIABLE
from .projects import schedule, script_project, subshell

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
OUTCOME_FILE = "/tmp/review-outcome"  # CodeBuild: the build's own scratch space
SUMMARY_FILE = "/tmp/review-summary"

# data the read-only role must not read, although ReadOnlyAccess would let it: a drift
# check compares configuration, and none of these is configuration
_DATA_READS = [
    "secretsmanager:GetSecretValue",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PartiQLSelect",
    "logs:GetLogEvents",
    "logs:FilterLogEvents",
    "logs:StartQuery",
    "logs:GetQueryResults",
    "logs:GetLogRecord",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]


def _repositories(ir: IR) -> list[Ref]:
    out = [Ref(f"aws_ecr_repository.{s.name}.arn") for s in ir.services]
    if ir.release_branches:
        out += [Ref(f"aws_ecr_repository.{s.name}-release.arn") for s in ir.services]
    return out


def _lock_table(ir: IR) -> str:
    be = ir.backend
    return (
        f"arn:aws:dynamodb:{be.region or ir.aws.region}:{ir.aws.account_id}:table/{be.lock_table}"
    )


def _state(ir: IR) -> list[dict[str, Any]]:
    be = ir.backend
    if be.kind != "s3":
        return []
    out: list[dict[str, Any]] = []
    if be.lock_table:  # the S3 backend reads the state's digest entry, also with -lock=false
        out.append(
            {
                "sid": "ReadTheStateDigest",
                "actions": ["dynamodb:GetItem"],
                "resources": [_lock_table(ir)],
            }
        )
    out += [
        {
            "sid": "ReadTheState",
            "actions": ["s3:GetObject"],
            "resources": [f"arn:aws:s3:::{be.bucket}/{be.key}"],
        },
        {
            "sid": "FindTheState",
            "actions": ["s3:ListBucket"],
            "resources": [f"arn:aws:s3:::{be.bucket}"],
        },
    ]
    return out


def _read_only(ir: IR, label: str, role_name: str, trust: str) -> list[Block]:
    """The drift check's role: reads configuration and the state, nothing else."""
    role = iam_role(label, role_name, trust)
    role.attr("max_session_duration", 3600)
    attach = resource("aws_iam_role_policy_attachment", label)
    attach.attr("role", Ref(f"aws_iam_role.{label}.name"))
    attach.attr("policy_arn", READ_ONLY)
    denied: list[dict[str, Any]] = [
        {"sid": "NoData", "effect": "Deny", "actions": _DATA_READS, "resources": ["*"]}
    ]
    if ir.backend.lock_table:
        # the S3 backend GetItems the lock table's digest entry (<bucket>/<key>-md5) at
        # init and plan, -lock=false or not: items of every other table stay denied
        denied[0]["actions"] = [a for a in _DATA_READS if a != "dynamodb:GetItem"]
        denied.append(
            {
                "sid": "NoItems",
                "effect": "Deny",
                "actions": ["dynamodb:GetItem"],
                "not_resources": [_lock_table(ir)],
            }
        )
    if ir.delivery == "codepipeline":  # the pipelines' artifacts (the state is elsewhere)
        buckets = ["artifacts", "release_artifacts"] if ir.release_branches else ["artifacts"]
        denied.append(
            {
                "sid": "NoArtifacts",
                "effect": "Deny",
                "actions": ["s3:GetObject", "s3:GetObjectVersion"],
                "resources": [Template((Ref(f"aws_s3_bucket.{b}.arn"), "/*")) for b in buckets],
            }
        )
    statements = [*_state(ir), *denied, NEVER_APPROVE]
    return [role, attach, policy_doc(label, statements), inline_policy(label, label, label)]


def _report(ir: IR, *reviews: str) -> list[dict[str, Any]]:
    """What review-report.sh does: one audit row in the review's stream, one message."""
    out: list[dict[str, Any]] = []
    if ir.deployments_table:
        streams = [f"review/{r}" for r in reviews]
        out.append(
            {
                "sid": "RecordTheReview",  # new rows of these reviews' streams only
                "actions": ["dynamodb:PutItem"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
                "conditions": [("ForAllValues:StringEquals", "dynamodb:LeadingKeys", streams)],
            }
        )
    if ir.delivery == "codepipeline":
        out.append(
            {
                "sid": "TellTheChannel",
                "actions": ["sns:Publish"],
                "resources": [Ref("aws_sns_topic.events.arn")],
            }
        )
    out.append(
        {
            "sid": "TableAndTopicKey",
            "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
            "resources": [Ref("aws_kms_key.cicd.arn")],
        }
    )
    return out


def _scans(ir: IR) -> list[dict[str, Any]]:
    """The security review: the deployed rows, the scans of those digests."""
    sec = ir.security
    out: list[dict[str, Any]] = [
        {
            "sid": "DeployedDigests",
            "actions": ["dynamodb:Query"],
            "resources": [Ref("aws_dynamodb_table.deployments.arn")],
        },
        {
            "sid": "Rescan",
            "actions": [
                "ecr:DescribeImageScanFindings",
                "ecr:DescribeImages",
                "ecr:StartImageScan",
            ],
            "resources": _repositories(ir),
        },
    ]
    # the scan type and Inspector's findings (what the scan gate asks too)
    out += _scan_statements(ir) if sec.image_scan_fail_on else []
    if not sec.image_scan_fail_on:  # no gate: the review still asks the registry
        actions = ["ecr:GetRegistryScanningConfiguration"]
        out.append({"sid": "ScanType", "actions": actions, "resources": ["*"]})
        actions = ["inspector2:ListCoverage", "inspector2:ListFindings"]
        out.append({"sid": "EnhancedScanFindings", "actions": actions, "resources": ["*"]})
    return out


def _codebuild(ir: IR) -> list[Block]:
    p = ir.project
    report = {"OUTCOME_FILE": OUTCOME_FILE, "SUMMARY_FILE": SUMMARY_FILE}
    if ir.deployments_table:
        report["DEPLOYMENTS_TABLE"] = ir.deployments_table
    topic = {"TOPIC_ARN": Ref("aws_sns_topic.events.arn")}
    # the drift check
    name = f"{p}-drift-check"
    out = script_project(
        ir,
        "drift_check",
        name,
        f"Daily: terraform plan -detailed-exitcode of {p}'s Terraform, read-only",
        # in the build phase, so that its finally reports a failed install too
        [subshell("install-terraform.sh"), subshell("drift-check.sh")],
        {
            **drift_variables(ir),
            **report,
            "REVIEW": "drift",
            "TITLE": titles(ir)["drift"],
        },
        [
            {
                "sid": "ReadOnlyRole",
                "actions": ["sts:AssumeRole"],
                "resources": [Ref("aws_iam_role.drift_read.arn")],
            },
            *_report(ir, "drift"),
        ],
        {
            **topic,
            "READ_ROLE_ARN": Ref("aws_iam_role.drift_read.arn"),
            # the phase's tfvars during the first apply phase by phase (phases.py)
            "VAR_FILE": Ref(f"var.{DRIFT_VARIABLE}"),
        },
        checkout=True,
        finally_=[subshell("review-report.sh")],
        timeout=30,
    )
    trust = policy_doc(
        "drift_read_assume",
        [
            {
                "actions": ["sts:AssumeRole"],
                "principals": [("AWS", [Ref("aws_iam_role.drift_check.arn")])],
            }
        ],
    )
    out += [trust, *_read_only(ir, "drift_read", f"{p}-drift-read", "drift_read_assume")]
    out += schedule(
        ir,
        "drift_check",
        name,
        "Daily: the Terraform drift check"
        + ("" if drift_scheduled(ir) else " (off: the state is local, terraform.backend)"),
        DRIFT_SCHEDULE[1],
        enabled=drift_scheduled(ir),
    )
    # the pipeline configuration review (GitHub delivery: review.yml)
    name = f"{p}-configuration-review"
    out += script_project(
        ir,
        "configuration_review",
        name,
        f"Monthly: pipecompile check and lint of {p}'s default branch",
        [
            "pip install --disable-pip-version-check -q "
            f"pipecompile=={__version__} zizmor=={ZIZMOR}",
            subshell("config-review.sh"),
        ],
        {
            "PIPELINE_FILE": ir.pipeline_file,
            **report,
            "REVIEW": "configuration",
            "TITLE": titles(ir)["configuration"],
            "POST_CLEAN": "true",
        },
        _report(ir, "configuration"),
        topic,
        checkout=True,
        finally_=[subshell("review-report.sh")],
        timeout=15,
    )
    out += schedule(
        ir,
        "configuration_review",
        name,
        "Monthly: the pipeline configuration review",
        CONFIG_REVIEW_SCHEDULE[1],
    )
    if not security_review(ir):
        return out
    # the security review
    sec = ir.security
    name = f"{p}-security-review"
    out += script_project(
        ir,
        "security_review",
        name,
        f"Monthly: re-scan the images {p}'s environments run; zizmor on the workflows",
        [
            f"pip install --disable-pip-version-check -q zizmor=={ZIZMOR}",
            subshell("security-review.sh"),
        ],
        {
            **review_variables(ir),
            **report,
            "REVIEW": "security",
            "TITLE": titles(ir)["security"],
            "POST_CLEAN": "true",
        },
        [*_scans(ir), *_report(ir, "security")],
        topic,
        checkout=True,
        finally_=[subshell("review-report.sh")],
        timeout=min(480, 15 + len(images(ir).split()) * sec.image_scan_timeout_minutes),
    )
    out += schedule(ir, "security_review", name, "Monthly: the security review", REVIEW_SCHEDULE[1])
    return out


def _github(ir: IR) -> list[Block]:
    provider = provider_ref(ir)
    # compliance.yml's jobs in environment compliance, on the default branch (drift.yml
    # and security-review.yml call it on their schedules; oidc.py says what the sub holds)
    branch = (ir.default_branch,)
    trust = workflow_trust(ir, "github_compliance", provider, GH_COMPLIANCE, branch, ENVIRONMENT)
    (drift, _), (review, _) = github_roles(ir)["drift"], github_roles(ir)["review"]
    out = [trust, *_read_only(ir, "github_drift", drift, "github_compliance_assume")]
    role = iam_role("github_review", review, "github_compliance_assume")
    role.attr("max_session_duration", 3600)
    # the security review's reads, and both reviews' reports (the drift role only reads)
    scans = _scans(ir) if security_review(ir) else []
    statements = [*scans, *_report(ir, "drift", "security")]
    out += [
        role,
        policy_doc("github_review", [*statements, NEVER_APPROVE]),
        inline_policy("github_review", "github_review", "github_review"),
    ]
    if ir.deployments_table and ir.secrets.slack_webhook:
        out += _github_summary(ir, provider)
    return out


def _github_summary(ir: IR, provider: Ref) -> list[Block]:
    """daily-summary.yml's role: from its jobs in GitHub environment daily-summary on the
    default branch only, it may query the audit table (and decrypt it), nothing else."""
    trust = workflow_trust(
        ir,
        "github_daily_summary",
        provider,
        GH_SUMMARY,
        (ir.default_branch,),
        SUMMARY_ENVIRONMENT,
    )
    role = iam_role("github_daily_summary", summary_role(ir)[0], "github_daily_summary_assume")
    role.attr("max_session_duration", 3600)
    statements: list[dict[str, Any]] = [
        {
            "sid": "ReadTheAuditTable",
            "actions": ["dynamodb:Query"],
            "resources": [Ref("aws_dynamodb_table.deployments.arn")],
        },
        table_key(ir),
        NEVER_APPROVE,
    ]
    return [
        trust,
        role,
        policy_doc("github_daily_summary", statements),
        inline_policy("github_daily_summary", "github_daily_summary", "github_daily_summary"),
    ]


def reviews(ir: IR) -> list[Block]:
    return _codebuild(ir) if ir.delivery == "codepipeline" else _github(ir)


def describe(ir: IR) -> list[str]:
    """The compliance jobs' one-time setup, for ``explain``."""
    p = ir.project
    out = []
    if ir.delivery == "codepipeline":
        role = f"{p}-drift-read"
        when = (
            "it runs daily at 05:00 UTC"
            if drift_scheduled(ir)
            else "its schedule is off while terraform.backend is local, the state being on "
            "one machine: set terraform.backend.type: s3 and apply"
        )
        out.append(
            f"  drift check: CodeBuild project {p}-drift-check plans the default branch's "
            f"Terraform as role {role} (ReadOnlyAccess without data reads, and the state); "
            f"{when}; commit terraform.tfvars, so that it plans what the applies apply"
        )
        if security_review(ir):
            out.append(
                f"  security review: CodeBuild project {p}-security-review, on the first of "
                "each month, re-scans the digests the audit table says each environment runs "
                "and runs zizmor; both report to the topic and the audit table (review/*)"
            )
    else:
        drift, review = github_roles(ir)["drift"][0], github_roles(ir)["review"][0]
        out.append(
            f"  IAM roles {drift} (the drift check: read only, and the state) and {review} "
            f"(the security review, the reviews' audit rows): only {GH_COMPLIANCE}'s jobs in "
            f"GitHub environment '{ENVIRONMENT}' on {ir.default_branch} assume them"
        )
    if ir.backend.kind == "s3":
        out.append(
            f"  state bucket {ir.backend.bucket}: if it encrypts with a KMS key of its own, "
            "let the drift check's role decrypt with it"
        )
    return out
