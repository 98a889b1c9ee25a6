"""The pipeline language, version 1, as pydantic models: the base model and the
sections up to build (source, aws, environments, hotfixes, ci, build); :mod:`.model`
holds the rest and re-exports these.

These models are the single source of the published ``pipeline.schema.json``
(``pipecompile schema``).  They check each value on its own; rules that span
several fields (cross-references, canary order, name lengths) live in
:mod:`pipecompile.lower`, which turns a validated model into the IR.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from ..errors import Invalid

# Each pattern has a human description used in error messages (see validate.py).
from .model_types import (  # noqa: F401 - the language's value types, re-exported
    ACCOUNT_RE,
    BRANCH_RE,
    DURATION_RE,
    ECR_RE,
    EKS_RE,
    EMAIL_RE,
    GIT_URL_RE,
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
    SECURITY_GROUP_ID_RE,
    SLACK_RE,
    SNS_RE,
    STATE_KEY_RE,
    SUBNET_ID_RE,
    TABLE_RE,
    URL_RE,
    VERSION_RE,
    VPC_ID_RE,
    Duration,
    Line,
    Name,
    RelPath,
    Severity,
    aws_regions,
    cron_problem,
    known_region,
)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)


class RepositoryIds(Model):
    """The repository's immutable numeric IDs, for the OIDC subject of a repository that
    uses immutable subject claims."""

    owner: Annotated[int, Field(ge=1, le=2**53)] = Field(
        description="the owner's ID: gh api repos/<owner>/<name> --jq .owner.id",
        examples=[123456],
    )
    repository: Annotated[int, Field(ge=1, le=2**53)] = Field(
        description="the repository's ID: gh api repos/<owner>/<name> --jq .id",
        examples=[456789],
    )


class Source(Model):
    """Where the application code lives."""

    provider: Literal["github"] = "github"
    repository: Annotated[str, StringConstraints(pattern=REPO_RE)] = Field(
        description="GitHub repository as owner/name"
    )
    default_branch: Line = "main"
    repository_ids: RepositoryIds | None = Field(
        default=None,
        description=(
            "with GitHub delivery: the IDs GitHub puts in the OIDC subject of a repository "
            "that uses immutable subject claims (created, renamed or transferred on or "
            "after 2026-07-15, or opted in: gh api repos/<owner>/<name>/actions/oidc/"
            "customization/sub --jq .sub_claim_prefix prints repo:<owner>@<id>/<name>@<id>); "
            "every role's trust then names that form, and only that"
        ),
        examples=[{"owner": 123456, "repository": 456789}],
    )

    @field_validator("repository")
    @classmethod
    def _repo(cls, v: str) -> str:
        owner, repo = v.split("/")
        if len(owner) > 39:
            raise Invalid("PC107", f"'{v}': a GitHub owner has at most 39 characters")
        if repo in (".", ".."):
            raise Invalid("PC107", f"'{v}': '{repo}' is not a repository name")
        return v


class Aws(Model):
    """The AWS account and region the pipelines run in."""

    region: Annotated[str, StringConstraints(pattern=REGION_RE)]

    @field_validator("region")
    @classmethod
    def _known_region(cls, v: str) -> str:
        return known_region(v)

    account_id: Annotated[str, StringConstraints(pattern=ACCOUNT_RE)] = Field(
        description="12-digit account id, quoted so leading zeros survive"
    )
    github_oidc_provider: Literal["create", "existing"] = Field(
        "create",
        description="create the account's GitHub OIDC identity provider, or use the one "
        "that exists already (an account holds one per URL)",
    )


class SyncWindow(Model):
    """An Argo CD 'allow' sync window: a cron start and a duration."""

    schedule: Line = Field(description="5-field cron, e.g. '0 9 * * 1-5'", examples=["0 9 * * 1-5"])
    duration: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}[mh]$")] = Field(
        description="how long the window stays open, e.g. '8h'", examples=["8h"]
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        problem = cron_problem(v)
        if problem:
            raise Invalid("PC206", f"'{v}' is not a valid 5-field cron: {problem}")
        return v


CERT_EXAMPLE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
ACM_CERT_RE = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]{1,64}$"
HOST_RE = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
SECRET_PREFIX_RE = r"^[A-Za-z0-9/_+=.@-]{1,200}/$"


class Exposure(Model):
    """How an environment's services are reached: one shared ALB per environment."""

    scheme: Literal["internal", "internet-facing"] | None = Field(
        None,
        description="the ALB's scheme: internal (reachable only inside the VPC) or "
        "internet-facing (default: internet-facing for environments with approval, "
        "internal for the others, which run unreviewed builds)",
        examples=["internal"],
    )
    certificate_arn: Annotated[str, StringConstraints(pattern=ACM_CERT_RE)] | None = Field(
        None,
        description="ACM certificate of the HTTPS listener (443); plain HTTP (80) then "
        "redirects to HTTPS. Without it the ALB listens on HTTP only",
        examples=[CERT_EXAMPLE],
    )
    domain: Annotated[str, StringConstraints(pattern=HOST_RE, max_length=200)] | None = Field(
        None,
        description="each service answers at <service>.<domain>, and the first service "
        "also at the domain itself (default: the host of the environment's url; without "
        "either, every host is accepted)",
        examples=["staging.shop.example.com"],
    )


class EnvironmentGitops(Model):
    """This environment's own GitOps repository: one only its deployer can write."""

    repository: Annotated[str, StringConstraints(pattern=GIT_URL_RE, max_length=512)] = Field(
        description="a GitOps repository only this environment's deploy credential writes "
        "(a deploy key cannot be limited to a folder); same scheme as gitops.repository",
        examples=["git@github.com:example/shop-gitops-production.git"],
    )
    revision: Line | None = Field(
        None,
        description="the branch or tag Argo CD reads there; gitops.revision when unset",
        examples=["main"],
    )


class DeployNetwork(Model):
    """The VPC an environment's CodeBuild deploy project runs in (CodePipeline delivery):
    where a private Argo CD API is reachable."""

    vpc_id: Annotated[str, StringConstraints(pattern=VPC_ID_RE)] = Field(
        description="the VPC of the deploy project (CodeBuild vpc_config.vpc_id)",
        examples=["vpc-0a1b2c3d4e5f60718"],
    )
    subnets: Annotated[
        list[Annotated[str, StringConstraints(pattern=SUBNET_ID_RE)]],
        Field(min_length=1, max_length=16),
    ] = Field(
        description="private subnets of that VPC, with a route to the Argo CD API and (through "
        "a NAT gateway or VPC endpoints) to AWS, ECR and the GitOps host",
        examples=[["subnet-0a1b2c3d4e5f60718", "subnet-0b2c3d4e5f6071829"]],
    )
    security_groups: Annotated[
        list[Annotated[str, StringConstraints(pattern=SECURITY_GROUP_ID_RE)]],
        Field(min_length=1, max_length=5),
    ] = Field(
        description="security groups of the deploy project's network interfaces (at most 5)",
        examples=[["sg-0a1b2c3d4e5f60718"]],
    )


class Environment(Model):
    """One deployment environment; the order of environments is the promotion order."""

    exposure: Exposure = Field(
        Exposure(),
        description="how the environment's services are reached (ALB scheme, TLS, hosts)",
        examples=[
            {
                "scheme": "internet-facing",
                "certificate_arn": CERT_EXAMPLE,
            }
        ],
    )
    secret_prefix: Annotated[str, StringConstraints(pattern=SECRET_PREFIX_RE)] | None = Field(
        None,
        description="prefix of this environment's Secrets Manager keys: a service secret "
        "'<project>/<rest>' (or '<rest>') is read from '<secret_prefix><rest>', and the "
        "environment's store may read only keys under it (default: "
        "'<project>/<environment>/services/')",
        examples=["ecommerce/production/services/"],
    )
    secret_store: Literal["namespace", "cluster"] = Field(
        "namespace",
        description="namespace: each service's SecretStore in the environment's namespace "
        "assumes the environment's own IAM role, which reads only keys under "
        "secret_prefix; cluster: the shared ClusterSecretStore 'aws-secrets-manager'",
        examples=["namespace"],
    )

    branches: Annotated[
        list[Annotated[str, StringConstraints(pattern=BRANCH_RE)]], Field(min_length=1)
    ]
    approval: bool = False
    namespace: Name | None = None
    cluster: Annotated[str, StringConstraints(pattern=URL_RE)] = "https://kubernetes.default.svc"
    url: Annotated[str, StringConstraints(pattern=URL_RE)] | None = None
    strategy: Name = "rolling"
    sync: Literal["automated", "manual"] = Field(
        "automated",
        description="Argo CD syncs this environment's Applications on its own (automated, "
        "within sync_window when set) or only when someone presses Sync (manual)",
    )
    sync_window: SyncWindow | None = Field(
        None, description="automated syncs happen only inside this window (Argo CD sync window)"
    )
    approvers: list[Annotated[str, StringConstraints(pattern=EMAIL_RE)]] = Field(
        [],
        description="approval: e-mail addresses subscribed to this environment's approval "
        "topic (each confirms once); only its approver role may approve",
        examples=[["release-managers@example.com"]],
    )
    approver_principals: list[
        Annotated[str, StringConstraints(pattern=PRINCIPAL_RE, max_length=600)]
    ] = Field(
        [],
        description="approval: the IAM roles or users (ARN patterns) that may assume this "
        "environment's approver role, with MFA: the default of the Terraform variable "
        "approvers_<env> (default: the role <project>-<env>-approvers, which you create)",
        examples=[["arn:aws:iam::123456789012:role/release-managers"]],
    )
    gitops: EnvironmentGitops | None = Field(
        None,
        description="this environment's own GitOps repository instead of gitops.repository "
        "(per tier: give approval environments one that feature builds cannot reach)",
        examples=[{"repository": "git@github.com:example/shop-gitops-production.git"}],
    )
    deploy_network: DeployNetwork | None = Field(
        None,
        description="CodePipeline delivery: the VPC, subnets and security groups the "
        "environment's deploy project runs in, so that it reaches an Argo CD API only the "
        "VPC can (default: CodeBuild's own network, which reaches only public endpoints)",
        examples=[
            {
                "vpc_id": "vpc-0a1b2c3d4e5f60718",
                "subnets": ["subnet-0a1b2c3d4e5f60718"],
                "security_groups": ["sg-0a1b2c3d4e5f60718"],
            }
        ],
    )
    eks_cluster: Annotated[str, StringConstraints(pattern=EKS_RE)] | None = Field(
        None,
        description="the EKS cluster of this environment, for the local target's kubeconfig "
        "(aws eks update-kubeconfig; context <project>-<env>); default: <project> when cluster "
        "is the in-cluster default (every such environment shares Argo CD's cluster), else "
        "<project>-<env>",
        examples=["ecommerce", "ecommerce-prod"],
    )


class Hotfixes(Model):
    """GitFlow hotfixes: verified before production the way a release is."""

    branches: Annotated[
        list[Annotated[str, StringConstraints(pattern=BRANCH_RE)]], Field(min_length=1)
    ] = Field(["hotfix/*"], description="the hotfix branch patterns", examples=[["hotfix/*"]])
    environment: Name | None = Field(
        None,
        description="the environment that deploys and verifies hotfix branches (release tier, "
        "its approval and DAST); default: the last approval environment before production",
        examples=["staging"],
    )


class Runtime(Model):
    """Exactly one language and its version."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    node: Annotated[str, StringConstraints(pattern=VERSION_RE)] | None = None
    python: Annotated[str, StringConstraints(pattern=VERSION_RE)] | None = None
    java: Annotated[str, StringConstraints(pattern=VERSION_RE)] | None = None
    go: Annotated[str, StringConstraints(pattern=VERSION_RE)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Runtime:
        given = [k for k in ("node", "python", "java", "go") if getattr(self, k) is not None]
        if len(given) != 1:
            raise Invalid(
                "PC107",
                'give exactly one runtime, e.g. {node: "20"}'
                + (f" (got {', '.join(given)})" if given else ""),
            )
        return self


class Step(Model):
    name: Line
    run: Annotated[str, StringConstraints(min_length=1, max_length=65536)]


class Ci(Model):
    runtime: Runtime = Runtime(node="20")
    steps: Annotated[list[Step], Field(min_length=1)] | None = None


class Compute(Model):
    vcpu: Annotated[int, Field(ge=1, le=72)] = 2
    memory_gb: Annotated[int, Field(ge=1, le=144)] = 4


class Build(Model):
    compute: Compute | None = None
    timeout_minutes: Annotated[int, Field(ge=5, le=2160)] = 60
    cache: Literal["s3", "local", "none"] = "none"
    keep_images: Annotated[int, Field(ge=1, le=10000)] = Field(
        200,
        description="ECR lifecycle policy: each repository keeps its newest N images "
        "(signatures included); older ones and untagged ones are expired",
    )
    artifact_retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        90, description="days the pipelines' build artifacts stay in the artifact bucket"
    )
