"""The intermediate representation every target renders from.

Frozen, fully resolved data: defaults applied, per-service x per-environment
settings expanded, cross-references checked and derived names (image URIs,
IAM roles, project names, file names) computed exactly once, here.  Targets
read only this; they never see the YAML and never recompute a default.

Order is canonical: environments in promotion order and services in the order
the pipeline file lists them (both orders carry meaning); everything else is
in a fixed order chosen by the lowering.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from .errors import Diagnostic
from .ir_plan import (
    BuildPlan,
    BuildTier,
    DeliveryPlan,
    DeployStage,
    PlanInput,
    PlanStep,
    PlanStepKind,
    Scope,
    SharedStep,
)

# the deploy plan's types are the IR's too (targets import them from here)
__all__ = [
    "BuildPlan",
    "BuildTier",
    "DeliveryPlan",
    "DeployStage",
    "PlanInput",
    "PlanStep",
    "PlanStepKind",
]
__all__ += ["Scope", "SharedStep"]

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
class Build:
    vcpu: int
    memory_gb: int
    timeout_minutes: int
    cache: Literal["s3", "local", "none"]
    keep_images: int  # ECR lifecycle: newest images kept per repository
    artifact_retention_days: int


@dataclass(frozen=True, slots=True)
class Dast:
    environment: str
    url: str
    cron: str
    fail_on: str  # severity: ZAP alerts at or above it fail the scan (targets/common.py)
    project: str  # CodeBuild project that scans after a CodePipeline deploy
    log_group: str
    # GitHub delivery: the scan runs in a job of its own, in this GitHub environment (no
    # deploy secrets there), as this role (records a passed digest in the promotions table)
    github_environment: str
    github_role_name: str
    github_role_arn: str
    # the scheduled scan (1.2): the production environment, last in promotion order, at
    # its url; None when it has no url (a located warning says so)
    scheduled_environment: str | None = None
    scheduled_url: str | None = None


@dataclass(frozen=True, slots=True)
class Security:
    sast_fail_on: str | None
    dependencies_fail_on: str | None
    image_scan_fail_on: str | None
    image_scanning: Literal["auto", "basic", "enhanced"]
    image_scan_timeout_minutes: int
    dast: Dast | None
    sign_images: bool


@dataclass(frozen=True, slots=True)
class Gitops:
    repository: str | None
    auth: Literal["ssh", "https"]
    credential: str  # secret the deploy scripts read: GITOPS_DEPLOY_KEY (ssh) or GITOPS_TOKEN
    revision: str
    path: str
    prune: bool
    self_heal: bool
    options: tuple[str, ...]
    retry_limit: int
    backoff_duration: str
    backoff_factor: int
    backoff_max_duration: str


@dataclass(frozen=True, slots=True)
class Rollback:
    health_checks: bool
    max_error_rate: float | None
    max_p90_latency: str | None
    max_p90_latency_ms: int | None
    prometheus_url: str
    provider: Literal["prometheus", "cloudwatch"]
    service_monitor: bool  # a ServiceMonitor per chart (Prometheus Operator)
    window: str  # each measurement's look-back
    no_traffic: Literal["inconclusive", "pass"]
    measurements: int  # blue-green pre- and post-promotion analysis count
    requests_metric: str
    latency_metric: str
    status_label: str
    service_label: str
    namespace_label: str
    path_label: str  # the request path's label: requests to exclude_paths are not traffic
    exclude_paths: tuple[str, ...]
    smoke_path: str | None = None  # blue-green: requested once a minute during analysis


@dataclass(frozen=True, slots=True)
class Subscription:
    protocol: str
    endpoint: str
    environments: tuple[str, ...]  # every environment when none were named
    # every status sent to the topic when none were named (the events, and "summary"
    # when the daily summary publishes there)
    statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Notifications:
    slack_channel: str | None
    slack_events: tuple[str, ...]
    sns_topic: str  # always present: approvals publish to it
    # pipeline events sent to the topic (with notifications.sns or .slack: AWS Chatbot
    # reads the topic), each message carrying its environment and status
    sns_events: tuple[str, ...]
    subscriptions: tuple[Subscription, ...] = ()
    # notifications.slack.users: (GitHub login, Slack member ID), in the file's order
    slack_users: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AwsNames:
    """Names of the AWS resources, shared by the Terraform and workflow targets."""

    region: str
    account_id: str
    ecr_registry: str
    github_build_role_name: str  # the GitHub build job's role (branches, no environment)
    github_build_role_arn: str
    pipeline_role_name: str
    build_role_name: str  # CodeBuild role of the build and DAST projects
    artifact_bucket: str
    kms_alias: str
    signing_key_alias: str  # builds of any deploy branch sign with it
    release_key_alias: str  # only builds of approval environments' branches sign with it
    github_release_role_name: str  # the build role of approval environments' branches
    github_release_role_arn: str
    release_build_role_name: str  # CodeBuild: the release build projects' role
    release_artifact_bucket: str  # the approval environments' pipelines: release tier only
    dast_role_name: str  # CodeBuild: the DAST project's own role (no signing, no push)
    # CodeBuild: the sign projects of each tier (dev, release) and their own roles, the
    # only CodePipeline principals that hold kms:Sign; no branch code runs in them
    sign_project: str
    release_sign_project: str
    sign_role_name: str
    release_sign_role_name: str
    promotions_table: str  # DynamoDB: the digests that passed DAST; only DAST roles write it
    connection_name: str
    sns_topic_arn: str
    sonar_secret_name: str  # SonarQube host and token for the CodeBuild build
    release_sonar_secret_name: str  # the release tier's: a token feature builds never hold
    nvd_secret_name: str  # the NVD API key (JSON key api_key) for the dependency check


@dataclass(frozen=True, slots=True)
class SecretStore:
    """The External Secrets store a service's secrets come through."""

    kind: str  # ClusterSecretStore (shared) or SecretStore (one per service, generated)
    name: str  # for a SecretStore: a suffix, the store is <service>-<name>

    def of(self, service: str) -> str:
        """A SecretStore's name for ``service``: also the ServiceAccount it authenticates
        as, the one the environment's secrets role trusts (helm and terraform agree)."""
        return f"{service}-{self.name}"


@dataclass(frozen=True, slots=True)
class Secrets:
    """Repository secrets the GitHub workflows read (derived, never a fixed list)."""

    sonar_token: str | None
    sonar_host_url: str | None
    slack_webhook: str | None
    gitops_credential: str | None


@dataclass(frozen=True, slots=True)
class ActionPin:
    action: str  # what goes before '@' in uses:
    sha: str  # full 40-hex commit
    version: str  # the release tag the commit belongs to (the '# vX.Y.Z' comment)
    source: str  # "pipecompile.lock" or "default"


@dataclass(frozen=True, slots=True)
class Pins:
    """Every pinned version, from pipecompile.lock where it sets one, else the defaults."""

    actions: tuple[ActionPin, ...]
    terraform_aws_provider: str
    zap_image: str
    cosign_version: str
    cosign_sha256: str  # of cosign-linux-amd64 at cosign_version (CodeBuild checks it)
    sonar_scanner_image: str
    dependency_check_image: str
    syft_image: str  # the SBOM generator (SPDX JSON) of every built digest
    sources: tuple[tuple[str, str], ...]  # (pin, "pipecompile.lock" | "default")

    def action(self, name: str) -> ActionPin:
        for pin in self.actions:
            if pin.action == name:
                return pin
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Backend:
    """Terraform state: ``local``, or S3 with a lock file or a DynamoDB lock table."""

    kind: Literal["local", "s3"]
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    lock_table: str | None = None  # None with S3: native locking (use_lockfile)


# The facts targets publish for each other (Target.publishes), which lowering copies
# into the IR without knowing which target published them:
CHART_SOURCE = "chart_source"  # the one generated chart's folder, relative to the root
SERVICE_VALUES = "service_values"  # each service's values folder, "{service}" in it


# The names lowering derives for each service x environment: fixed rules, written once
# here (the deploy plan hands them to targets that compute a name instead of passing it).
def app_name(service: str, environment: str) -> str:
    """The Argo CD Application of a service in an environment."""
    return f"{service}-{environment}"


def gitops_dir(gitops_path: str, service: str, environment: str) -> str:
    """A deployment's folder in the GitOps repository (its chart, values, image file)."""
    return posixpath.join(gitops_path, service, environment)


def service_url(url: str, hosts: tuple[str, ...]) -> str:
    """Where DAST reaches one service in the environment whose address is ``url``: the
    environment's URL where its host is one the service's Ingress serves (the first
    service also answers at the domain), else the same URL on the service's own host
    (``<service>.<domain>``): scanning the environment's URL would scan another service."""
    parts = urlsplit(url)
    if not hosts or parts.hostname in hosts:
        return url
    netloc = hosts[-1] + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def values_source(service_values: str, service: str) -> str:
    """A service's folder of values files, from the published SERVICE_VALUES pattern."""
    return service_values.replace("{service}", service)


def image_uri(registry: str, repository: str) -> str:
    """An ECR repository's image URI, without a tag."""
    return f"{registry}/{repository}"


BUILDSPEC_FOLDER = "buildspec_folder"  # where CodeBuild projects read their buildspecs
BUILDSPECS_GENERATED = "buildspecs_generated"  # present when the buildspecs are generated


EMPTY_PLAN = DeliveryPlan()


@dataclass(frozen=True, slots=True)
class IR:
    pipeline_file: str  # relative to the repository root (session.repo_name), e.g. "pipeline.yaml"
    project: str
    delivery: Literal["codepipeline", "github-actions"]  # the one deliverer
    repository: str  # owner/name
    default_branch: str
    environments: tuple[Environment, ...]
    chart_source: str | None  # the one generated chart, relative to the root; None: helm is off
    deploy_branches: tuple[str, ...]  # every environment's include patterns, once each, in order
    release_branches: tuple[str, ...]  # the include patterns of approval environments
    # (the environment that verifies hotfix branches, their patterns); (None, ()) when none
    hotfix: tuple[str | None, tuple[str, ...]]
    services: tuple[Service, ...]
    runtime: Runtime
    steps: tuple[Step, ...]
    build: Build
    security: Security
    gitops: Gitops
    rollback: Rollback | None
    notifications: Notifications
    deployments_table: str | None
    log_retention_days: int
    outputs: tuple[tuple[str, str], ...]  # (target, folder) in registry order
    buildspec_folder: str  # where the CodeBuild projects find their buildspecs
    buildspecs_generated: bool  # False: the buildspecs there are kept by hand
    aws: AwsNames
    github_oidc_provider: Literal["create", "existing"]
    texts: tuple[tuple[tuple[str | int, ...], str], ...]  # every user string, by field path
    backend: Backend
    secrets: Secrets
    secret_store: SecretStore
    pins: Pins
    warnings: tuple[Diagnostic, ...]  # located, severity "warning"
    cloudtrail: bool = False  # audit.cloudtrail: a trail with 90-day retention
    secret_rotation: tuple[str, int] | None = None  # (Lambda ARN, days): terraform.secret_rotation
    plan: DeliveryPlan = EMPTY_PLAN  # frontend/plan.py, from everything above
    service_values: str | None = None  # the SERVICE_VALUES pattern ("{service}" in it)
    # every path the pipeline names (service folders, Dockerfiles, the GitOps folder) and
    # where it leads when a symbolic link is on the way ('' when none is); not rendered:
    # the manifest records them, so that check's fast path sees a link put there since
    sources: tuple[tuple[str, str], ...] = ()

    def output(self, target: str) -> str:
        for name, folder in self.outputs:
            if name == target:
                return folder
        raise KeyError(target)

    def environment(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)

    def gitops_sharers(self, env: Environment) -> tuple[list[str], list[str]]:
        """The other environments whose deployers write ``env``'s GitOps repository:
        (those without approval, those with). A deploy key or token cannot be limited to a
        folder: each of them can rewrite ``env``'s folder, chart included."""
        others = [
            e
            for e in self.environments
            if e is not env and e.gitops_repository == env.gitops_repository
        ]
        return [e.name for e in others if not e.approval], [e.name for e in others if e.approval]

    def scheduled_scans(self) -> list[tuple[str, str]]:
        """(service, URL) of the scheduled DAST scan: each service deployed to its
        environment, at its own address under that environment's url (service_url)."""
        dast = self.security.dast
        if dast is None or not dast.scheduled_environment or not dast.scheduled_url:
            return []
        return [
            (svc.name, service_url(dast.scheduled_url, d.hosts))
            for svc in self.services
            for d in svc.deployments
            if d.environment == dast.scheduled_environment
        ]

    def image_of(self, svc: Service, env: Environment) -> tuple[str, str]:
        """(ECR repository, image URI) ``env`` deploys from: an approval environment only
        the release repository, which only the release tier writes."""
        if env.approval:
            return svc.release_image, svc.release_image_uri
        return svc.image, svc.image_uri
