"""What both orchestrators' compliance jobs share (specification 9.2; issue 29, item 4):
the scheduled drift check and the monthly security review run the same scripts with
the same inputs, as CodeBuild projects (terraform target, CodePipeline delivery) or as
scheduled workflows (github-actions target, GitHub Actions delivery)."""

from __future__ import annotations

from pathlib import PurePosixPath

from ..ir import IR

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")  # ECR's, as the plan's scan gate has them


def severities_at_or_above(level: str) -> str:
    """``"high"`` -> ``"CRITICAL HIGH"``: the gate's FAIL_SEVERITIES (frontend/plan.py)."""
    return " ".join(SEVERITIES[: SEVERITIES.index(level.upper()) + 1])


# terraform_1.11.4_linux_amd64.zip: the version the tests plan with here, and the sha256
# HashiCorp publishes for it (hashicorp/homebrew-tap Formula/terraform.rb at 1.11.4,
# commit 3470d28633ba5f771fc7f7c501a890f432ac93a8)
TERRAFORM_VERSION = "1.11.4"
TERRAFORM_SHA256 = "1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc"

# (GitHub Actions cron, EventBridge schedule expression): the same times in UTC
DRIFT_SCHEDULE = ("0 5 * * *", "cron(0 5 * * ? *)")  # every day, 05:00
# the first of the month: the configuration review at 06:00, the security review at 07:00
CONFIG_REVIEW_SCHEDULE = ("0 6 1 * *", "cron(0 6 1 * ? *)")
REVIEW_SCHEDULE = ("0 7 1 * *", "cron(0 7 1 * ? *)")

# the daily deployment summary (issue 29, item 1): 17:00 UTC, the end of a European day
SUMMARY_SCHEDULE = ("0 17 * * *", "cron(0 17 * * ? *)")
# GitHub delivery: the only environment the summary's read-only role trusts
SUMMARY_ENVIRONMENT = "daily-summary"
ENVIRONMENT = "compliance"  # GitHub delivery: the only environment the review roles trust


def repo_path(ir: IR, target: str) -> str | None:
    """A target's folder relative to the repository root (the pipeline file's folder
    joined with its output), as a job that checks the repository out sees it."""
    folder = dict(ir.outputs).get(target)
    if folder is None:
        return None
    return str(PurePosixPath(ir.pipeline_file).parent / folder)


def drift_scheduled(ir: IR) -> bool:
    """Local state is on one machine: no job can compare it, so no schedule runs then."""
    return ir.backend.kind == "s3"


def security_review(ir: IR) -> bool:
    """The review starts from what the audit table says each environment runs."""
    return ir.deployments_table is not None


def images(ir: IR) -> str:
    """``<environment>/<service>=<repository>`` for every deployment: the audit stream
    and the ECR repository that environment deploys from (the release tier's for an
    approval environment)."""
    out = []
    for svc in ir.services:
        for dep in svc.deployments:
            repo, _ = ir.image_of(svc, ir.environment(dep.environment))
            out.append(f"{dep.environment}/{svc.name}={repo}")
    return " ".join(out)


def drift_variables(ir: IR) -> dict[str, str]:
    """install-terraform.sh and drift-check.sh's inputs (both orchestrators)."""
    return {
        "TF_DIR": repo_path(ir, "terraform") or ".",
        "BACKEND": ir.backend.kind,
        "TERRAFORM_VERSION": TERRAFORM_VERSION,
        "TERRAFORM_SHA256": TERRAFORM_SHA256,
    }


def review_variables(ir: IR) -> dict[str, str]:
    """security-review.sh's inputs (both orchestrators)."""
    sec = ir.security
    out = {
        "DEPLOYMENTS_TABLE": ir.deployments_table or "",
        "IMAGES": images(ir),
        "FAIL_SEVERITIES": severities_at_or_above(sec.image_scan_fail_on or "high"),
        "SCAN_TYPE": sec.image_scanning,
        "SCAN_TIMEOUT_SECONDS": str(sec.image_scan_timeout_minutes * 60),
    }
    workflows = repo_path(ir, "github-actions")
    if workflows:
        out["WORKFLOWS_DIR"] = workflows
    return out


def titles(ir: IR) -> dict[str, str]:
    return {
        "drift": f"{ir.project}: Terraform drift check",
        "security": f"{ir.project}: monthly security review",
        "configuration": f"{ir.project}: monthly pipeline configuration review",
    }


def github_roles(ir: IR) -> dict[str, tuple[str, str]]:
    """GitHub delivery: {review: (role name, ARN)} of the roles the workflows assume."""
    out = {}
    for key, suffix in (("drift", "github-drift"), ("review", "github-review")):
        name = f"{ir.project}-{suffix}"
        out[key] = (name, f"arn:aws:iam::{ir.aws.account_id}:role/{name}")
    return out


def summary_role(ir: IR) -> tuple[str, str]:
    """GitHub delivery: (name, ARN) of the daily summary's role (Query on the audit table)."""
    name = f"{ir.project}-github-daily-summary"
    return name, f"arn:aws:iam::{ir.aws.account_id}:role/{name}"
