"""The IR's environments, services and their deployments (one service in one
environment), with the strategies, runtimes and stores they name: part of the IR
(:mod:`pipecompile.ir` re-exports them, and holds the naming rules that compute their
names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StrategyKind = Literal["rolling", "canary", "blue-green"]
Language = Literal["node", "python", "java", "go"]


@dataclass(frozen=True, slots=True)
class CanaryStep:
    weight: int
    pause: str | None  # duration as written ("10m"), None for an indefinite... no pause


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str  # as referenced in the pipeline (built-in or custom)
    kind: StrategyKind
    steps: tuple[CanaryStep, ...] = ()
    auto_promote: bool = False
    preview_replicas: int = 1
    scale_down_delay_seconds: int = 30
    promotion_wait_seconds: int = 0  # manual blue-green: how long the deploy waits for it


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    index: int  # promotion order, 0-based
    branches: tuple[str, ...]  # GitHub-style branch globs, as written ('!' negates)
    includes: tuple[str, ...]  # the patterns that deploy
    excludes: tuple[str, ...]  # the '!' patterns, without the '!'
    approval: bool
    namespace: str
    cluster: str
    url: str | None
    deploy_project: str  # CodeBuild project that records the image tag
    deploy_log_group: str
    manual_start_branch: str  # BranchName of the CodePipeline source action
    github_role_name: str  # the GitHub deploy role: only this GitHub environment assumes it
    github_role_arn: str
    codebuild_role_name: str  # the CodeBuild role of this environment's deploy project
    gitops_secret_name: str  # Secrets Manager: this environment's GitOps credential
    argocd_secret_name: str  # Secrets Manager: this environment's Argo CD API token
    argocd_project: str  # its own Argo CD AppProject: only its namespace is a destination
    sync: Literal["automated", "manual"]  # Argo CD sync policy of its Applications
    sync_window: tuple[str, str] | None  # (cron schedule, duration): when automated syncs run
    dast: bool  # security.dast scans this environment after every deploy to it
    after_dast: bool  # later in the promotion order: deploys only images that passed DAST
    exposure: Exposure
    secret_prefix: str  # this environment's Secrets Manager keys start with it
    secret_store: SecretStore
    secrets_role_name: str  # IAM role its SecretStores assume (namespace stores)
    secrets_role_arn: str

    approver_role_name: str  # approval: the only role that may approve this environment
    approval_topic: str  # approval: the SNS topic its approvers are subscribed to
    approvers: tuple[str, ...]  # e-mail addresses subscribed to approval_topic
    approver_principals: tuple[str, ...]  # IAM ARN patterns that may assume the approver role
    approver_variable: str  # the Terraform variable that lists them
    gitops_repository: str | None  # environments.X.gitops.repository, else gitops.repository
    gitops_revision: str
    eks_cluster: str  # the EKS cluster behind ``cluster`` (the local target's kubeconfig)
    kube_context: str  # its kubeconfig context: <project>-<env>
    # the cosign keys whose signatures it admits (deploy check and admission policy):
    # an approval environment only the release tier's, the others either tier's
    accepted_keys: tuple[str, ...] = ()
    # CodePipeline: the VPC its deploy project runs in (a private Argo CD API); None: none
    deploy_network: DeployNetwork | None = None


@dataclass(frozen=True, slots=True)
class DeployNetwork:
    """environments.<env>.deploy_network: CodeBuild's vpc_config of the deploy project."""

    vpc_id: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exposure:
    """The environment's shared ALB (AWS Load Balancer Controller IngressGroup)."""

    scheme: Literal["internal", "internet-facing"]
    certificate_arn: str | None  # HTTPS on 443 and HTTP 80 redirecting to it
    domain: str | None  # services answer at <service>.<domain>; the first also at <domain>
    group: str  # alb.ingress.kubernetes.io/group.name: one ALB per environment


@dataclass(frozen=True, slots=True)
class Deployment:
    """One service in one environment."""

    service: str
    environment: str
    replicas: int
    strategy: Strategy
    namespace: str
    cluster: str
    app_name: str  # Argo CD Application name
    pipeline_name: str  # AWS CodePipeline of this service in this environment
    notification_rule_name: str  # at most 64 characters
    values_file: str  # relative to the helm output folder
    image_tag_file: str  # written by the deploy pipelines, never by pipecompile
    wait_minutes: int  # how long the deployer waits for the rollout to be healthy
    gitops_dir: str  # the chart, values and image file of this deployment in the GitOps repo
    hosts: tuple[str, ...]  # the Ingress rule's hosts (() = any host)
    preview_host: str | None  # blue-green: the preview Service's host
    secret_keys: tuple[tuple[str, str], ...]  # (secret as written, this env's key)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    image: str  # ECR repository name
    image_uri: str  # registry/repository, without tag
    path: str  # normalised, "." for the repository root
    dockerfile: str  # relative to the repository root
    port: int
    secrets: tuple[str, ...]
    deployments: tuple[Deployment, ...]  # in promotion order
    build_project: str
    release_build_project: str  # the same build, for approval environments: release tier
    release_image: str  # ECR repository only the release tier writes (approval environments)
    release_image_uri: str
    build_log_group: str
    release_build_log_group: str  # the release build's own: no dev-tier role writes it
    scan_report_group: str  # CodeBuild report group of the ECR scan report
    trigger_includes: tuple[str, ...]  # path globs that start it (() = whole repository)
    trigger_excludes: tuple[str, ...]  # other services' folders inside those (path isolation)
    chart_path: str  # folder of the service's deployments in the GitOps repository
    values_source: str | None  # the folder of this service's values-<env>.yaml files
    runtime: Runtime  # services.X.runtime, else ci.runtime
    steps: tuple[Step, ...]  # services.X.steps, else as the language's table says
    local_port: int  # where it listens on a developer's machine (Tilt, Telepresence)


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    run: str


@dataclass(frozen=True, slots=True)
class Runtime:
    language: Language
    version: str


@dataclass(frozen=True, slots=True)
class SecretStore:
    """The External Secrets store a service's secrets come through."""

    kind: str  # ClusterSecretStore (shared) or SecretStore (one per service, generated)
    name: str  # for a SecretStore: a suffix, the store is <service>-<name>

    def of(self, service: str) -> str:
        """A SecretStore's name for ``service``: also the ServiceAccount it authenticates
        as, the one the environment's secrets role trusts (helm and terraform agree)."""
        return f"{service}-{self.name}"
