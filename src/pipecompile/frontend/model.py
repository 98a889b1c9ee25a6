"""The pipeline language, version 1, as pydantic models.

These models are the single source of the published ``pipeline.schema.json``
(``pipecompile schema``).  They check each value on its own; rules that span
several fields (cross-references, canary order, name lengths) live in
:mod:`pipecompile.lower`, which turns a validated model into the IR.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
)

from ..errors import Invalid
from .model_base import (  # noqa: F401 - the first sections, re-exported
    Aws,
    Build,
    Ci,
    Compute,
    Environment,
    EnvironmentGitops,
    Exposure,
    Hotfixes,
    Model,
    Runtime,
    Source,
    Step,
    SyncWindow,
)
from .model_ops import (  # noqa: F401 - the last sections, re-exported
    Audit,
    Backend,
    Notifications,
    SecretRotation,
    Slack,
    SlackEvent,
    Sns,
    Subscription,
    Terraform,
)

# Each pattern has a human description used in error messages (see validate.py).
from .model_types import (  # noqa: F401 - the language's value types, re-exported
    ACCOUNT_RE,
    BRANCH_RE,
    DURATION_RE,
    ECR_RE,
    EKS_RE,
    EMAIL_RE,
    GIT_URL_RE,
    GITHUB_LOGIN_RE,
    LINE_RE,
    LOG_RETENTION,
    NAME_RE,
    PATH_RE,
    PATTERN_HELP,
    PRINCIPAL_RE,
    REGION_RE,
    REPO_RE,
    S3_BUCKET_RE,
    SECRET_RE,
    SLACK_RE,
    SLACK_USER_RE,
    SNS_RE,
    STATE_KEY_RE,
    TABLE_RE,
    URL_PATH_RE,
    URL_RE,
    VERSION_RE,
    Duration,
    Line,
    Name,
    RelPath,
    Severity,
    aws_regions,
    cron_problem,
    known_region,
)


class Sast(Model):
    tool: Literal["sonarqube"] = "sonarqube"
    fail_on: Severity = "high"


class Dependencies(Model):
    tool: Literal["owasp-dependency-check"] = "owasp-dependency-check"
    fail_on: Severity = "high"


class ImageScan(Model):
    tool: Literal["ecr"] = "ecr"
    fail_on: Severity = "high"
    scanning: Literal["auto", "basic", "enhanced"] = Field(
        "auto",
        description="the registry's scan type: basic (ECR) or enhanced (Amazon Inspector); "
        "auto asks the registry at run time",
    )
    timeout_minutes: Annotated[int, Field(ge=1, le=120)] = Field(
        20, description="how long the gate waits for scan results before it fails"
    )


class Dast(Model):
    tool: Literal["owasp-zap"] = "owasp-zap"
    environment: Name = Field(
        description="the environment ZAP scans after every deploy to it; promotion past it "
        "needs the image to have passed"
    )
    schedule: Line = Field(
        "weekly",
        description="a scheduled scan of production (the last environment) at its url: "
        "daily, weekly or cron; without a production url a warning, and no scan",
    )
    fail_on: Severity = Field(
        "high", description="ZAP alerts at or above this risk block promotion"
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if v in ("daily", "weekly"):
            return v
        problem = cron_problem(v)
        if problem:
            raise Invalid(
                "PC206", f"'{v}' is not 'daily', 'weekly' or a valid 5-field cron: {problem}"
            )
        return v


class Security(Model):
    sast: Sast | None = None
    dependencies: Dependencies | None = None
    image_scan: ImageScan | None = None
    dast: Dast | None = None
    sign_images: bool = False


class Backoff(Model):
    duration: Duration = "5s"
    factor: Annotated[int, Field(ge=1, le=10)] = 2
    max_duration: Duration = "3m"


class Retry(Model):
    limit: Annotated[int, Field(ge=0, le=100)] = 5
    backoff: Backoff = Backoff()


class Sync(Model):
    prune: bool = True
    self_heal: bool = True
    options: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z]+=[A-Za-z0-9_-]+$")]] = [
        "CreateNamespace=true"
    ]
    retry: Retry = Retry()


class Gitops(Model):
    repository: Annotated[str, StringConstraints(pattern=GIT_URL_RE, max_length=512)] | None = None
    revision: Line = "HEAD"
    path: RelPath = "kubernetes/apps"
    sync: Sync = Sync()


class CanaryStep(Model):
    weight: Annotated[int, Field(ge=1, le=100)]
    pause: Duration | None = None


class Strategy(Model):
    """Parameters of a canary or blue-green strategy (type implied by the built-in names)."""

    type: Literal["canary", "blue-green"] | None = None
    steps: Annotated[list[CanaryStep], Field(min_length=1)] | None = None
    auto_promote: bool | None = None
    preview_replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    scale_down_delay: Duration | None = None
    promotion_wait: Duration | None = Field(
        None,
        description="blue-green without auto_promote: how long the deploy waits for a "
        "person to promote once the preview passed its analysis; promoted in time, it "
        "waits for the post-promotion analysis and reports its outcome, else it reports "
        "waiting-for-promotion (not a failure). Default 0: it reports at once",
        examples=["30m"],
    )


class PrometheusMetrics(Model):
    """The series the Prometheus analysis reads, and their label names."""

    requests: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")] = (
        Field(
            "http_requests_total",
            description="counter of requests served (prometheus/client_golang promhttp's name)",
            examples=["http_requests_total"],
        )
    )
    latency: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")] = Field(
        "http_request_duration_seconds",
        description="histogram of request durations in seconds (its _bucket series)",
        examples=["http_request_duration_seconds"],
    )
    status_label: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")] = (
        Field(
            "code",
            description="label holding the HTTP status code on the requests counter (promhttp: "
            "code; express-prom-bundle: status_code)",
            examples=["status_code"],
        )
    )
    service_label: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")] = (
        Field(
            "service",
            description="label naming the Kubernetes Service a series was scraped through "
            "(Prometheus Operator's ServiceMonitor: service)",
            examples=["service"],
        )
    )
    namespace_label: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")] = (
        Field(
            "namespace",
            description="label naming the Kubernetes namespace (Prometheus Operator: namespace)",
            examples=["kubernetes_namespace"],
        )
    )
    path_label: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")] = Field(
        "path",
        description="label holding the request path or route on both series (e.g. "
        "handler for prometheus/client_golang promhttp's InstrumentHandler); a series "
        "without it is never excluded",
        examples=["handler"],
    )
    exclude: list[Annotated[str, StringConstraints(pattern=URL_PATH_RE)]] = Field(
        ["/healthz", "/metrics"],
        description="paths whose requests are not traffic (the chart's startup and "
        "readiness probes, the ALB health check, the scrape): a version answering only "
        "these is inconclusive, and they cannot dilute its users' errors; [] counts "
        "every request",
        examples=[["/healthz", "/metrics", "/ready"]],
    )


class Rollback(Model):
    health_checks: bool = Field(
        True, description="probes gate the rollout; one that never becomes ready is aborted"
    )
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="5xx share of the new version's requests that aborts the rollout"
    )
    max_p90_latency: Duration | None = Field(
        None, description="90th percentile latency of the new version that aborts the rollout"
    )
    metrics_provider: Literal["prometheus", "cloudwatch"] = Field(
        "prometheus",
        description="where the rollout analysis reads its metrics: prometheus (the default; "
        "http_requests_total and http_request_duration_seconds_bucket by service) or "
        "cloudwatch (the ALB's own metrics of the canary's target group, namespace "
        "AWS/ApplicationELB: RequestCount, HTTPCode_Target_5XX_Count, TargetResponseTime; "
        "canary strategy only, the Argo Rollouts controller run with "
        "--aws-verify-target-group)",
    )
    prometheus_url: Annotated[
        str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.:/_-]{1,200}$")
    ] = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="the Prometheus the analysis queries (http_requests_total and "
        "http_request_duration_seconds_bucket, labelled by service)",
    )
    prometheus_metrics: PrometheusMetrics = Field(
        PrometheusMetrics(),
        description="the series and label names the Prometheus analysis queries",
        examples=[{"status_label": "status_code"}],
    )
    service_monitor: bool = Field(
        True,
        description="with prometheus: each chart has a ServiceMonitor (Prometheus Operator) "
        "scraping /metrics through its Services; false when Prometheus finds the pods "
        "otherwise (the series must still carry the service and namespace labels)",
        examples=[False],
    )
    window: Duration = Field(
        "5m",
        description="how far back each measurement looks (PromQL range, CloudWatch "
        "interval); one measurement a minute. At least 1m, and 5m for CloudWatch",
        examples=["5m"],
    )
    no_traffic: Literal["inconclusive", "pass"] = Field(
        "inconclusive",
        description="a measurement of a version that served no request in the window: "
        "inconclusive (Argo Rollouts pauses the rollout for a person; never an abort) or "
        "pass (an idle environment promotes)",
        examples=["pass"],
    )
    measurements: Annotated[int, Field(ge=1, le=60)] = Field(
        5,
        description="how many measurements (one a minute) blue-green analysis takes before "
        "and after promotion",
        examples=[5],
    )
    smoke_path: Annotated[str, StringConstraints(pattern=URL_PATH_RE)] | None = Field(
        None,
        description="blue-green with Prometheus: a path the analysis requests once a "
        "minute through the preview Service before promotion and the active one after "
        "it (metric smoke-requests: two answers in a row that are not 2xx abort); the "
        "requests are traffic the error-rate and latency measurements judge, so an "
        "idle preview is measured. A path users request, not one of "
        "prometheus_metrics.exclude",
        examples=["/"],
    )


def _replicas_kind(v: Any) -> str:
    return "map" if isinstance(v, dict) else "count"


Replicas = Annotated[
    Annotated[Annotated[int, Field(ge=0, le=1000)], Tag("count")]
    | Annotated[dict[Name, Annotated[int, Field(ge=0, le=1000)]], Tag("map")],
    Discriminator(_replicas_kind),
]


class Service(Model):
    image: (
        Annotated[str, StringConstraints(pattern=ECR_RE, min_length=2, max_length=256)] | None
    ) = None
    path: RelPath = "."
    dockerfile: RelPath = "Dockerfile"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    replicas: Replicas = 1
    secrets: list[Annotated[str, StringConstraints(pattern=SECRET_RE)]] = []
    strategy: Name | None = None
    runtime: Runtime | None = Field(
        None,
        description="this service's language and version, same shape as ci.runtime "
        "(default: ci.runtime)",
        examples=[{"go": "1.23"}],
    )
    steps: list[Step] | None = Field(
        None,
        description="this service's CI steps, same shape as ci.steps (default: ci.steps when "
        "it uses the pipeline's runtime, else the default steps of its own runtime)",
    )
    local_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None,
        description="the port this service listens on on a developer's machine: Tilt forwards "
        "it to the container port, a Telepresence intercept sends the cluster's traffic to it "
        "(default: port)",
        examples=[3000],
    )


class Outputs(Model):
    """Which targets to render and into which folder (relative to the pipeline file)."""

    github_actions: RelPath | None = Field(None, alias="github-actions")
    codebuild: RelPath | None = None
    terraform: RelPath | None = None
    argocd: RelPath | None = None
    helm: RelPath | None = None
    local: RelPath | Literal[False] | None = Field(
        None,
        description="folder of the local development files (Tiltfile, local values, "
        "Telepresence and kubeconfig scripts); on in 'dev' whenever the helm output is on, "
        "because they deploy its chart; false turns them off",
        examples=["dev", False],
    )

    @field_validator("local", mode="before")
    @classmethod
    def _folder_or_false(cls, v: Any) -> Any:
        if v is None or v is False or isinstance(v, str):
            return v
        got = "true" if v is True else f"a {type(v).__name__}"
        raise Invalid(
            "PC106", f"expected a folder, or false to turn local development off; got {got}"
        )

    plugins: dict[Name, RelPath] | None = Field(
        None,
        description="Targets installed by other packages (the pipecompile.targets entry "
        "point group), by name, and the folder each renders into. Never on by default.",
        examples=[{"example": "deploy/example"}],
    )


def _default_environments() -> dict[str, Environment]:
    return {
        "development": Environment(branches=["feature/*"]),
        "testing": Environment(branches=["develop"]),
        "staging": Environment(branches=["release/*"], approval=True),
        "production": Environment(branches=["main"], approval=True),
    }


class Pipeline(Model):
    """A pipecompile pipeline file (language version 1)."""

    model_config = ConfigDict(title="pipecompile pipeline, language version 1")
    version: Literal[1]
    project: Name
    delivery: Literal["codepipeline", "github-actions"] = Field(
        "codepipeline",
        description="the one orchestrator that builds, scans, signs and deploys; the other "
        "runs CI only (codepipeline: GitHub Actions validates; github-actions: no CodePipeline)",
        examples=["codepipeline", "github-actions"],
    )
    source: Source
    aws: Aws
    environments: Annotated[dict[Name, Environment], Field(min_length=1)] = Field(
        default_factory=_default_environments
    )
    hotfixes: Hotfixes | Literal[False] = Field(
        Hotfixes(),
        description="where hotfix branches are verified before their merge deploys production; "
        "false: no environment deploys them",
        examples=[{"environment": "staging"}, False],
    )
    ci: Ci = Ci()
    build: Build = Build()
    security: Security = Security()
    gitops: Gitops = Gitops()
    strategies: dict[Name, Strategy] = {}
    rollback: Rollback | None = None
    services: Annotated[dict[Name, Service], Field(min_length=1)]
    notifications: Notifications = Notifications()
    audit: Audit = Audit()
    terraform: Terraform = Terraform()
    outputs: Outputs | None = None
