"""Terraform for AWS CodePipeline and everything it needs, apply-ready.

One V2 pipeline per service x environment: its trigger is the environment's
branch patterns (and the service's folder in a monorepo), its stages are
Source (CodeStarSourceConnection) -> Build (CodeBuild) -> Approval (Manual,
only where the environment asks) -> Deploy (a CodeBuild action that records
the new image tag where Argo CD reads it).  Only action types AWS documents
are used; there is no "CodeBuildDeploy".

Files: versions.tf, variables.tf, outputs.tf, kms.tf, storage.tf, ecr.tf,
codebuild.tf, codepipeline.tf, iam.tf, notifications.tf, audit.tf, chatops.tf
(notification rules, subscriptions, AWS Chatbot), alerts.tf (the failure alert),
monitoring.tf (metrics, dashboard, alarm), reviews.tf (drift check, security review),
phases.tf and one <env>.tfvars per environment (the first apply phase by phase).
The modules: ``foundation`` (account-level files), ``audit`` (notifications.tf, audit.tf,
outputs.tf), ``build_projects`` (the CodeBuild projects), ``pipelines`` (the CodePipelines),
``iam_codepipeline`` (CodePipeline delivery's roles), ``iam`` (the statements
they share with ``iam_github``'s), ``blocks`` (shared HCL pieces), ``projects`` (the
script projects), ``phases`` (the rewrite that counts each environment's blocks),
``checks`` (the target's rules: check, choices); this one holds its setup list
(describe) and render.
"""

from __future__ import annotations

from ...ir import IR
from ...serialize.hcl import Block, assignments, document
from ..common import BUILD_ENVIRONMENT, BUILD_RELEASE_ENVIRONMENT, GH_BUILD, GH_DEPLOY
from .alerts import describe as describe_alerts
from .alerts import failure_alert
from .alerts import wanted as failure_alert_wanted
from .approvers import APPROVER_TAG
from .audit import audit, notifications, outputs
from .build_projects import codebuild
from .chatops import chatops, describe_subscriptions
from .checks import check as check
from .checks import choices as choices
from .compliance import cloudtrail, rotation
from .foundation import ecr, kms, storage, variables, versions
from .iam_codepipeline import iam
from .iam_github import github_roles
from .irsa import argo_rollouts, cluster_names, clusters, issuer_variable, rollouts_role_name
from .monitoring import monitoring
from .network import describe_network
from .oidc import subject_repo, subject_template_command
from .phases import describe as describe_phases
from .phases import phased, phases_tf, tfvars
from .pipelines import codepipeline
from .reviews import describe as describe_reviews
from .reviews import reviews
from .secrets import environments as secret_environments
from .secrets import external_secrets, subjects
from .telemetry import github_monitoring

name = "terraform"
delivers = "codepipeline"  # it generates the CodePipelines (delivery: codepipeline)
default_folder = "infrastructure/terraform/cicd"  # under outputs: when the pipeline names no folder
cost = 113  # ms to render per 1000 services (bench/bench.py); balances parallel rendering


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
    if ir.delivery != "github-actions":
        pass  # GitHub Actions runs CI only: no OIDC provider, no role
    elif ir.github_oidc_provider == "existing":
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
    out += describe_phases(ir, tf_folder)
    out.append(f"AWS (terraform apply in {tf_folder}):")
    if ir.delivery == "github-actions":
        # each trusts one workflow file's jobs in one GitHub environment on its branches,
        # which the sub says only once the repository's subject template is set (oidc.py)
        out.append(
            f"  first set the repository's OIDC subject template: {subject_template_command(ir)}"
            " (admin; the sub then names the run's branch and the workflow file, which "
            "every role's trust requires: without it no role can be assumed, fail closed)"
        )
        # sub_claim_prefix is what GitHub issues (use_immutable_subject has read false
        # while tokens carried the immutable form: trace of source.repository_ids)
        prefix = (
            f"gh api repos/{ir.repository}/actions/oidc/customization/sub --jq .sub_claim_prefix"
        )
        ids = (
            f"gh api repos/{ir.repository} --jq "
            "'\"repo:\\(.owner.login)@\\(.owner.id)/\\(.name)@\\(.id)\"'"
        )
        if ir.repository_ids is None:
            out.append(
                f"  and check the subject's first claim: {prefix} must print "
                f"{subject_repo(ir)} exactly (names as GitHub spells them: IAM compares "
                "case-sensitively); a repository with immutable subject claims (created, "
                "renamed or transferred on or after 2026-07-15, or opted in) prints "
                f"{subject_repo(ir).replace('/', '@<owner id>/', 1)}@<repository id>, which "
                f"no role trusts until source.repository_ids gives both IDs ({ids})"
            )
        else:
            out.append(
                f"  and check the subject's first claim: {prefix} must print "
                f"{subject_repo(ir)} exactly, the immutable form every role's trust names "
                f"(source.repository_ids; {ids} prints it); a name-only prefix: opt the "
                "repository in to immutable subject claims, or remove source.repository_ids"
            )
        out.append(
            "  and create the GitHub environments with their branch policies "
            "(pipecompile explain --environments): a missing one is created unprotected by "
            "the first workflow that names it"
        )
        dev = [b for b in ir.deploy_branches if b not in ir.release_branches]
        if dev:
            out.append(
                f"  IAM role {ir.aws.github_build_role_name}: only {GH_BUILD}'s jobs in GitHub "
                f"environment '{BUILD_ENVIRONMENT}' on {', '.join(dev)} (the dev tier's build)"
            )
        if ir.release_branches:
            out.append(
                f"  IAM role {ir.aws.github_release_role_name}: only {GH_BUILD}'s jobs in GitHub "
                f"environment '{BUILD_RELEASE_ENVIRONMENT}' on "
                f"{', '.join(ir.release_branches)} (the release build: the release key)"
            )
        for env in ir.environments:
            out.append(
                f"  IAM role {env.github_role_name}: only {GH_DEPLOY}'s jobs in GitHub "
                f"environment '{env.name}' on {', '.join(env.includes)}"
            )
    if ir.delivery == "codepipeline":
        out.append(
            f"  CodeStar connection '{ir.aws.connection_name}': confirm it once in the "
            "console (Developer Tools > Settings > Connections)"
        )
        for env in ir.environments:
            out.append(
                f"  Secrets Manager secrets {env.gitops_secret_name} (the GitOps deploy key "
                f"or token) and {env.argocd_secret_name} (JSON keys server and token: a "
                f"read-only Argo CD API token), read only by the {env.name} deploy project"
            )
            if env.deploy_network:
                out.append(describe_network(ir, env))
        if ir.security.sast_fail_on:
            out.append(
                f"  Secrets Manager secret {ir.aws.sonar_secret_name}: JSON keys host_url "
                "and token, for the SonarQube analysis in the CodeBuild build"
            )
            if ir.release_branches:
                out.append(
                    f"  Secrets Manager secret {ir.aws.release_sonar_secret_name}: the same "
                    "keys with a token of its own, read only by the release builds (feature "
                    "code runs where the other token is readable)"
                )
        for env in ir.environments:
            if env.approval:
                out.append(
                    f"  variable {env.approver_variable}: the IAM roles or users who may "
                    f"approve {env.name} (default {', '.join(env.approver_principals)}: "
                    f"create it for the release managers, or set the variable); they "
                    f"assume {env.approver_role_name} with MFA, in a session named after "
                    f"themselves (an IAM user: --role-session-name <its user name>; a role, "
                    f"such as an IAM Identity Center permission set's: the session tag "
                    f"'{APPROVER_TAG}' from their identity provider, and that session name)"
                )
    if ir.delivery == "codepipeline" and ir.secret_rotation:
        out.append(
            f"  rotation function {ir.secret_rotation[0]}: it must implement Secrets Manager's "
            "four rotation steps (createSecret, setSecret, testSecret, finishSecret) for the "
            "GitOps, Argo CD and SonarQube secrets; they rotate every "
            f"{ir.secret_rotation[1]} days"
        )
    elif ir.delivery == "codepipeline":
        out.append(
            "  secret rotation: off; to rotate the GitOps, Argo CD and SonarQube secrets, "
            "give a rotation function (terraform.secret_rotation.function_arn; README "
            "'Secret rotation'); until then rotate them by hand"
        )
    if ir.delivery == "codepipeline" and ir.deployments_table:
        projects = ", ".join(e.deploy_project for e in ir.environments)
        out.append(
            "  manual rollback: pipecompile explain --rollback SERVICE ENV prints the "
            "start-build of the environment's deploy project with overrides; it bypasses "
            "the pipeline's approval, so grant codebuild:StartBuild on "
            f"{projects} only to those who may roll back"
        )
    if ir.delivery == "codepipeline":
        reads = (
            "; Contents read, so the failure alert finds a commit's author"
            if failure_alert_wanted(ir)
            else ""
        )
        out.append(
            f"  Secrets Manager secret {ir.project}/github-status-token: a GitHub token "
            f"that may write commit statuses of {ir.repository} (fine-grained: Commit "
            f"statuses read and write{reads}), so pipeline runs show on their commits"
        )
    out += describe_alerts(ir)
    for cluster in cluster_names(ir, [env.eks_cluster for env in secret_environments(ir)]):
        out.append(
            f"  input variable {issuer_variable(cluster)}: the OIDC issuer of EKS cluster "
            f"{cluster} (no default), whose IAM OIDC provider must exist in the account "
            "(eksctl utils associate-iam-oidc-provider): the service accounts' roles trust it"
        )
    for env in secret_environments(ir):
        out.append(
            f"  IAM role {env.secrets_role_name}: the {env.name} SecretStores read only "
            f"Secrets Manager keys {env.secret_prefix}*; only "
            f"{', '.join(subjects(ir, env))} of cluster {env.eks_cluster} may assume it "
            f"(IRSA: set {issuer_variable(env.eks_cluster)})"
        )
    if argo_rollouts(ir) is not None:
        out.append(
            f"  IAM role {rollouts_role_name(ir)} (output argo_rollouts_cloudwatch_role_arn): "
            "annotate the Argo Rollouts controller's ServiceAccount with it "
            "(eks.amazonaws.com/role-arn) so that CloudWatch rollback analysis may call "
            "cloudwatch:GetMetricData and --aws-verify-target-group may describe the ALBs"
        )
    out += describe_reviews(ir)
    n = ir.notifications
    out.append(
        f"  SNS topic {n.sns_topic}: the pipeline events (each message's body carries its "
        "environment and status: a subscription's filter policy, scope MessageBody, "
        "picks them)"
    )
    if ir.delivery == "codepipeline" and ir.deployments_table and n.sns_events:
        out.append(
            "    and the daily summary (status summary, no environment): "
            + ("the Slack channel gets it, " if n.slack_channel else "")
            + "a subscription when it names no statuses or lists summary"
        )
    if ir.delivery == "codepipeline":  # chatops.tf's subscriptions
        out += describe_subscriptions(ir)
    if ir.delivery == "codepipeline":  # GitHub delivery: the environments' reviewers
        for env in ir.environments:
            if not env.approval:
                continue
            who = (
                f"{len(env.approvers)} approver(s) subscribed by e-mail: each confirms the "
                "e-mail AWS sends before it receives anything"
                if env.approvers
                else f"subscribe the approvers (environments.{env.name}.approvers)"
            )
            out.append(f"  SNS topic {env.approval_topic}: {env.name}'s approval requests; {who}")
    if n.slack_channel and ir.delivery == "codepipeline":
        out.append(
            f"  AWS Chatbot, once per account: authorise the Slack workspace (Chatbot "
            f"console > Configure new client > Slack), invite @aws to {n.slack_channel}, "
            "then set slack_workspace_id and slack_channel_id (terraform.tfvars) and apply: "
            f"the channel configuration {ir.project}-deployments subscribes to the topic"
        )
    return out


def render(ir: IR) -> dict[str, str]:
    files: dict[str, list[Block]] = {
        "versions.tf": versions(ir),
        "variables.tf": variables(ir),
        "outputs.tf": outputs(ir),
        "kms.tf": kms(ir),
        "ecr.tf": ecr(ir),
        "iam.tf": iam(ir) if ir.delivery == "codepipeline" else github_roles(ir),
        "notifications.tf": notifications(ir),
        "audit.tf": audit(ir),
    }
    if ir.cloudtrail:  # audit.cloudtrail: off by default (trails are usually account-level)
        files["cloudtrail.tf"] = cloudtrail(ir)
    stores = external_secrets(ir)
    if stores is not None:  # one role per environment for its SecretStores
        files["external_secrets.tf"] = stores
    rollouts = argo_rollouts(ir)
    if rollouts is not None:  # CloudWatch analysis: the Argo Rollouts controller's role
        files["argo_rollouts.tf"] = rollouts
    issuers = clusters(ir, [env.eks_cluster for env in secret_environments(ir)])
    if issuers is not None:  # the OIDC issuer of each cluster those roles trust
        files["clusters.tf"] = issuers
    if ir.delivery == "codepipeline":  # the artifact store and the pipelines
        files["storage.tf"] = storage(ir)
        files["codebuild.tf"] = codebuild(ir)
        files["codepipeline.tf"] = codepipeline(ir)
        if ir.secret_rotation:  # terraform.secret_rotation
            files["rotation.tf"] = rotation(ir)
        files["chatops.tf"] = chatops(ir)  # notification rules, subscriptions, Chatbot
        if failure_alert_wanted(ir):  # slack on failed: the people behind it mentioned
            files["alerts.tf"] = failure_alert(ir)
        files["monitoring.tf"] = monitoring(ir)  # metrics, dashboard, failure-rate alarm
    else:  # the deliver workflows' metrics: the same alarm and dashboard
        files["monitoring.tf"] = github_monitoring(ir)
    files["reviews.tf"] = reviews(ir)  # the drift check, the monthly security review
    # the first apply phase by phase: each environment's own blocks counted
    files["phases.tf"] = phases_tf(ir)
    out = {name: document(blocks) for name, blocks in phased(ir, files).items()}
    out.update({name: assignments(items) for name, items in tfvars(ir).items()})
    return dict(sorted(out.items()))
