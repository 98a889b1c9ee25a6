"""Direct developer alerts on CodePipeline delivery (issue 29, item 1): alerts.tf.

A FAILED execution of one of the project's pipelines starts the CodeBuild project
``<project>-failure-alert`` (an EventBridge rule; its input transformer hands over the
pipeline and the execution), which runs failure-alert.sh: the execution's commit, its
author and committer on GitHub (with the commit status token), their Slack member IDs
from the Terraform variable ``slack_user_ids`` (which starts from
``notifications.slack.users``), and an AWS Chatbot custom notification to the topic that
mentions them, in the thread of the execution's failure notification.
"""

from __future__ import annotations

import json

from ...ir import IR
from ...serialize.hcl import Block, Call, Ref
from .blocks import resource
from .chatops import status_token_secret
from .projects import script_project, starter, subshell

VARIABLE = "slack_user_ids"


def wanted(ir: IR) -> bool:
    n = ir.notifications
    return ir.delivery == "codepipeline" and bool(n.slack_channel) and "failed" in n.slack_events


def failure_alert(ir: IR) -> list[Block]:
    name = f"{ir.project}-failure-alert"
    acct, region = ir.aws.account_id, ir.aws.region
    v = Block("variable", (VARIABLE,))
    v.attr(
        "description",
        "GitHub login -> Slack member ID of the people a failed pipeline run mentions "
        "(notifications.slack.users; add to it here)",
    )
    v.attr("type", Ref("map(string)"))
    v.attr("default", dict(ir.notifications.slack_users))
    check = v.block("validation")
    # ",U1,U2": every value a member ID (a list of data: no for expression)
    joined = Call(
        "join", ("", Call("formatlist", (",%s", Call("values", (Ref(f"var.{VARIABLE}"),)))))
    )
    check.attr("condition", Call("can", (Call("regex", ("^(?:,[UW][A-Z0-9]{2,20})*$", joined)),)))
    check.attr("error_message", f"{VARIABLE} maps GitHub logins to Slack member IDs (U0123ABCD)")
    out: list[Block] = [v]
    out += script_project(
        ir,
        "failure_alert",
        name,
        f"Mentions the people behind a failed {ir.project} pipeline run in the channel",
        [subshell("failure-alert.sh")],
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
                "sid": "TellTheChannel",
                "actions": ["sns:Publish"],
                "resources": [Ref("aws_sns_topic.events.arn")],
            },
            {
                "sid": "TokenAndTopicKey",
                "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
                "resources": [Ref("aws_kms_key.cicd.arn")],
            },
        ],
        {
            "TOPIC_ARN": Ref("aws_sns_topic.events.arn"),
            "SLACK_USER_IDS": Call("jsonencode", (Ref(f"var.{VARIABLE}"),)),
        },
    )
    out += starter(ir, "failure_alert", name)
    rule = resource("aws_cloudwatch_event_rule", "failure_alert")
    rule.attr("name", name)
    rule.attr("description", f"Failed executions of the {ir.project} pipelines")
    rule.attr(
        "event_pattern",
        json.dumps(
            {
                "source": ["aws.codepipeline"],
                "detail-type": ["CodePipeline Pipeline Execution State Change"],
                "detail": {"pipeline": [{"prefix": f"{ir.project}-"}], "state": ["FAILED"]},
            },
            sort_keys=True,
        ),
    )
    target = resource("aws_cloudwatch_event_target", "failure_alert")
    target.attr("rule", Ref("aws_cloudwatch_event_rule.failure_alert.name"))
    target.attr("target_id", "codebuild")
    target.attr("arn", Ref("aws_codebuild_project.failure_alert.arn"))
    target.attr("role_arn", Ref("aws_iam_role.failure_alert_start.arn"))
    tr = target.block("input_transformer")
    tr.attr("input_paths", {"pipeline": "$.detail.pipeline", "execution": "$.detail.execution-id"})
    overrides = [
        {"name": n, "value": f"<{v}>", "type": "PLAINTEXT"}
        for n, v in (("PIPELINE", "pipeline"), ("EXECUTION_ID", "execution"))
    ]
    tr.attr(
        "input_template", json.dumps({"environmentVariablesOverride": overrides}, sort_keys=True)
    )
    return [*out, rule, target]


def describe(ir: IR) -> list[str]:
    """Who a failed run alerts, for ``explain``."""
    if ir.delivery == "github-actions":
        return [
            f"  IAM role {ir.project}-github-metrics: the deliver workflows' metrics job "
            "(only metrics.yml's, on the deploy branches' pushes) puts metrics in "
            f"{ir.project}/pipelines, nothing else"
        ]
    if not wanted(ir):
        return []
    mapped = len(ir.notifications.slack_users)
    return [
        f"  Slack user mapping: a failed pipeline run mentions its commit's author in "
        f"{ir.notifications.slack_channel}; map GitHub logins to Slack member IDs in "
        f"notifications.slack.users ({mapped} mapped) or the Terraform variable "
        f"{VARIABLE} (terraform.tfvars); an unmapped login is named in plain text"
    ]
