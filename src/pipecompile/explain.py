"""Plain-text explanations from the IR: what an event does, and what must exist outside."""

from __future__ import annotations

import re

from .graph import _strategy, rollback_triggers
from .ir import IR, Environment
from .targets.common import branch_regexes


def matches(env: Environment, branch: str) -> bool:
    """GitHub filter semantics, the same translation the delivery workflows run."""
    inc, exc = branch_regexes(env)
    return bool(re.fullmatch(inc, branch)) and not (exc and re.fullmatch(exc, branch))


def _gates(ir: IR, env: Environment) -> list[str]:
    sec = ir.security
    gates = []
    if sec.sast_fail_on:
        gates.append(f"SonarQube issues at or above {sec.sast_fail_on} fail validation")
    if sec.dependencies_fail_on:
        gates.append(f"dependencies with {sec.dependencies_fail_on} or worse CVEs fail validation")
    if sec.image_scan_fail_on:
        gates.append(f"ECR scan findings at or above {sec.image_scan_fail_on} stop the build")
    if sec.sign_images:
        gates.append("the image signature is verified before deploying")
    on = dict(ir.outputs)
    if env.approval:
        where = []
        if "github-actions" in on:
            where.append(f"GitHub environment '{env.name}' protection rules")
        if "terraform" in on:
            topic = ir.notifications.sns_topic
            where.append(f"a Manual approval stage in CodePipeline (SNS topic {topic})")
        gates.append("manual approval: " + (", and ".join(where) or "required"))
    return gates


def _rollback(ir: IR) -> str:
    triggers = rollback_triggers(ir)
    if not triggers:
        return "no automated rollback triggers are configured"
    return (
        "Argo Rollouts aborts and rolls back on "
        + ", ".join(triggers)
        + " (analysis thresholds in the Helm values)"
    )


def explain_event(ir: IR, event: str, ref: str) -> list[str]:
    branch = ref.removeprefix("refs/heads/")
    out: list[str] = []
    if event == "schedule":
        dast = ir.security.dast
        if dast is None:
            return ["no scheduled work: security.dast is not configured"]
        return [
            f"dast.yml runs OWASP ZAP against {dast.url} ({dast.environment}) on cron '{dast.cron}'"
        ]
    on = dict(ir.outputs)
    envs = [e for e in ir.environments if matches(e, branch)]
    out.append(f"{event} {'to' if event == 'push' else 'into'} branch '{branch}':")
    for svc in ir.services if "github-actions" in on else ():
        where = "" if svc.path == "." else f" when files under {svc.path}/ change"
        if event == "pull_request" and not envs:
            continue
        out.append(f"  {svc.ci_workflow} validates {svc.name}{where}")
    if event == "pull_request":
        if not envs:
            out.append(
                "  nothing runs: pull requests are validated only when they target "
                "an environment's branch"
            )
        out.append("  pull requests never deploy")
        return out
    if not envs:
        out.append("  no environment deploys from this branch")
        return out
    for env in envs:
        out.append(f"  environment {env.name} (namespace {env.namespace} on {env.cluster}):")
        for svc in ir.services:
            dep = next(d for d in svc.deployments if d.environment == env.name)
            parts = [
                *(
                    [f"{svc.deliver_workflow} job deploy-{env.name}"]
                    if "github-actions" in on
                    else []
                ),
                *([f"CodePipeline {dep.pipeline_name}"] if "terraform" in on else []),
                *([f"Argo CD application {dep.app_name}"] if "argocd" in on else []),
                f"{_strategy(dep.strategy)}, {dep.replicas} replica(s)",
            ]
            out.append(f"    {svc.name}: " + "; ".join(parts))
        for gate in _gates(ir, env):
            out.append(f"    gate: {gate}")
        out.append(f"    rollback: {_rollback(ir)}")
    return out


def before_first_apply(ir: IR, tf_folder: str) -> list[str]:
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


def checklist(ir: IR) -> list[str]:
    """What must exist outside the repository, derived from the IR and its outputs."""
    on = dict(ir.outputs)
    out: list[str] = []
    if "github-actions" in on:
        out += _github_checklist(ir)
    if "terraform" in on:
        out += _aws_checklist(ir, on["terraform"])
    if ir.gitops.repository and "argocd" in on:
        out.append(
            f"Argo CD: repository credentials for {ir.gitops.repository}; apply "
            f"{on['argocd']}/ to the argocd namespace"
        )
    for svc in ir.services if "helm" in on else ():
        if svc.secrets:
            out.append(
                f"Secrets Manager secrets read by {svc.name}: "
                + ", ".join(svc.secrets)
                + " (and a ClusterSecretStore 'aws-secrets-manager')"
            )
    return out or ["nothing: the enabled outputs need nothing outside the repository"]


def _github_checklist(ir: IR) -> list[str]:
    out = ["GitHub repository secrets:"]
    s = ir.secrets
    for name, why in (
        (s.sonar_token, "SonarQube token (security.sast)"),
        (s.sonar_host_url, "SonarQube server URL (security.sast)"),
        (s.slack_webhook, f"Slack incoming webhook for {ir.notifications.slack_channel}"),
        (s.gitops_credential, f"write access to {ir.gitops.repository}"),
    ):
        if name:
            out.append(f"  {name}: {why}")
    approvals = [e.name for e in ir.environments if e.approval]
    if approvals:
        out.append("GitHub environments with required reviewers: " + ", ".join(approvals))
    return out


def _aws_checklist(ir: IR, tf_folder: str) -> list[str]:
    out = before_first_apply(ir, tf_folder)
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
