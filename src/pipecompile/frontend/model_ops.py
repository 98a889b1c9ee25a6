"""The pipeline language, version 1, as pydantic models: the sections after the
services (notifications, audit, terraform); :mod:`.model` holds the rest (outputs among
them: the targets' names are the language there) and re-exports these.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from .model_base import Model
from .model_types import (
    GITHUB_LOGIN_RE,
    LOG_RETENTION,
    REGION_RE,
    S3_BUCKET_RE,
    SLACK_RE,
    SLACK_USER_RE,
    SNS_RE,
    STATE_KEY_RE,
    TABLE_RE,
    Line,
    Name,
    known_region,
)

SlackEvent = Literal["started", "succeeded", "failed", "approval-needed"]


class Slack(Model):
    channel: Annotated[str, StringConstraints(pattern=SLACK_RE)]
    on: Annotated[list[SlackEvent], Field(min_length=1)] = ["failed"]
    users: dict[
        Annotated[str, StringConstraints(pattern=GITHUB_LOGIN_RE)],
        Annotated[str, StringConstraints(pattern=SLACK_USER_RE)],
    ] = Field(
        {},
        description="GitHub login -> Slack member ID: a failed run mentions the people "
        "who caused it (the pusher and the commit's author) in the channel, so Slack "
        "alerts them; an unmapped login is named in plain text. On CodePipeline delivery "
        "the Terraform variable slack_user_ids starts from it and may add to it",
        examples=[{"octocat": "U0123ABCD"}],
    )


class Subscription(Model):
    """A subscriber to the topic that receives only the environments and statuses named."""

    protocol: Literal["email", "https", "sqs", "lambda"]
    endpoint: Line
    environments: list[Name] | None = None
    statuses: list[SlackEvent | Literal["summary"]] | None = Field(
        None,
        description="the statuses it receives (default: every one the topic is sent); "
        "summary: the daily deployment summary (CodePipeline delivery with "
        "audit.deployments_table), which covers every environment, so it reaches a "
        "subscription that names it whatever its environments",
    )


class Sns(Model):
    topic: Annotated[str, StringConstraints(pattern=SNS_RE)]
    subscriptions: list[Subscription] = []


class Notifications(Model):
    slack: Slack | None = None
    sns: Sns | None = None


class Audit(Model):
    deployments_table: Annotated[str, StringConstraints(pattern=TABLE_RE)] | None = None
    log_retention_days: Literal[LOG_RETENTION] = 365  # type: ignore[valid-type]
    cloudtrail: bool = Field(
        False,
        description="a CloudTrail trail for the CI/CD resources, its logs kept 90 days "
        "(off by default: trails are usually account-level)",
    )


class Backend(Model):
    """Where Terraform keeps its state."""

    @field_validator("region")
    @classmethod
    def _known_region(cls, v: str | None) -> str | None:
        return None if v is None else known_region(v)

    type: Literal["local", "s3"] = "local"
    bucket: Annotated[str, StringConstraints(pattern=S3_BUCKET_RE)] | None = None
    key: Annotated[str, StringConstraints(pattern=STATE_KEY_RE)] | None = None
    region: Annotated[str, StringConstraints(pattern=REGION_RE)] | None = None
    lock: Literal["lockfile", "dynamodb"] = "lockfile"
    dynamodb_table: Annotated[str, StringConstraints(pattern=TABLE_RE)] | None = None


class SecretRotation(Model):
    """Secrets Manager rotation of the secrets the Terraform creates."""

    function_arn: Annotated[
        str,
        StringConstraints(
            pattern=r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}$"
        ),
    ] = Field(description="the Lambda rotation function (it implements the four rotation steps)")
    days: Annotated[int, Field(ge=1, le=1000)] = Field(30, description="days between rotations")


class Terraform(Model):
    backend: Backend = Backend()
    secret_rotation: SecretRotation | None = Field(
        None,
        description="rotate the GitOps, Argo CD and SonarQube secrets with this function "
        "(CodePipeline delivery); without it they are rotated where they are issued",
    )
