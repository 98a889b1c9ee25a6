"""Pipeline monitoring (CodePipeline delivery): monitoring.tf.

Every pipeline, stage and action state change of the project's pipelines goes through
one EventBridge rule into the log group ``/aws/events/<project>-pipelines``.  Metric
filters turn it into CloudWatch metrics in the namespace ``<project>/pipelines``
(Succeeded, Failed and Started executions per Pipeline, Failed stages per Pipeline);
durations per pipeline and per stage are computed by CloudWatch Logs Insights from the
same events (STARTED to SUCCEEDED or FAILED of one execution) in the dashboard.  An
alarm on the failure rate (failed / finished executions over a day) notifies the topic.
"""

from __future__ import annotations

import json
from typing import Any

from ...ir import IR
from ...serialize.hcl import Block, Ref, Template
from .blocks import policy_doc, resource
from .build_projects import choices

FAILURE_RATE_PERIOD = 86400  # one day: a rate over a handful of runs needs a long window


def log_group_name(ir: IR) -> str:
    return f"/aws/events/{ir.project}-pipelines"


def namespace(ir: IR) -> str:
    return f"{ir.project}/pipelines"


def _filters(ir: IR) -> list[tuple[str, str, str, dict[str, str]]]:
    """(label, metric, pattern, dimensions): project totals (the alarm's) and the same
    counts per pipeline (the dashboard's)."""
    execution = '$.detail-type = "CodePipeline Pipeline Execution State Change"'
    stage = '$.detail-type = "CodePipeline Stage Execution State Change"'
    out: list[tuple[str, str, str, dict[str, str]]] = []
    for state in ("STARTED", "SUCCEEDED", "FAILED"):
        pattern = f'{{ ({execution}) && ($.detail.state = "{state}") }}'
        label = f"executions_{state.lower()}"
        out.append((label, state.capitalize(), pattern, {}))
        out.append((f"{label}_by_pipeline", state.capitalize(), pattern, PER_PIPELINE))
    pattern = f'{{ ({stage}) && ($.detail.state = "FAILED") }}'
    out.append(("stages_failed", "StageFailed", pattern, PER_PIPELINE))
    return out


# a percentage: the alarm threshold is then a whole number (the HCL writer has no floats).
# Each count FILLed with 0: metric math on two series has a datapoint only where both
# have one, and the log metric filters put nothing on a day without a match, so a day
# of failures only (no Succeeded datapoint) would give no rate and never alarm
_S, _F = "FILL(succeeded, 0)", "FILL(failed, 0)"
RATE = f"IF({_S} + {_F} > 0, 100 * {_F} / ({_S} + {_F}), 0)"
PER_PIPELINE = {"Pipeline": "$.detail.pipeline"}


def dashboard_body(ir: IR) -> str:
    """Executions and the failure rate from the metrics; durations from the events' log
    (CodePipeline) or from the Duration and StageDuration metrics the GitHub Actions
    delivery puts (workflow-metrics.sh)."""
    ns, region, group = namespace(ir), ir.aws.region, log_group_name(ir)
    day = FAILURE_RATE_PERIOD
    per_pipeline = [
        {
            "expression": f"SEARCH('{{{ns},Pipeline}} MetricName=\"{m}\"', 'Sum', {day})",
            "id": m.lower(),
            "label": f"{m} per pipeline",
        }
        for m in ("Succeeded", "Failed")
    ]
    widgets: list[dict[str, Any]] = [
        {
            "type": "metric",
            "x": 0,
            "y": 0,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Executions per day, per pipeline",
                "region": region,
                "view": "timeSeries",
                "period": day,
                "metrics": [[e] for e in per_pipeline],
            },
        },
        {
            "type": "metric",
            "x": 12,
            "y": 0,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Failure rate (failed / finished executions per day)",
                "region": region,
                "view": "timeSeries",
                "period": day,
                "stat": "Sum",
                "metrics": [
                    [ns, "Succeeded", {"id": "succeeded", "visible": False}],
                    [ns, "Failed", {"id": "failed", "visible": False}],
                    [{"expression": RATE, "id": "rate", "label": "failure rate (percent)"}],
                ],
            },
        },
    ]
    if ir.delivery != "codepipeline":
        for y, (title, metric, dims) in enumerate(
            (
                ("Execution duration per pipeline (s)", "Duration", "Pipeline"),
                ("Stage duration per pipeline and stage (s)", "StageDuration", "Pipeline,Stage"),
            ),
            start=1,
        ):
            search = f"SEARCH('{{{ns},{dims}}} MetricName=\"{metric}\"', 'Average', {day})"
            widgets.append(
                {
                    "type": "metric",
                    "x": 0,
                    "y": 6 * y,
                    "width": 24,
                    "height": 6,
                    "properties": {
                        "title": title,
                        "region": region,
                        "view": "timeSeries",
                        "period": day,
                        "metrics": [[{"expression": search, "id": metric.lower()}]],
                    },
                }
            )
        return json.dumps({"widgets": widgets}, sort_keys=True)
    for y, (title, kind, by) in enumerate(
        (
            ("Execution duration per pipeline (s)", "Pipeline", "detail.pipeline"),
            ("Stage duration per pipeline and stage (s)", "Stage", "detail.pipeline, detail.stage"),
        ),
        start=1,
    ):
        query = (
            f"SOURCE '{group}' | filter `detail-type` = 'CodePipeline {kind} Execution State "
            "Change' | stats (max(@timestamp) - min(@timestamp)) / 1000 as seconds by "
            f"{by}, `detail.execution-id` | stats avg(seconds) as avg_s, max(seconds) as "
            f"max_s by {by}"
        )
        widgets.append(
            {
                "type": "log",
                "x": 0,
                "y": 6 * y,
                "width": 24,
                "height": 6,
                "properties": {"title": title, "region": region, "query": query, "view": "table"},
            }
        )
    return json.dumps({"widgets": widgets}, sort_keys=True)


def monitoring(ir: IR) -> list[Block]:
    group = log_group_name(ir)
    blocks: list[Block] = []
    lg = resource("aws_cloudwatch_log_group", "pipeline_events")
    for check, _, why in choices(ir):
        lg.comment(f"checkov:skip={check}: {why}")
    lg.attr("name", group)
    lg.attr("retention_in_days", ir.log_retention_days)
    lg.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    blocks.append(lg)
    rule = resource("aws_cloudwatch_event_rule", "pipeline_events")
    rule.attr("name", f"{ir.project}-pipeline-metrics")
    rule.attr("description", f"State changes of the {ir.project} pipelines, for metrics")
    rule.attr(
        "event_pattern",
        json.dumps(
            {
                "source": ["aws.codepipeline"],
                "detail": {"pipeline": [{"prefix": f"{ir.project}-"}]},
            },
            sort_keys=True,
        ),
    )
    target = resource("aws_cloudwatch_event_target", "pipeline_events")
    target.attr("rule", Ref("aws_cloudwatch_event_rule.pipeline_events.name"))
    target.attr("target_id", "logs")
    target.attr("arn", Ref("aws_cloudwatch_log_group.pipeline_events.arn"))
    blocks += [rule, target]
    # EventBridge writes to a log group through a resource policy (CloudWatch Logs'
    # documented policy for events.amazonaws.com and delivery.logs.amazonaws.com)
    blocks.append(
        policy_doc(
            "pipeline_events_logs",
            [
                {
                    "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "resources": [
                        Template((Ref("aws_cloudwatch_log_group.pipeline_events.arn"), ":*"))
                    ],
                    "principals": [
                        ("Service", ["events.amazonaws.com", "delivery.logs.amazonaws.com"])
                    ],
                    "conditions": [
                        (
                            "ArnEquals",
                            "aws:SourceArn",
                            [Ref("aws_cloudwatch_event_rule.pipeline_events.arn")],
                        )
                    ],
                }
            ],
        )
    )
    lp = resource("aws_cloudwatch_log_resource_policy", "pipeline_events")
    lp.attr("policy_name", f"{ir.project}-pipeline-events")
    lp.attr("policy_document", Ref("data.aws_iam_policy_document.pipeline_events_logs.json"))
    blocks.append(lp)
    for label, metric, pattern, dim in _filters(ir):
        f = resource("aws_cloudwatch_log_metric_filter", label)
        f.attr("name", f"{ir.project}-{label.replace('_', '-')}")
        f.attr("log_group_name", Ref("aws_cloudwatch_log_group.pipeline_events.name"))
        f.attr("pattern", pattern)
        t = f.block("metric_transformation")
        t.attr("name", metric)
        t.attr("namespace", namespace(ir))
        t.attr("value", "1")
        t.attr("unit", "Count")
        if dim:
            t.attr("dimensions", dim)
        blocks.append(f)
    blocks += alarm_and_dashboard(ir)
    return blocks


def failure_rate_alarm_name(ir: IR) -> str:
    """The failure-rate alarm: it notifies the topic with CloudWatch's own message."""
    return f"{ir.project}-pipeline-failure-rate"


def alarm_and_dashboard(ir: IR) -> list[Block]:
    """The failure-rate alarm and the dashboard, on the namespace's metrics: the same for
    both deliverers (GitHub Actions delivery puts the metrics itself)."""
    blocks: list[Block] = []
    v = Block("variable", ("pipeline_failure_rate_alarm_percent",))
    v.attr(
        "description",
        "Failure rate (percent, 0..100) of finished pipeline executions in a day that alarms",
    )
    v.attr("type", Ref("number"))
    v.attr("default", 25)
    blocks.append(v)
    alarm = resource("aws_cloudwatch_metric_alarm", "failure_rate")
    alarm.attr("alarm_name", failure_rate_alarm_name(ir))
    alarm.attr(
        "alarm_description",
        f"More than the allowed share of {ir.project} pipeline runs failed in a day",
    )
    alarm.attr("comparison_operator", "GreaterThanThreshold")
    alarm.attr("evaluation_periods", 1)
    alarm.attr("threshold", Ref("var.pipeline_failure_rate_alarm_percent"))
    alarm.attr("treat_missing_data", "notBreaching")
    alarm.attr("alarm_actions", [Ref("aws_sns_topic.events.arn")])
    for qid, metric in (("succeeded", "Succeeded"), ("failed", "Failed")):
        q = alarm.block("metric_query")
        q.attr("id", qid)
        q.attr("return_data", False)
        m = q.block("metric")
        m.attr("namespace", namespace(ir))
        m.attr("metric_name", metric)
        m.attr("period", FAILURE_RATE_PERIOD)
        m.attr("stat", "Sum")
    q = alarm.block("metric_query")
    q.attr("id", "rate")
    q.attr("expression", RATE)
    q.attr("label", "failed / finished executions (percent)")
    q.attr("return_data", True)
    blocks.append(alarm)
    dash = resource("aws_cloudwatch_dashboard", "pipelines")
    dash.attr("dashboard_name", f"{ir.project}-pipelines")
    dash.attr("dashboard_body", dashboard_body(ir))
    blocks.append(dash)
    return blocks
