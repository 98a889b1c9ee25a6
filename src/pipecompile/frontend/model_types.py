"""The language's value types: patterns (each with the words errors use for it), names,
durations, the AWS regions and log retention periods, and the cron check."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Literal

from pydantic import StringConstraints

from ..errors import Invalid

NAME_RE = r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$"
REPO_RE = r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}/[A-Za-z0-9._-]{1,100}$"
REGION_RE = r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"
ACCOUNT_RE = r"^[0-9]{12}$"
ECR_RE = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
SECRET_RE = r"^[A-Za-z0-9/_+=.@-]{1,512}$"
DURATION_RE = r"^[1-9][0-9]{0,5}(?:ms|s|m|h)$|^0(?:ms|s|m|h)?$"
VERSION_RE = r"^[0-9]+(?:\.[0-9]+){0,2}(?:\.x)?$"
URL_RE = r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[^\s]*)?$"
GIT_URL_RE = r"^(?:https://|ssh://|git@)[^\s]+$"
SNS_RE = r"^[A-Za-z0-9_-]{1,256}$"
TABLE_RE = r"^[A-Za-z0-9_.-]{3,255}$"
S3_BUCKET_RE = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
STATE_KEY_RE = r"^[A-Za-z0-9!_.*'()/-]{1,1024}$"
SLACK_RE = r"^#?[^\s#]{1,80}$"
EMAIL_RE = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$"
# a GitHub login (letters, digits, single '-'; at most 39) and a Slack member ID
GITHUB_LOGIN_RE = r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}$"
SLACK_USER_RE = r"^[UW][A-Z0-9]{2,20}$"
# Free text that ends up on one line in every format: no control characters.
LINE_RE = r"^[^\x00-\x1f\x7f]+$"
# A branch name or glob: what git allows in a ref name that GitHub's and
# CodePipeline's filters read the same way (no whitespace, no backslash).
BRANCH_RE = r"^[^\s\\\x00-\x1f\x7f]{1,255}$"
PATH_RE = r"^[^\x00-\x1f\x7f]+$"
# an EKS cluster name (CreateCluster: 1-100 characters, starting with a letter or digit)
EKS_RE = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"
# an IAM role or user ARN, '*' and '?' allowed (ArnLike on aws:PrincipalArn): an IAM
# Identity Center permission set's role is
# role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_<set>_*
PRINCIPAL_RE = (
    r"^arn:aws:iam::[0-9]{12}:(?:role|user)/[A-Za-z0-9+=,.@_-][A-Za-z0-9+=,.@_/*?-]{0,511}$"
)

# VPC resource ids as EC2 writes them: a prefix, then 8 (older resources) or 17 hex digits
VPC_ID_RE = r"^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
SUBNET_ID_RE = r"^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
SECURITY_GROUP_ID_RE = r"^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$"

# a request path: what PromQL's exclusion and the smoke request's URL take as they are
URL_PATH_RE = r"^/[A-Za-z0-9._~/-]{0,199}$"

PATTERN_HELP: dict[str, str] = {
    URL_PATH_RE: "a request path such as '/' or '/healthz': '/', then letters, digits "
    "and . _ ~ / - (at most 200 characters)",
    NAME_RE: "a valid name: a lowercase letter, then lowercase letters, digits and '-', "
    "not ending in '-', at most 40 characters (a DNS-1035 label)",
    REPO_RE: "a GitHub repository 'owner/name' (owner: letters, digits and single '-', "
    "at most 39; name: letters, digits, '.', '_' and '-')",
    REGION_RE: "an AWS region name such as 'us-east-1' or 'eu-west-3'",
    ACCOUNT_RE: "a 12-digit AWS account id",
    ECR_RE: "a valid ECR repository name: lowercase letters and digits separated by "
    "'.', '_', '-' or '/', 2-256 characters",
    SECRET_RE: "a valid Secrets Manager name: letters, digits and /_+=.@- only",
    DURATION_RE: "a duration such as '500ms', '30s', '10m' or '1h'",
    VERSION_RE: 'a version such as "20", "3.12" or "1.23"',
    URL_RE: "an http(s) URL",
    GIT_URL_RE: "a Git URL (https://..., ssh://... or git@host:owner/repo.git)",
    SNS_RE: "a valid SNS topic name: letters, digits, '_' and '-'",
    TABLE_RE: "a valid DynamoDB table name: 3-255 letters, digits, '_', '-' and '.'",
    EMAIL_RE: "an e-mail address such as 'release-managers@example.com'",
    SLACK_RE: "a Slack channel such as '#deployments' (no spaces)",
    GITHUB_LOGIN_RE: "a GitHub login (letters, digits and single '-', at most 39)",
    SLACK_USER_RE: "a Slack member ID such as 'U0123ABCD' (profile > More > Copy member ID)",
    S3_BUCKET_RE: "a valid S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'",
    STATE_KEY_RE: "an S3 object key such as 'cicd/terraform.tfstate' (letters, digits, "
    "'/', '.', '_', '-')",
    LINE_RE: "a single line of text without control characters",
    EKS_RE: "an EKS cluster name: 1-100 letters, digits, '-' and '_', starting with a "
    "letter or digit",
    PRINCIPAL_RE: "an IAM role or user ARN such as 'arn:aws:iam::123456789012:role/release-"
    "managers' ('*' and '?' match as in ArnLike)",
    VPC_ID_RE: "a VPC id such as 'vpc-0a1b2c3d4e5f60718' ('vpc-', then 8 or 17 lowercase "
    "hex digits)",
    SUBNET_ID_RE: "a subnet id such as 'subnet-0a1b2c3d4e5f60718' ('subnet-', then 8 or 17 "
    "lowercase hex digits)",
    SECURITY_GROUP_ID_RE: "a security group id such as 'sg-0a1b2c3d4e5f60718' ('sg-', then 8 "
    "or 17 lowercase hex digits)",
    BRANCH_RE: "a branch name or pattern such as 'main', 'release/*' or '!feature/wip' "
    "(no spaces or backslashes)",
}

Name = Annotated[str, StringConstraints(pattern=NAME_RE)]
Duration = Annotated[str, StringConstraints(pattern=DURATION_RE)]
Severity = Literal["critical", "high", "medium", "low"]
Line = Annotated[str, StringConstraints(pattern=LINE_RE, max_length=255)]
RelPath = Annotated[str, StringConstraints(pattern=PATH_RE, max_length=255)]

LOG_RETENTION = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@cache
def aws_regions() -> tuple[str, ...]:
    """The AWS regions pipecompile knows (data/aws-regions.json, from botocore's table)."""
    import json
    from importlib import resources

    text = (resources.files("pipecompile") / "data" / "aws-regions.json").read_text("utf-8")
    return tuple(json.loads(text)["regions"])


def known_region(name: str) -> str:
    """``name`` when it is a real AWS region; else why not, with the closest one."""
    regions = aws_regions()
    if name not in regions:
        from ..errors import did_you_mean

        hint = did_you_mean(name, regions)
        raise Invalid(
            "PC107",
            f"'{name}' is not an AWS region{hint}"
            + ("" if hint else " (pipecompile knows the regions of botocore 1.35.99)"),
        )
    return name


_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_CRON_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_CRON_ATOM = re.compile(r"^(\*|[0-9]{1,2}(?:-[0-9]{1,2})?)(?:/([0-9]{1,2}))?$")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a 5-field numeric cron expression, or None when it is."""
    fields = expr.split()
    if len(fields) != 5 or expr != " ".join(fields):
        return f"expected 5 fields separated by single spaces, got {len(fields)}"
    for value, (lo, hi), label in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        for part in value.split(","):
            m = _CRON_ATOM.match(part)
            if not m:
                return f"{label} field '{value}' is not a number, range, list or */step"
            if m.group(2) is not None and int(m.group(2)) == 0:
                return f"{label} field '{value}' has a step of 0"
            if m.group(1) != "*":
                bounds = [int(x) for x in m.group(1).split("-")]
                if any(b < lo or b > hi for b in bounds) or bounds != sorted(bounds):
                    return f"{label} field '{value}' is outside {lo}-{hi}"
    return None
