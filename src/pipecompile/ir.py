"""The intermediate representation every target renders from.

Frozen, fully resolved data: defaults applied, per-service x per-environment
settings expanded, cross-references checked and derived names (image URIs,
IAM roles, project names, file names) computed exactly once, here.  Targets
read only this; they never see the YAML and never recompute a default.

Order is canonical: environments in promotion order and services in the order
the pipeline file lists them (both orders carry meaning); everything else is
in a fixed order chosen by the lowering.

This module holds the IR itself, its settings (build, security, GitOps, rollback,
notifications, AWS names, pins, ...) and the naming rules; the environments, services
and deployments are in :mod:`pipecompile.ir_services`, the deploy plan's types in
:mod:`pipecompile.ir_plan` (both re-exported here).
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
from .ir_services import (
    CanaryStep,
    Deployment,
    DeployNetwork,
    Environment,
    Exposure,
    Language,
    Runtime,
    SecretStore,
    Service,
    Step,
    Strategy,
    StrategyKind,
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
# so are its environments, services and deployments
__all__ += [
    "CanaryStep",
    "DeployNetwork",
    "Deployment",
    "Environment",
    "Exposure",
    "Language",
    "Runtime",
    "SecretStore",
    "Service",
    "Step",
    "Strategy",
    "StrategyKind",
]


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
    # source.repository_ids: (owner id, repository id), the OIDC subject's immutable form
    repository_ids: tuple[int, int] | None
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
