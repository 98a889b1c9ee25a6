"""Notifications that arrive (CodePipeline delivery): chatops.tf.

* Notification rules are EventBridge rules, one per environment x event, whether the
  pipeline names ``notifications.sns``, ``notifications.slack`` or both.  Each rule
  sends the topic an AWS Chatbot custom notification whose body carries the
  environment and the status (``metadata.additionalContext``), so SNS subscriptions
  filter on them (``filter_policy_scope = "MessageBody"``) and Chatbot renders them.
* ``notifications.sns.subscriptions`` become topic subscriptions with that filter.
* With ``notifications.slack``, the AWS Chatbot Slack channel configuration for the
  topic.  Its workspace and channel IDs are Terraform inputs (``slack_workspace_id``,
  ``slack_channel_id``): the workspace is authorised once in the Chatbot console, and
  until both are set the configuration is not created (``count`` 0), so a first apply
  never fails on them.
"""

from __future__ import annotations

import json
from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Block, Call, Ref
from ..common import script_text
from ..compliance import SUMMARY_SCHEDULE as SCHEDULES
from .blocks import inline_policy, policy_doc, resource
from .iam import NEVER_APPROVE
from .monitoring import failure_rate_alarm_name
from .projects import script_project, starter

SUMMARY_SCHEDULE = SCHEDULES[1]  # 17:00 UTC, the end of a European working day

# EventBridge: what each notification event is (CodePipeline's event reference)
_EXECUTION = "CodePipeline Pipeline Execution State Change"
_ACTION = "CodePipeline Action Execution State Change"
# an execution that did not succeed: failed, or stopped by a person (Stop and wait lets
# the running deploy finish and starts nothing after it: CodePipeline user guide,
# pipelines-stop); the title says which (<state>: the event's detail.state)
_STATES = {"started": ["STARTED"], "succeeded": ["SUCCEEDED"], "failed": ["FAILED", "STOPPED"]}
_TITLES = {
    "started": "started",
    "succeeded": "succeeded",
    "failed": "<state>",
    "approval-needed": "waits for approval",
}
CHATBOT_GUARDRAIL = "arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess"


def _label(*parts: str) -> str:
    return "_".join(p.replace("-", "_") for p in parts)


def rule_name(ir: IR, env: str, event: str) -> str:
    """EventBridge rule names: at most 64 characters."""
    name = f"{ir.project}-{env}-{event}"
    if len(name) <= 64:
        return name
    import hashlib

    return f"{name[:55].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def pipelines_of(ir: IR, env: Environment) -> list[str]:
    return [
        d.pipeline_name for s in ir.services for d in s.deployments if d.environment == env.name
    ]


def event_pattern(ir: IR, env: Environment, event: str) -> dict[str, Any]:
    detail: dict[str, Any] = {"pipeline": pipelines_of(ir, env)}
    if event == "approval-needed":
        detail["state"] = ["STARTED"]
        detail["type"] = {"category": ["Approval"]}
        kind = _ACTION
    else:
        detail["state"] = _STATES[event]
        kind = _EXECUTION
    return {"source": ["aws.codepipeline"], "detail-type": [kind], "detail": detail}


def message_template(ir: IR, env: Environment, event: str) -> str:
    """An AWS Chatbot custom notification; <pipeline> and <execution> are filled in by
    EventBridge.  environment and status are what subscriptions filter on."""
    console = (
        f"https://{ir.aws.region}.console.aws.amazon.com/codesuite/codepipeline/"
        "pipelines/<pipeline>/executions/<execution>/timeline"
    )
    body = {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": f"{env.name}: <pipeline> {_TITLES[event]}",
            "description": f"Execution <execution> of <pipeline> ({env.name}): {console}",
        },
        "metadata": {
            "eventType": event,
            "threadId": "<execution>",
            "additionalContext": {
                "environment": env.name,
                "status": event,
                "pipeline": "<pipeline>",
                "execution": "<execution>",
            },
        },
    }
    return json.dumps(body, sort_keys=True)


def filter_policy(
    environments: tuple[str, ...], statuses: tuple[str, ...], alarm: str | None = None
) -> str:
    """A subscription's filter on the message body. ``alarm``: the failure-rate alarm,
    which a subscription to failures also gets; CloudWatch sends it in its own shape
    (``AlarmName``, ``NewStateValue``, ...), with no ``metadata``, so it is matched by
    its name, through ``$or`` (SNS developer guide, and-or-logic.md: an ``$or`` array
    of at least two objects).  ``summary`` among the statuses: the daily summary
    (daily-summary.sh), which names no environment (it lists every one's deploys), so
    with environments it is an alternative of its own."""
    deploys = [s for s in statuses if s != "summary"]
    alternatives: list[dict[str, Any]] = []
    if deploys or not environments:
        context: dict[str, Any] = {"status": list(statuses if not environments else deploys)}
        if environments:
            context["environment"] = list(environments)
        alternatives.append({"metadata": {"additionalContext": context}})
    if environments and "summary" in statuses:
        alternatives.append({"metadata": {"additionalContext": {"status": ["summary"]}}})
    if alarm is not None and "failed" in statuses:
        alternatives.append({"AlarmName": [alarm]})
    if len(alternatives) == 1:
        return json.dumps(alternatives[0], sort_keys=True)
    return json.dumps({"$or": alternatives}, sort_keys=True)


def describe_subscriptions(ir: IR) -> list[str]:
    """explain: which messages reach each subscription (its filter policy, in words)."""
    out = []
    for sub in ir.notifications.subscriptions:
        deploys = [s for s in sub.statuses if s != "summary"]
        where = ", ".join(sub.environments) if sub.environments else "every environment"
        what = [f"{', '.join(deploys)} in {where}"] if deploys else []
        if "summary" in sub.statuses:
            what.append("the daily summary (every environment's deploys)")
        elif ir.deployments_table and ir.notifications.sns_events:
            what.append("not the daily summary (statuses: [..., summary] adds it)")
        if "failed" in deploys:
            what.append("the failure-rate alarm")
        out.append(f"    {sub.protocol} {sub.endpoint}: {'; '.join(what)}")
    return out


def chatops(ir: IR) -> list[Block]:
    n = ir.notifications
    blocks: list[Block] = []
    for env in ir.environments:
        if not pipelines_of(ir, env):
            continue
        for event in n.sns_events:
            if event == "approval-needed" and not env.approval:
                continue
            label = _label(env.name, event)
            rule = resource("aws_cloudwatch_event_rule", label)
            rule.attr("name", rule_name(ir, env.name, event))
            rule.attr("description", f"{env.name} pipelines: {event} -> {n.sns_topic}")
            rule.attr("event_pattern", json.dumps(event_pattern(ir, env, event), sort_keys=True))
            target = resource("aws_cloudwatch_event_target", label)
            target.attr("rule", Ref(f"aws_cloudwatch_event_rule.{label}.name"))
            target.attr("target_id", "sns")
            target.attr("arn", Ref("aws_sns_topic.events.arn"))
            tr = target.block("input_transformer")
            paths = {"pipeline": "$.detail.pipeline", "execution": "$.detail.execution-id"}
            if "<state>" in _TITLES[event]:
                paths["state"] = "$.detail.state"
            tr.attr("input_paths", paths)
            tr.attr("input_template", message_template(ir, env, event))
            blocks += [rule, target]
    for i, sub in enumerate(n.subscriptions):
        s = resource("aws_sns_topic_subscription", f"subscriber_{i}")
        s.attr("topic_arn", Ref("aws_sns_topic.events.arn"))
        s.attr("protocol", sub.protocol)
        s.attr("endpoint", sub.endpoint)
        s.attr("filter_policy_scope", "MessageBody")
        alarm = failure_rate_alarm_name(ir)  # monitoring.tf's, to the same topic
        s.attr("filter_policy", filter_policy(sub.environments, sub.statuses, alarm))
        blocks.append(s)
    if n.slack_channel:
        blocks += _chatbot(ir)
    if ir.deployments_table and (n.slack_channel or n.sns_events):
        blocks += daily_summary(ir)
    blocks += commit_status(ir)
    return blocks


def script(name: str) -> str:
    """A packaged script (targets/scripts/) whole, as the buildspec runs it."""
    return script_text(name)


def summary_script() -> str:
    return script("daily-summary.sh")


def daily_summary(ir: IR) -> list[Block]:
    """A CodeBuild project (no source: the script is its buildspec) that an EventBridge
    schedule starts once a day; it reads the audit table and posts to the topic."""
    name = f"{ir.project}-daily-summary"
    out = script_project(
        ir,
        "daily_summary",
        name,
        f"Posts the day's {ir.project} deployments to the channel",
        summary_script(),
        {
            "PROJECT": ir.project,
            "DEPLOYMENTS_TABLE": ir.deployments_table or "",
            "SERVICES": " ".join(s.name for s in ir.services),
            "ENVIRONMENTS": " ".join(e.name for e in ir.environments),
        },
        [
            {
                "sid": "ReadTheAuditTable",
                "actions": ["dynamodb:Query"],
                "resources": [Ref("aws_dynamodb_table.deployments.arn")],
            },
            {
                "sid": "PostToTheTopic",
                "actions": ["sns:Publish"],
                "resources": [Ref("aws_sns_topic.events.arn")],
            },
            {
                "sid": "TopicAndTableKey",
                "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
                "resources": [Ref("aws_kms_key.cicd.arn")],
            },
        ],
        {"TOPIC_ARN": Ref("aws_sns_topic.events.arn")},
    )
    out += starter(ir, "daily_summary", name)
    rule = resource("aws_cloudwatch_event_rule", "daily_summary")
    rule.attr("name", name)
    rule.attr("description", "Once a day: the deployment summary from the audit table")
    rule.attr("schedule_expression", SUMMARY_SCHEDULE)
    target = resource("aws_cloudwatch_event_target", "daily_summary")
    target.attr("rule", Ref("aws_cloudwatch_event_rule.daily_summary.name"))
    target.attr("target_id", "codebuild")
    target.attr("arn", Ref("aws_codebuild_project.daily_summary.arn"))
    target.attr("role_arn", Ref("aws_iam_role.daily_summary_start.arn"))
    return [*out, rule, target]


def _chatbot(ir: IR) -> list[Block]:
    out: list[Block] = []
    for var, what, pattern, example in (
        (
            "slack_workspace_id",
            "Slack workspace (team) ID authorised in AWS Chatbot",
            "T",
            "T0123ABCD",
        ),
        (
            "slack_channel_id",
            f"Slack channel ID of {ir.notifications.slack_channel}",
            "[CG]",
            "C0123ABCD",
        ),
    ):
        v = Block("variable", (var,))
        v.attr("description", f"{what}; empty: no Chatbot channel configuration yet")
        v.attr("type", Ref("string"))
        v.attr("default", "")
        check = v.block("validation")
        matches = Call("regex", (f"^({pattern}[A-Z0-9]+)?$", Ref(f"var.{var}")))
        check.attr("condition", Call("can", (matches,)))
        check.attr("error_message", f"{var} is an ID such as {example}, or empty")
        out.append(v)
    trust = policy_doc(
        "chatbot_assume",
        [
            {
                "actions": ["sts:AssumeRole"],
                "principals": [("Service", ["chatbot.amazonaws.com"])],
                "conditions": [("StringEquals", "aws:SourceAccount", [ir.aws.account_id])],
            }
        ],
    )
    role = resource("aws_iam_role", "chatbot")
    role.comment("no permissions: the channel receives notifications and runs no commands")
    role.attr("name", f"{ir.project}-chatbot")
    role.attr("assume_role_policy", Ref("data.aws_iam_policy_document.chatbot_assume.json"))
    # like every CI role, explicitly denied approving (an approval is a person's)
    never = policy_doc("chatbot", [NEVER_APPROVE])
    never_policy = inline_policy("chatbot", "chatbot", "chatbot")
    channel = resource("aws_chatbot_slack_channel_configuration", "deployments")
    # 1 once both IDs are set, 0 while either is empty: a call of data, no raw expression
    channel.attr(
        "count",
        Call(
            "min",
            (
                Call("length", (Ref("var.slack_workspace_id"),)),
                Call("length", (Ref("var.slack_channel_id"),)),
                1,
            ),
        ),
    )
    channel.attr("configuration_name", f"{ir.project}-deployments")
    channel.attr("slack_team_id", Ref("var.slack_workspace_id"))
    channel.attr("slack_channel_id", Ref("var.slack_channel_id"))
    channel.attr("iam_role_arn", Ref("aws_iam_role.chatbot.arn"))
    channel.attr("guardrail_policy_arns", [CHATBOT_GUARDRAIL])
    channel.attr("sns_topic_arns", [Ref("aws_sns_topic.events.arn")])
    channel.attr("logging_level", "ERROR")
    channel.attr("user_authorization_required", True)
    return [*out, trust, role, never, never_policy, channel]


def status_token_secret(ir: IR) -> str:
    return f"{ir.project}/github-status-token"


def commit_status(ir: IR) -> list[Block]:
    """Every execution state change of the project's pipelines starts a CodeBuild
    project that sets the GitHub commit status ``codepipeline/<pipeline>``."""
    name = f"{ir.project}-commit-status"
    acct, region = ir.aws.account_id, ir.aws.region
    secret = resource("aws_secretsmanager_secret", "github_status_token")
    secret.comment("checkov:skip=CKV2_AWS_57: a GitHub token is rotated in GitHub")
    secret.attr("name", status_token_secret(ir))
    secret.attr(
        "description",
        f"GitHub token that may write commit statuses of {ir.repository} "
        "(fine-grained: Commit statuses read and write; Contents read, for the failure alert)",
    )
    secret.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    out: list[Block] = [secret]
    out += script_project(
        ir,
        "commit_status",
        name,
        f"Reports {ir.project} pipeline executions to their commits on GitHub",
        script("commit-status.sh"),
        {"REPOSITORY": ir.repository, "TOKEN_SECRET": status_token_secret(ir)},
        [
            {
                "sid": "ReadExecutions",
                "actions": ["codepipeline:GetPipelineExecution"],
                "resources": [f"arn:aws:codepipeline:{region}:{acct}:{ir.project}-*"],
            },
            {
                "sid": "ReadTheToken",
                "actions": ["secretsmanager:GetSecretValue"],
                "resources": [Ref("aws_secretsmanager_secret.github_status_token.arn")],
            },
            {
                "sid": "TokenKey",
                "actions": ["kms:Decrypt"],
                "resources": [Ref("aws_kms_key.cicd.arn")],
            },
        ],
        {},
    )
    out += starter(ir, "commit_status", name)
    rule = resource("aws_cloudwatch_event_rule", "commit_status")
    rule.attr("name", name)
    rule.attr("description", f"Execution state changes of the {ir.project} pipelines")
    rule.attr(
        "event_pattern",
        json.dumps(
            {
                "source": ["aws.codepipeline"],
                "detail-type": [_EXECUTION],
                "detail": {"pipeline": [{"prefix": f"{ir.project}-"}]},
            },
            sort_keys=True,
        ),
    )
    target = resource("aws_cloudwatch_event_target", "commit_status")
    target.attr("rule", Ref("aws_cloudwatch_event_rule.commit_status.name"))
    target.attr("target_id", "codebuild")
    target.attr("arn", Ref("aws_codebuild_project.commit_status.arn"))
    target.attr("role_arn", Ref("aws_iam_role.commit_status_start.arn"))
    tr = target.block("input_transformer")
    tr.attr(
        "input_paths",
        {
            "pipeline": "$.detail.pipeline",
            "execution": "$.detail.execution-id",
            "state": "$.detail.state",
        },
    )
    # the StartBuild request: the event's values become the script's inputs
    overrides = [
        {"name": n, "value": f"<{v}>", "type": "PLAINTEXT"}
        for n, v in (("PIPELINE", "pipeline"), ("EXECUTION_ID", "execution"), ("STATE", "state"))
    ]
    tr.attr(
        "input_template",
        json.dumps({"environmentVariablesOverride": overrides}, sort_keys=True),
    )
    return [*out, rule, target]
