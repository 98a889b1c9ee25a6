"""CodeBuild projects that run packaged scripts outside the pipelines: the daily summary,
the commit status, the failure alert and the compliance jobs.

Each is a project whose buildspec Terraform holds (never one from the source it checks
out), with its own log group and role (``statements`` and its logs, nothing else), and,
for the scheduled ones, the role EventBridge starts it with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...ir import IR
from ...serialize.emit import yaml_document
from ...serialize.hcl import Block, Call, Ref, Template
from ..common import script_body
from .blocks import aws_constants, inline_policy, policy_doc, resource, service_role
from .build_projects import choices
from .iam import NEVER_APPROVE


def subshell(name: str) -> str:
    """A packaged script as one buildspec command, in a subshell (its exits stay its own)."""
    return f"(\n{script_body(name)})"


def connection_statement() -> dict[str, Any]:
    """What CodeBuild needs to check out the repository through the CodeStar connection
    (both service prefixes: the connection's ARN is codestar-connections', the service
    is CodeConnections since 2024)."""
    return {
        "sid": "Source",
        "actions": [
            f"{prefix}:{action}"
            for prefix in ("codestar-connections", "codeconnections")
            for action in ("GetConnection", "GetConnectionToken", "UseConnection")
        ],
        "resources": [Ref("aws_codestarconnections_connection.github.arn")],
    }


def script_project(
    ir: IR,
    label: str,
    name: str,
    description: str,
    body: str | list[str],
    variables: dict[str, str],
    statements: list[dict[str, Any]],
    refs: Mapping[str, Ref | Call],
    *,
    checkout: bool = False,
    finally_: list[str] | None = None,
    timeout: int = 10,
) -> list[Block]:
    """A CodeBuild project whose buildspec runs packaged scripts: its log group, its role
    and the project.  ``checkout``: the repository's default branch through the CodeStar
    connection (the compliance jobs read it); otherwise no source at all."""
    out: list[Block] = []
    lg = resource("aws_cloudwatch_log_group", label)
    for check, _, why in choices(ir):
        lg.comment(f"checkov:skip={check}: {why}")
    lg.attr("name", f"/aws/codebuild/{name}")
    lg.attr("retention_in_days", ir.log_retention_days)
    lg.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    out.append(lg)
    out += service_role(label, name, "codebuild.amazonaws.com", ir.aws.account_id)
    logs = {
        "sid": "Logs",
        "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "resources": [Template((Ref(f"aws_cloudwatch_log_group.{label}.arn"), ":*"))],
    }
    granted = [logs, *statements, NEVER_APPROVE]
    if checkout:
        granted.insert(1, connection_statement())
    out.append(policy_doc(label, granted))
    out.append(inline_policy(label, label, label))
    phases: dict[str, Any] = {}
    build: dict[str, Any] = {"commands": body if isinstance(body, list) else [body]}
    if finally_:
        build["finally"] = finally_
    phases["build"] = build
    spec = {"version": 0.2, "env": {"shell": "bash", "variables": variables}, "phases": phases}
    p = resource("aws_codebuild_project", label)
    p.attr("name", name)
    p.attr("description", description)
    p.attr("service_role", Ref(f"aws_iam_role.{label}.arn"))
    p.attr("build_timeout", timeout)
    p.attr("encryption_key", Ref("aws_kms_key.cicd.arn"))
    if checkout:
        p.attr("source_version", ir.default_branch)
    p.block("artifacts").attr("type", "NO_ARTIFACTS")
    src = p.block("source")
    if checkout:
        src.attr("type", "GITHUB")
        src.attr("location", f"https://github.com/{ir.repository}.git")
        src.attr("git_clone_depth", 1)
        src.attr("buildspec", yaml_document(spec))
        auth = src.block("auth")
        auth.attr("type", "CODECONNECTIONS")
        auth.attr("resource", Ref("aws_codestarconnections_connection.github.arn"))
    else:
        src.attr("type", "NO_SOURCE")
        src.attr("buildspec", yaml_document(spec))
    env = p.block("environment")
    env.attr("compute_type", "BUILD_GENERAL1_SMALL")
    env.attr("image", aws_constants()["build_image"])
    env.attr("type", "LINUX_CONTAINER")
    env.attr("image_pull_credentials_type", "CODEBUILD")
    env.attr("privileged_mode", False)
    for var_name, ref in refs.items():
        var = env.block("environment_variable")
        var.attr("name", var_name)
        var.attr("value", ref)
    cw = p.block("logs_config").block("cloudwatch_logs")
    cw.attr("group_name", Ref(f"aws_cloudwatch_log_group.{label}.name"))
    cw.attr("status", "ENABLED")
    out.append(p)
    return out


def starter(ir: IR, label: str, name: str) -> list[Block]:
    """The role EventBridge uses to start the project ``label``."""
    return [
        *service_role(f"{label}_start", f"{name}-start", "events.amazonaws.com", ir.aws.account_id),
        policy_doc(
            f"{label}_start",
            [
                {
                    "actions": ["codebuild:StartBuild"],
                    "resources": [Ref(f"aws_codebuild_project.{label}.arn")],
                },
                NEVER_APPROVE,
            ],
        ),
        inline_policy(f"{label}_start", f"{label}_start", f"{label}_start"),
    ]


def schedule(
    ir: IR, label: str, name: str, description: str, expression: str, enabled: bool = True
) -> list[Block]:
    """An EventBridge schedule that starts the project ``label`` (and its starter role)."""
    rule = resource("aws_cloudwatch_event_rule", label)
    rule.attr("name", name)
    rule.attr("description", description)
    rule.attr("schedule_expression", expression)
    if not enabled:
        rule.attr("state", "DISABLED")
    target = resource("aws_cloudwatch_event_target", label)
    target.attr("rule", Ref(f"aws_cloudwatch_event_rule.{label}.name"))
    target.attr("target_id", "codebuild")
    target.attr("arn", Ref(f"aws_codebuild_project.{label}.arn"))
    target.attr("role_arn", Ref(f"aws_iam_role.{label}_start.arn"))
    return [*starter(ir, label, name), rule, target]
