"""The rest of the specification (issue 29): scheduled DAST against production,
notifications that arrive, pipeline monitoring, merge gates, compliance jobs, the first
apply phase by phase, audit and rollback, chart releases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR, PlanInput
from pipecompile.targets.common import script_body
from pipecompile.targets.registry import render_all
from tests.conftest import ROOT, hcl_norm
from tests.harness.reusable import expand, expand_rendered

SAMPLES = ROOT / "samples"
REF = SAMPLES / "ecommerce"  # delivery: codepipeline (the default)
GHA = SAMPLES / "storefront"  # delivery: github-actions
ACCEPTANCE = Path("/work/shared/acceptance/ecommerce.pipeline.yaml")


def ir_of(sample: Path) -> IR:
    return compile_bytes("pipeline.yaml", (sample / "pipeline.yaml").read_bytes())


def doc(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rendered(source: str) -> tuple[IR, dict[str, str]]:
    ir = compile_bytes("pipeline.yaml", source.encode())
    return ir, {str(p): body for p, (_, body) in render_all(ir).items()}


MINI = """\
version: 1
project: shop
source: {repository: example/shop}
aws: {region: eu-west-3, account_id: "012345678901"}
environments:
  staging: {branches: ["release/*"], url: "https://staging.example.com"}
  production: {branches: [main], approval: true%(prod)s}
security:
  dast:
    environment: staging
%(schedule)s
gitops: {repository: 'git@github.com:example/gitops.git'}
services: {web: {}}
"""


# -- 5. DAST weekly against production --------------------------------------------------


def test_the_reference_sample_is_the_acceptance_file() -> None:
    if ACCEPTANCE.exists():  # the shared copy exists on the development machine only
        assert (REF / "pipeline.yaml").read_bytes() == ACCEPTANCE.read_bytes()
    assert ir_of(REF).environment("production").url == "https://shop.example.com"


def test_the_scheduled_scan_targets_each_production_service_at_its_own_host() -> None:
    # the first service answers at the environment's url; every other one at
    # <service>.<domain> only: one scan of the url would never reach it
    cases = (
        (
            REF,
            {
                "product-service": "https://shop.example.com",
                "order-service": "https://order-service.shop.example.com",
            },
        ),
        (
            GHA,
            {
                "web": "https://storefront.example.com",
                "payments": "https://payments.storefront.example.com",
            },
        ),
    )
    for sample, urls in cases:
        dast = expand(sample / ".github/workflows/dast.yml")  # zap.yml's scan in it
        assert dast["on"]["schedule"] == [{"cron": "0 3 * * 1"}]  # weekly
        assert not [j for j in dast["jobs"] if j.endswith("/mark")]  # a schedule marks none
        scanned = {}
        for service in urls:
            env = dast["jobs"][f"zap-{service}"]["steps"][0]["env"]  # zap.yml's first job
            assert env["DAST_ENVIRONMENT"] == "production"
            scanned[service] = env["DAST_URL"]
        assert scanned == urls
        # the gate after each deploy still scans the DAST environment (staging)
        assert ir_of(sample).security.dast.environment == "staging"  # type: ignore[union-attr]


def test_each_service_is_scanned_at_its_own_staging_host_after_its_deploy() -> None:
    """The DAST after a staging deploy scans the service that was deployed (its Ingress
    host), on both orchestrators: a pass marks that service's digest."""
    import re

    staging = {
        "web": "https://staging.storefront.example.com",
        "payments": "https://payments.staging.storefront.example.com",
    }
    for service, url in staging.items():
        deliver = yaml.safe_load((GHA / f".github/workflows/deliver-{service}.yml").read_text())
        calls = [j for j in deliver["jobs"].values() if j.get("with", {}).get("environment")]
        given = {j["with"]["environment"]: j["with"].get("dast_url") for j in calls}
        assert given["staging"] == url
        assert {e for e, u in given.items() if u} == {"staging"}
    deploy = yaml.safe_load((GHA / ".github/workflows/deploy.yml").read_text())
    assert deploy["jobs"]["dast"]["with"]["url"] == "${{ inputs.dast_url }}"
    ingress = {
        "product-service": "https://staging.shop.example.com",
        "order-service": "https://order-service.staging.shop.example.com",
    }
    text = (REF / "infrastructure/terraform/cicd/codepipeline.tf").read_text()
    for service, url in ingress.items():
        block = text.split(f'resource "aws_codepipeline" "{service}-staging" {{', 1)[1]
        block = block.split("\nresource ", 1)[0]
        assert re.findall(r'name = "DAST_URL", value = "([^"]+)"', block) == [url]
    from pipecompile.insight.explain import explain_event

    said = "\n".join(explain_event(ir_of(REF), "push", "release/1.2"))
    assert (
        "OWASP ZAP scans each service after its deploy (https://staging.shop.example.com, "
        "https://order-service.staging.shop.example.com)" in said
    )
    # the project holds no URL: a start without the action's fails (dast-scan.sh)
    codebuild = (REF / "infrastructure/terraform/cicd/codebuild.tf").read_text()
    assert '"DAST_URL"' not in codebuild


def test_without_a_production_url_the_schedule_is_a_located_warning() -> None:
    ir, files = rendered(MINI % {"prod": "", "schedule": "    schedule: daily"})
    assert [str(w) for w in ir.warnings if "scheduled DAST" in w.message] == [
        "pipeline.yaml:11:15: warning: PC205 security.dast.schedule: the scheduled DAST scan "
        "targets "
        "'production' (last in promotion order), which has no 'url': it scans nothing; set "
        "environments.production.url"
    ]
    assert not any(p.endswith(".github/workflows/dast.yml") for p in files)
    # the gate after the staging deploy is unaffected
    assert ir.security.dast is not None and ir.security.dast.url == "https://staging.example.com"


def test_with_a_production_url_there_is_no_warning() -> None:
    ir, files = rendered(MINI % {"prod": ', url: "https://example.com"', "schedule": ""})
    assert not [w for w in ir.warnings if "DAST" in w.message]
    dast = expand_rendered(files, ".github/workflows/dast.yml")
    (scan,) = [job for name, job in dast["jobs"].items() if name.startswith("zap-")]
    assert scan["steps"][0]["env"]["DAST_URL"] == "https://example.com"


def test_explain_schedule_names_the_production_scan() -> None:
    from pipecompile.insight.explain import explain_event

    assert explain_event(ir_of(REF), "schedule", "") == [
        "dast.yml runs OWASP ZAP against product-service at https://shop.example.com, "
        "order-service at https://order-service.shop.example.com (production) on cron "
        "'0 3 * * 1'"
    ]


# -- 1. notifications that arrive -----------------------------------------------------------


def tf_resources(text: str) -> dict[tuple[str, str], Any]:
    import hcl2

    out = {}
    for block in hcl_norm(hcl2.loads(text)).get("resource", []):
        for kind, named in block.items():
            for label, body in named.items():
                out[(kind, label)] = body
    return out


def _s(v: Any) -> Any:
    return v


def _str(v: str) -> str:
    """An HCL string literal's value (hcl_norm keeps its JSON escapes)."""
    import json

    return str(json.loads(f'"{v}"'))


def _json(v: str) -> Any:
    import json

    return json.loads(_str(v))


TF = REF / "infrastructure/terraform/cicd"
SCRIPT_RULES = {"daily_summary", "commit_status"}  # they start CodeBuild, they notify nobody


def test_notification_rules_carry_environment_and_status() -> None:
    res = tf_resources((TF / "chatops.tf").read_text())
    rules = {
        label: body
        for (kind, label), body in res.items()
        if kind == "aws_cloudwatch_event_rule" and label not in SCRIPT_RULES
    }
    # the reference: slack on [failed, succeeded], four environments
    assert sorted(rules) == sorted(
        f"{e}_{ev}"
        for e in ("development", "testing", "staging", "production")
        for ev in ("succeeded", "failed")
    )
    pattern = _json(rules["production_failed"]["event_pattern"])
    assert pattern["detail-type"] == ["CodePipeline Pipeline Execution State Change"]
    assert pattern["detail"]["state"] == ["FAILED", "STOPPED"]  # a stopped execution too
    assert sorted(pattern["detail"]["pipeline"]) == [
        "ecommerce-order-service-production",
        "ecommerce-product-service-production",
    ]
    target = res[("aws_cloudwatch_event_target", "production_failed")]
    template = target["input_transformer"][0]["input_template"]
    import json

    body = json.loads(_str(template).replace("<pipeline>", "p").replace("<execution>", "x"))
    assert body["version"] == "1.0" and body["source"] == "custom"  # Chatbot custom format
    assert body["metadata"]["additionalContext"]["environment"] == "production"
    assert body["metadata"]["additionalContext"]["status"] == "failed"
    assert _s(target["arn"]) == "${aws_sns_topic.events.arn}"


def test_slack_without_sns_still_gets_notification_rules_and_chatbot() -> None:
    import json
    import shutil
    import subprocess
    import tempfile

    source = MINI % {"prod": ', url: "https://example.com"', "schedule": ""}
    source += "notifications: {slack: {channel: '#deploys', on: [failed, approval-needed]}}\n"
    _, files = rendered(source)
    tf = "infrastructure/terraform/cicd/"
    res = tf_resources(files[tf + "chatops.tf"])
    rules = sorted(
        label
        for kind, label in res
        if kind == "aws_cloudwatch_event_rule" and label not in SCRIPT_RULES
    )
    # approval-needed only where an approval exists
    assert rules == ["production_approval_needed", "production_failed", "staging_failed"]
    approval = _json(
        res[("aws_cloudwatch_event_rule", "production_approval_needed")]["event_pattern"]
    )
    assert approval["detail"]["type"] == {"category": ["Approval"]}
    chatbot = res[("aws_chatbot_slack_channel_configuration", "deployments")]
    assert _s(chatbot["slack_team_id"]) == "${var.slack_workspace_id}"
    assert _s(chatbot["sns_topic_arns"][0]) == "${aws_sns_topic.events.arn}"
    # not created until both IDs are set: terraform itself evaluates the count
    count = _s(chatbot["count"])
    assert count.startswith("${") and count.endswith("}")
    cases = [("", ""), ("T0123ABCD", ""), ("", "C0123ABCD"), ("T0123ABCD", "C0123ABCD")]
    if shutil.which("terraform"):
        exprs = [
            count[2:-1]
            .replace("var.slack_workspace_id", f'"{w}"')
            .replace("var.slack_channel_id", f'"{c}"')
            for w, c in cases
        ]
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                ["terraform", "console"],
                input="jsonencode([" + ", ".join(exprs) + "])\n",
                cwd=tmp,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        assert json.loads(json.loads(out)) == [0, 0, 0, 1]


def test_subscriptions_filter_on_environment_and_status() -> None:
    import json

    source = MINI % {"prod": ', url: "https://example.com"', "schedule": ""}
    source += (
        "notifications:\n  sns:\n    topic: shop-events\n    subscriptions:\n"
        "      - {protocol: email, endpoint: oncall@example.com, environments: [production],"
        " statuses: [failed]}\n"
        "      - {protocol: sqs, endpoint: 'arn:aws:sqs:eu-west-3:012345678901:audit'}\n"
    )
    _, files = rendered(source)
    res = tf_resources(files["infrastructure/terraform/cicd/chatops.tf"])
    first = res[("aws_sns_topic_subscription", "subscriber_0")]
    assert _s(first["filter_policy_scope"]) == "MessageBody"
    # a subscriber to failures also gets the failure-rate alarm (CloudWatch's own body)
    alarm = {"AlarmName": ["shop-pipeline-failure-rate"]}
    ours = {"environment": ["production"], "status": ["failed"]}
    assert _json(first["filter_policy"]) == {
        "$or": [{"metadata": {"additionalContext": ours}}, alarm]
    }
    second = _json(res[("aws_sns_topic_subscription", "subscriber_1")]["filter_policy"])
    every = {"status": ["approval-needed", "failed"]}  # every event the topic is sent
    assert second == {"$or": [{"metadata": {"additionalContext": every}}, alarm]}
    # as SNS applies them (moto's filter engine): the alarm reaches both, a staging
    # failure only the second, a production failure both
    from pipecompile.targets.terraform.chatops import message_template

    ir = compile_bytes("pipeline.yaml", source.encode())
    staging = message_template(ir, ir.environment("staging"), "failed")
    production = message_template(ir, ir.environment("production"), "failed")
    cloudwatch = json.dumps(
        {"AlarmName": "shop-pipeline-failure-rate", "NewStateValue": "ALARM", "Trigger": {}}
    )
    messages = {"staging": staging, "production": production, "alarm": cloudwatch}
    # moto's $or in the message-body scope matches as if on attributes (moto/sns/utils.py
    # _attributes_based_match): each alternative is applied by moto on its own, and a
    # message is delivered when one of them takes it (SNS developer guide, and-or-logic.md)
    delivered = []
    for policy in (_json(first["filter_policy"]), second):
        taken = _sns_deliveries(policy["$or"], messages)
        delivered.append([name for name in messages if any(name in t for t in taken)])
    assert delivered == [["production", "alarm"], ["staging", "production", "alarm"]]


SUMMARY_SUBSCRIPTIONS = (
    "audit: {deployments_table: shop-deployments}\n"
    "notifications:\n  sns:\n    topic: shop-events\n    subscriptions:\n"
    "      - {protocol: email, endpoint: oncall@example.com, environments: [production],"
    " statuses: [failed]}\n"
    "      - {protocol: sqs, endpoint: 'arn:aws:sqs:eu-west-3:012345678901:audit'}\n"
    "      - {protocol: email, endpoint: prod@example.com, environments: [production],"
    " statuses: [failed, summary]}\n"
)


def _summary_message(tmp_path: Path) -> str:
    """What daily-summary.sh publishes (the real script, FAKE_AWS recording the publish)."""
    import os
    import subprocess

    from pipecompile.targets.terraform.chatops import summary_script

    script = tmp_path / "daily-summary.sh"
    script.write_text(summary_script())
    fake = tmp_path / "bin" / "aws"
    fake.parent.mkdir()
    fake.write_text(FAKE_AWS)
    fake.chmod(0o755)
    log = tmp_path / "sns.log"
    table = {"shop-deployments": [_row("web", "production", "2026-12-01T10:00:00Z", "failed")]}
    env = {
        **os.environ,
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "DEPLOYMENTS_TABLE": "shop-deployments",
        "TOPIC_ARN": "arn:aws:sns:eu-west-3:012345678901:shop-events",
        "SERVICES": "web",
        "ENVIRONMENTS": "staging production",
        "PROJECT": "shop",
        "FAKE_KEYS": json.dumps(["stream", "deployment"]),
        "NOW": "2026-12-01T17:00:00Z",
        "FAKE_TABLE": json.dumps(table),
        "FAKE_SNS_LOG": str(log),
    }
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (message,) = log.read_text().splitlines()
    return message


def test_the_daily_summary_reaches_the_subscriptions_that_ask_for_it(tmp_path: Path) -> None:
    """The daily summary is published with status summary and no environment (it lists
    every environment's deploys): a subscription that names no statuses hears it, as it
    hears everything the topic is sent; one filtered to failures does not; one that
    names summary does, whatever its environments (README, "Notifications")."""
    from pipecompile.targets.terraform.chatops import message_template

    source = MINI % {"prod": ', url: "https://example.com"', "schedule": ""}
    source += SUMMARY_SUBSCRIPTIONS
    _, files = rendered(source)
    res = tf_resources(files["infrastructure/terraform/cicd/chatops.tf"])
    policies = [
        _json(res[("aws_sns_topic_subscription", f"subscriber_{i}")]["filter_policy"])
        for i in range(3)
    ]
    alarm = {"AlarmName": ["shop-pipeline-failure-rate"]}
    summary = {"metadata": {"additionalContext": {"status": ["summary"]}}}
    assert policies[2] == {
        "$or": [
            {
                "metadata": {
                    "additionalContext": {"environment": ["production"], "status": ["failed"]}
                }
            },
            summary,
            alarm,
        ]
    }
    every = {"status": ["approval-needed", "failed", "summary"]}
    assert policies[1] == {"$or": [{"metadata": {"additionalContext": every}}, alarm]}
    ir = compile_bytes("pipeline.yaml", source.encode())
    messages = {
        "staging": message_template(ir, ir.environment("staging"), "failed"),
        "production": message_template(ir, ir.environment("production"), "failed"),
        "alarm": json.dumps(
            {"AlarmName": "shop-pipeline-failure-rate", "NewStateValue": "ALARM", "Trigger": {}}
        ),
        "summary": _summary_message(tmp_path),
    }
    assert json.loads(messages["summary"])["metadata"]["additionalContext"] == {"status": "summary"}
    # moto's $or in the message-body scope is wrong (above): each alternative on its own
    delivered = []
    for policy in policies:
        taken = _sns_deliveries(policy.get("$or", [policy]), messages)
        delivered.append([name for name in messages if any(name in t for t in taken)])
    assert delivered == [
        ["production", "alarm"],
        ["staging", "production", "alarm", "summary"],
        ["production", "alarm", "summary"],
    ]
    # explain says which messages reach each subscription
    from pipecompile.targets.terraform import describe

    lines = describe(ir)
    assert "    email oncall@example.com: failed in production; not the daily summary " in (
        "\n".join(lines)
    )


def test_a_summary_subscription_without_a_daily_summary_is_a_located_error() -> None:
    import pytest

    from pipecompile.errors import PipelineError

    source = MINI % {"prod": "", "schedule": ""}
    source += (
        "notifications:\n  sns:\n    topic: shop-events\n    subscriptions:\n"
        "      - {protocol: email, endpoint: a@example.com, statuses: [failed, summary]}\n"
    )
    with pytest.raises(PipelineError) as exc:
        compile_bytes("pipeline.yaml", source.encode())
    assert str(exc.value) == (
        "pipeline.yaml:18:71: PC107 notifications.sns.subscriptions[0].statuses[1]: 'summary' "
        "is not sent to the topic; it sends: approval-needed, failed"
    )


def _sns_deliveries(policies: list[Any], messages: dict[str, str]) -> list[list[str]]:
    """Which of ``messages`` each subscription (its body filter policy) receives, as
    moto's SNS (its filter-policy engine, message-body scope) delivers them to SQS."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="events")["TopicArn"]
        queues = []
        for i, policy in enumerate(policies):
            url = sqs.create_queue(QueueName=f"q{i}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            sub = sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arn["Attributes"]["QueueArn"],
                Attributes={"RawMessageDelivery": "true"},
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
            # the scope first: as terraform's provider sets them, one attribute per call
            for name, value in (
                ("FilterPolicyScope", "MessageBody"),
                ("FilterPolicy", json.dumps(policy)),
            ):
                sns.set_subscription_attributes(
                    SubscriptionArn=sub, AttributeName=name, AttributeValue=value
                )
            queues.append(url)
        for message in messages.values():
            sns.publish(TopicArn=topic, Message=message)
        names = {body: name for name, body in messages.items()}
        out = []
        for url in queues:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            out.append([names[m["Body"]] for m in got])
        return out


def test_a_subscription_to_an_unknown_environment_is_a_located_error() -> None:
    import pytest

    from pipecompile.errors import PipelineError

    source = MINI % {"prod": "", "schedule": ""}
    source += (
        "notifications:\n  sns:\n    topic: shop-events\n    subscriptions:\n"
        "      - {protocol: email, endpoint: a@example.com, environments: [prod]}\n"
    )
    with pytest.raises(PipelineError) as exc:
        compile_bytes("pipeline.yaml", source.encode())
    assert str(exc.value) == (
        "pipeline.yaml:18:67: PC201 notifications.sns.subscriptions[0].environments[0]: unknown "
        "environment 'prod' (did you mean 'production'?); known: staging, production"
    )


def test_explain_lists_the_chatbot_workspace_authorisation() -> None:
    from pipecompile.targets.terraform import describe

    text = "\n".join(describe(ir_of(REF)))
    assert "authorise the Slack workspace" in text
    assert "slack_workspace_id and slack_channel_id" in text
    from pipecompile.insight.explain import checklist

    everything = "\n".join(checklist(ir_of(REF)))
    assert (
        "pipecompile explain --ruleset | gh api repos/example/ecommerce-product-service"
        in everything
    )


# -- 2. pipeline monitoring -----------------------------------------------------------------


class _Series(dict[int, float]):
    """A metric math time series, as CloudWatch computes it (CloudWatch User Guide,
    "Metric math syntax and functions"): an operation on two series has a datapoint only
    at the timestamps where both have one; a scalar applies to every datapoint; a
    comparison is 1 or 0; FILL(m, v) gives m's missing datapoints the value v; IF(c, a, b)
    takes a where c is not 0, b where it is."""

    def _op(self, other: Any, f: Any) -> _Series:
        if isinstance(other, _Series):
            return _Series({t: f(v, other[t]) for t, v in self.items() if t in other})
        return _Series({t: f(v, other) for t, v in self.items()})

    def __add__(self, o: Any) -> _Series:
        return self._op(o, lambda a, b: a + b)

    def __truediv__(self, o: Any) -> _Series:
        return self._op(o, lambda a, b: a / b if b else float("nan"))

    def __rmul__(self, o: Any) -> _Series:
        return self._op(o, lambda a, b: a * b)

    def __gt__(self, o: Any) -> _Series:  # type: ignore[override]
        return self._op(o, lambda a, b: float(a > b))


def metric_math(expression: str, **series: dict[int, float]) -> dict[int, float]:
    import re

    stamps = sorted({t for s in series.values() for t in s})  # the period's timestamps

    def fill(m: _Series, value: float) -> _Series:
        return _Series({t: m.get(t, value) for t in stamps})

    def if_(c: _Series, a: Any, b: Any) -> _Series:
        def pick(x: Any, t: int) -> Any:
            return x.get(t) if isinstance(x, _Series) else x

        out = {t: pick(a, t) if v else pick(b, t) for t, v in c.items()}
        return _Series({t: v for t, v in out.items() if v is not None})

    assert re.fullmatch(r"[A-Za-z_0-9 ,.()+*/>-]+", expression), expression
    names = {k: _Series(v) for k, v in series.items()}
    code = re.sub(r"\bIF\(", "if_(", re.sub(r"\bFILL\(", "fill(", expression))
    return dict(eval(code, {"fill": fill, "if_": if_, **names}))


def test_pipeline_events_feed_metrics_a_dashboard_and_a_failure_rate_alarm() -> None:

    res = tf_resources((TF / "monitoring.tf").read_text())
    rule = _json(res[("aws_cloudwatch_event_rule", "pipeline_events")]["event_pattern"])
    assert rule == {
        "detail": {"pipeline": [{"prefix": "ecommerce-"}]},
        "source": ["aws.codepipeline"],
    }
    target = res[("aws_cloudwatch_event_target", "pipeline_events")]
    assert _s(target["arn"]) == "${aws_cloudwatch_log_group.pipeline_events.arn}"
    filters = {
        label: body
        for (kind, label), body in res.items()
        if kind == "aws_cloudwatch_log_metric_filter"
    }
    assert set(filters) >= {"executions_succeeded", "executions_failed", "stages_failed"}
    failed = filters["executions_failed_by_pipeline"]["metric_transformation"][0]
    assert (_s(failed["name"]), _s(failed["namespace"])) == ("Failed", "ecommerce/pipelines")
    alarm = res[("aws_cloudwatch_metric_alarm", "failure_rate")]
    queries = {_s(q["id"]): q for q in alarm["metric_query"]}
    assert set(queries) == {"succeeded", "failed", "rate"}
    rate = _s(queries["rate"]["expression"])
    day = 1_700_000_000
    # a day of failures only: the Succeeded filter put no datapoint that day
    assert metric_math(rate, succeeded={}, failed={day: 3.0}) == {day: 100.0}
    assert metric_math(rate, succeeded={day: 3.0}, failed={day: 1.0}) == {day: 25.0}
    assert metric_math(rate, succeeded={day: 2.0}, failed={}) == {day: 0.0}
    assert _s(alarm["threshold"]) == "${var.pipeline_failure_rate_alarm_percent}"
    import hcl2

    variables = hcl_norm(hcl2.loads((TF / "monitoring.tf").read_text()))["variable"]
    limit = next(v for v in variables if "pipeline_failure_rate_alarm_percent" in v)
    assert limit["pipeline_failure_rate_alarm_percent"]["default"] == 25
    assert _s(alarm["alarm_actions"][0]) == "${aws_sns_topic.events.arn}"
    dashboard = _json(res[("aws_cloudwatch_dashboard", "pipelines")]["dashboard_body"])
    titles = [w["properties"]["title"] for w in dashboard["widgets"]]
    assert any("duration per pipeline" in t for t in titles)
    assert any("Stage duration" in t for t in titles)


# -- the Terraform: validates and plans offline with the AWS provider -----------------------


def _terraform(args: list[str], cwd: Path) -> str:
    import subprocess

    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        # no network: a provider that tried to reach AWS fails instead of hanging
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    res = subprocess.run(
        ["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


OFFLINE_PROVIDER = """\
provider "aws" {
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}
"""


def test_the_reference_terraform_validates_and_plans_offline(tmp_path: Path) -> None:
    import json
    import shutil

    import pytest

    if not (shutil.which("terraform") and Path("/opt/tf-plugins").is_dir()):
        pytest.skip("terraform and its provider mirror are not on this machine")
    # the whole sample: build projects read their buildspec with file() at plan time
    shutil.copytree(REF, tmp_path / "sample")
    tmp_path = tmp_path / "sample" / TF.relative_to(REF)
    (tmp_path / "offline_override.tf").write_text(OFFLINE_PROVIDER)
    # what the operator sets (no default): the cluster's OIDC issuer the roles trust
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    (tmp_path / "offline.auto.tfvars").write_text(f'eks_oidc_issuer_ecommerce = "{issuer}"\n')
    _terraform(["init", "-input=false", "-plugin-dir=/opt/tf-plugins"], tmp_path)
    _terraform(["validate"], tmp_path)
    _terraform(["plan", "-input=false", "-refresh=false", "-lock=false", "-out=plan"], tmp_path)
    plan = json.loads(_terraform(["show", "-json", "plan"], tmp_path))
    planned = {r["address"] for r in plan["resource_changes"]}
    assert {
        "aws_cloudwatch_event_rule.production_failed[0]",  # counted: phases.tf
        "aws_cloudwatch_metric_alarm.failure_rate",
        "aws_cloudwatch_dashboard.pipelines",
        "aws_iam_role.chatbot",
    } <= planned
    # the Chatbot channel waits for its IDs (count 0): a first apply needs none
    assert not any(a.startswith("aws_chatbot_slack_channel_configuration") for a in planned)


# -- 3 and 9. merging is gated ------------------------------------------------------------------


def _strict(node: Any) -> Any:
    """GitHub's schema with unknown keys refused (it lists every key the API takes), so
    a misspelt key fails here instead of being ignored by the API."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def test_the_ruleset_is_valid_for_githubs_rest_api_and_requires_the_generated_check() -> None:
    import json

    import jsonschema

    from pipecompile.insight.ruleset import ruleset

    schema = json.loads((ROOT / "tests/schemas/github-repository-ruleset-request.json").read_text())
    validator = jsonschema.Draft4Validator(_strict(schema))
    for sample in (REF, GHA):
        body = ruleset(ir_of(sample))
        validator.validate(body)
        checks = next(r for r in body["rules"] if r["type"] == "required_status_checks")
        contexts = [c["context"] for c in checks["parameters"]["required_status_checks"]]
        gate = doc(sample / ".github/workflows/pipecompile.yml")
        assert contexts == [gate["jobs"]["check"]["name"]]  # the exact check-run name
    body = ruleset(ir_of(REF))
    assert body["conditions"]["ref_name"]["include"] == [
        "~DEFAULT_BRANCH",
        "refs/heads/develop",
        "refs/heads/release/*",
        "refs/heads/release/*/**/*",  # and its nested names (GitHub's '*' stops at '/')
        "refs/heads/hotfix/*",  # hotfixes deploy on the release path (issue 26)
        "refs/heads/hotfix/*/**/*",
        "refs/heads/main",
    ]  # feature/* (development) stays open: pull requests start there
    # the validator does refuse what GitHub does not take
    bad = dict(body, enforcement="enforced")
    assert not validator.is_valid(bad)
    assert not validator.is_valid(dict(body, rules=[{"type": "pull_request", "parameters": {}}]))


def test_the_configuration_check_runs_on_every_pull_request() -> None:
    for sample in (REF, GHA):
        gate = doc(sample / ".github/workflows/pipecompile.yml")
        assert gate["on"]["pull_request"] == {}  # no path filter: it always reports
        run = "\n".join(s.get("run", "") for s in gate["jobs"]["check"]["steps"])
        assert 'pipecompile check --diff -f "$PIPELINE_FILE"' in run
        assert 'pipecompile lint -f "$PIPELINE_FILE"' in run
        assert gate["jobs"]["check"]["permissions"] == {"contents": "read"}


def test_explain_prints_the_ruleset_for_gh_api() -> None:
    import json
    import subprocess
    import sys

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipecompile",
            "explain",
            "-f",
            str(REF / "pipeline.yaml"),
            "--ruleset",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["name"] == "ecommerce deploy branches"


# -- 6. CloudTrail where asked ----------------------------------------------------------------

SHARED = SAMPLES / "shared-account"  # audit.cloudtrail: true


def test_cloudtrail_is_off_by_default_and_keeps_90_days_when_asked() -> None:
    assert not (TF / "cloudtrail.tf").exists()
    storage = (TF / "storage.tf").read_text()
    # the logging claim is true or gone: without a trail the skip says so
    assert "CloudTrail data events" not in storage.split("audit.cloudtrail")[0]
    tf = SHARED / "infrastructure/terraform/cicd"
    res = tf_resources((tf / "cloudtrail.tf").read_text())
    trail = res[("aws_cloudtrail", "cicd")]
    assert trail["enable_log_file_validation"] is True
    data = trail["event_selector"][0]["data_resource"][0]
    assert data["type"] == "AWS::S3::Object"
    # both tiers' artifact buckets (the release tier has its own, issue 28)
    assert data["values"] == [
        "${aws_s3_bucket.artifacts.arn}/",
        "${aws_s3_bucket.release_artifacts.arn}/",
    ]
    rule = res[("aws_s3_bucket_lifecycle_configuration", "trail")]["rule"][0]
    assert rule["expiration"][0]["days"] == 90
    assert "audited through CloudTrail data events" in (tf / "storage.tf").read_text()


def test_the_cloudtrail_terraform_validates(tmp_path: Path) -> None:
    import shutil

    import pytest

    if not (shutil.which("terraform") and Path("/opt/tf-plugins").is_dir()):
        pytest.skip("terraform and its provider mirror are not on this machine")
    shutil.copytree(SHARED, tmp_path / "sample")  # buildspecs are read with file()
    tmp_path = tmp_path / "sample/infrastructure/terraform/cicd"
    _terraform(["init", "-input=false", "-backend=false", "-plugin-dir=/opt/tf-plugins"], tmp_path)
    _terraform(["validate"], tmp_path)


# -- 7. manual rollback that works with this setup ---------------------------------------------


def test_explain_rollback_prints_commands_that_fit_this_setup() -> None:
    import json
    import shlex
    import subprocess
    import sys

    args = [sys.executable, "-m", "pipecompile", "explain", "-f", str(REF / "pipeline.yaml")]
    res = subprocess.run(
        [*args, "--rollback", "order-service", "production"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    ir = ir_of(REF)
    dep = next(
        d
        for s in ir.services
        if s.name == "order-service"
        for d in s.deployments
        if d.environment == "production"
    )
    # the file the deploy pipelines write, the Rollout (named after the service), the app
    assert f"{dep.gitops_dir}/image-production.yaml" in out
    assert "kubectl argo rollouts abort order-service -n ecommerce" in out
    assert "argocd app wait order-service-production" in out
    assert "argocd app rollback" not in out.replace("argocd app rollback is refused", "")
    # the shell lines are well-formed and their JSON parses
    query = out[out.index("aws dynamodb query") : out.index("--output table")]
    words = shlex.split(query.replace("\\\n", " "))
    values = json.loads(words[words.index("--expression-attribute-values") + 1])
    # the table's partition key (audit.tf): stream=<environment>/<service>
    assert values[":p"] == {"S": "production/order-service"}
    # tests/insight/test_rollback.py runs these lines against moto
    assert '"rolled-back"' in out and '--arg r "$REASON"' in out
    bad = subprocess.run(
        [*args, "--rollback", "order-servic", "production"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "unknown service 'order-servic' (did you mean 'order-service'?)" in bad.stderr


# -- 1. the daily summary -----------------------------------------------------------------------

# A stub of the two AWS CLI v2 calls the script makes. It enforces what the real CLI
# and DynamoDB require of them (aws-cli 2.x, awscli/customizations and the DynamoDB
# Query API): --table-name and --key-condition-expression present, every placeholder
# (":v" and "#n") defined in --expression-attribute-values / --expression-attribute-names
# (valid JSON), an equality on the table's partition key and a range condition on its
# sort key only (Query takes no other attribute in the key condition). The key names
# come from the generated audit.tf (FAKE_KEYS), not from the script; sns publish needs
# --topic-arn and --message. It answers from a table given as JSON in FAKE_TABLE.
FAKE_AWS = r"""#!/usr/bin/env python3
import json, os, re, sys
args = sys.argv[1:]
def opt(name, default=None):
    if name not in args:
        if default is not None:
            return default
        sys.exit(f"aws: error: the following arguments are required: {name}")
    return args[args.index(name) + 1]
if args[:2] == ["dynamodb", "query"]:
    table, cond = opt("--table-name"), opt("--key-condition-expression")
    values = json.loads(opt("--expression-attribute-values"))
    names = json.loads(opt("--expression-attribute-names", "{}"))
    for ph in re.findall(r":\w+", cond):
        if ph not in values:
            sys.exit(f"An error occurred (ValidationException): {ph} is not defined")
    for ph in re.findall(r"#\w+", cond):
        if ph not in names:
            sys.exit(f"An error occurred (ValidationException): {ph} is not defined")
    cond = re.sub(r"#\w+", lambda m: names[m.group(0)], cond)
    hash_key, range_key = json.loads(os.environ["FAKE_KEYS"])
    m = re.fullmatch(rf"{hash_key} = (:\w+) AND {range_key} >= (:\w+)", cond)
    if not m:
        sys.exit(f"An error occurred (ValidationException): key condition not supported: {cond}")
    key, since = values[m.group(1)]["S"], values[m.group(2)]["S"]
    rows = json.loads(os.environ["FAKE_TABLE"])[table]
    items = [r for r in rows if r[hash_key]["S"] == key and r[range_key]["S"] >= since]
    print(json.dumps({"Items": items, "Count": len(items)}))
elif args[:2] == ["sns", "publish"]:
    opt("--topic-arn")
    with open(os.environ["FAKE_SNS_LOG"], "a") as fh:
        fh.write(opt("--message") + "\n")
    print(json.dumps({"MessageId": "1"}))
else:
    sys.exit(f"unexpected aws call: {args}")
"""


def _row(service: str, env: str, at: str, outcome: str) -> dict[str, Any]:
    """A row as audit-row.sh writes it (stream=<env>/<service>, deployment=<time>/<run>)."""
    return {
        "stream": {"S": f"{env}/{service}"},
        "deployment": {"S": f"{at}/https://github.com/acme/ecommerce/actions/runs/7"},
        "service": {"S": service},
        "deployed_at": {"S": at},
        "environment": {"S": env},
        "outcome": {"S": outcome},
        "image_tag": {"S": "src-abc"},
    }


def test_the_daily_summary_posts_the_last_day_of_the_audit_table(tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    from pipecompile.targets.terraform.chatops import summary_script

    script = tmp_path / "daily-summary.sh"
    script.write_text(summary_script())
    fake = tmp_path / "bin" / "aws"
    fake.parent.mkdir()
    fake.write_text(FAKE_AWS)
    fake.chmod(0o755)
    table = {
        "ecommerce-deployments": [
            _row("order-service", "production", "2026-12-01T10:00:00Z", "succeeded"),
            _row("order-service", "staging", "2026-11-29T10:00:00Z", "succeeded"),  # too old
            _row("product-service", "production", "2026-12-01T09:00:00Z", "failed"),
        ]
    }
    log = tmp_path / "sns.log"
    table_key = tf_resources((TF / "audit.tf").read_text())[("aws_dynamodb_table", "deployments")]
    env = {
        **os.environ,
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "DEPLOYMENTS_TABLE": "ecommerce-deployments",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:ecommerce-pipeline-events",
        "SERVICES": "product-service order-service",
        "ENVIRONMENTS": "staging production",
        "PROJECT": "ecommerce",
        "FAKE_KEYS": json.dumps([table_key["hash_key"], table_key["range_key"]]),
        "NOW": "2026-12-01T17:00:00Z",
        "FAKE_TABLE": json.dumps(table),
        "FAKE_SNS_LOG": str(log),
    }
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (message,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert message["version"] == "1.0" and message["source"] == "custom"
    assert message["content"]["title"] == ("ecommerce: 2 deployment(s) since 2026-11-30T17:00:00Z")
    assert message["content"]["description"].splitlines() == [
        "2026-12-01T09:00:00Z product-service -> production: failed (src-abc)",
        "2026-12-01T10:00:00Z order-service -> production: succeeded (src-abc)",
    ]
    # shellcheck-clean, as every generated script
    import shutil

    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_the_daily_summary_runs_on_a_schedule_with_least_privilege() -> None:
    res = tf_resources((TF / "chatops.tf").read_text())
    rule = res[("aws_cloudwatch_event_rule", "daily_summary")]
    assert rule["schedule_expression"] == "cron(0 17 * * ? *)"
    target = res[("aws_cloudwatch_event_target", "daily_summary")]
    assert target["arn"] == "${aws_codebuild_project.daily_summary.arn}"
    project = res[("aws_codebuild_project", "daily_summary")]
    assert project["source"][0]["type"] == "NO_SOURCE"
    import hcl2

    data = {
        label: body
        for block in hcl_norm(hcl2.loads((TF / "chatops.tf").read_text()))["data"]
        for kind, named in block.items()
        for label, body in named.items()
    }
    statements = data["daily_summary"]["statement"]
    allowed = [st for st in statements if st.get("effect", "Allow") == "Allow"]
    denied = [a for st in statements if st.get("effect") == "Deny" for a in st["actions"]]
    assert denied == ["codepipeline:PutApprovalResult"]  # as every CI role
    actions = sorted(a for st in allowed for a in st["actions"])
    assert actions == sorted(
        [
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "dynamodb:Query",
            "sns:Publish",
            "kms:Decrypt",
            "kms:GenerateDataKey",
        ]
    )


# -- 4. compliance jobs -------------------------------------------------------------------------


def test_the_monthly_configuration_review_checks_the_default_branch() -> None:
    # CodePipeline delivery runs it as a CodeBuild project (reviews.tf), GitHub's here
    assert not (REF / ".github/workflows/review.yml").exists()
    for sample, notifies in ((GHA, True),):
        review = doc(sample / ".github/workflows/review.yml")
        assert review["on"]["schedule"] == [{"cron": "0 6 1 * *"}]
        job = review["jobs"]["review"]
        assert job["steps"][0]["with"]["ref"] == "main"
        run = "\n".join(s.get("run", "") for s in job["steps"])
        assert script_body("config-review.sh") in run
        assert 'pipecompile check --diff -f "$PIPELINE_FILE"' in run
        assert "--zizmor-persona auditor" in run
        # GitHub delivery holds the Slack webhook: a failed review reaches the channel
        assert ("notify" in review["jobs"]) == notifies
        if notifies:
            assert review["jobs"]["notify"]["if"] == "failure()"
            assert review["jobs"]["notify"]["environment"] == "notifications"


def test_secrets_rotate_when_a_rotation_function_is_given() -> None:
    tf = SHARED / "infrastructure/terraform/cicd"
    res = tf_resources((tf / "rotation.tf").read_text())
    rotations = {
        label: body
        for (kind, label), body in res.items()
        if kind == "aws_secretsmanager_secret_rotation"
    }
    audit = tf_resources((tf / "audit.tf").read_text())
    secrets = {label for (kind, label) in audit if kind == "aws_secretsmanager_secret"}
    # every secret the Terraform creates rotates, but the NVD API key (NVD issues keys by
    # e-mail: no function can rotate one; it keeps its skip)
    assert set(rotations) == secrets - {"nvd"}
    for body in rotations.values():
        assert (
            body["rotation_lambda_arn"]
            == "arn:aws:lambda:us-east-1:210987654321:function:rotate-cicd-secrets"
        )
        assert body["rotation_rules"][0]["automatically_after_days"] == 30
        # not at apply (the provider's default): the secrets are empty until the setup
        assert body["rotate_immediately"] is False
    perm = res[("aws_lambda_permission", "secrets_rotation")]
    assert perm["principal"] == "secretsmanager.amazonaws.com"
    # the checkov skip goes with rotation, and stays (with its reason) without it
    assert "CKV2_AWS_57" not in (tf / "audit.tf").read_text()
    assert "CKV2_AWS_57" in (TF / "audit.tf").read_text()
    assert not (TF / "rotation.tf").exists()
    from pipecompile.targets.terraform import describe

    assert any(
        "createSecret, setSecret, testSecret, finishSecret" in line
        for line in describe(ir_of(SHARED))
    )


# -- 3. CodePipeline state reported back to the commit -------------------------------------------

FAKE_AWS_STATUS = r"""#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
def opt(name):
    if name not in args:
        sys.exit(f"aws: error: the following arguments are required: {name}")
    return args[args.index(name) + 1]
if args[:2] == ["codepipeline", "get-pipeline-execution"]:
    opt("--pipeline-name"); opt("--pipeline-execution-id")
    assert opt("--query") == "pipelineExecution.artifactRevisions[0].revisionId"
    print("0123456789abcdef0123456789abcdef01234567")
elif args[:2] == ["secretsmanager", "get-secret-value"]:
    assert opt("--secret-id") == "ecommerce/github-status-token"
    assert opt("--query") == "SecretString"
    print("ghs_test_token")
else:
    sys.exit(f"unexpected aws call: {args}")
"""


def test_pipeline_runs_report_their_state_to_the_commit(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from pipecompile.targets.terraform.chatops import script

    seen: list[tuple[str, str, dict[str, Any]]] = []

    class GitHub(BaseHTTPRequestHandler):  # the statuses endpoint, on loopback
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers["Authorization"], body))
            self.send_response(201)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), GitHub)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        path = tmp_path / "commit-status.sh"
        path.write_text(script("commit-status.sh"))
        fake = tmp_path / "bin" / "aws"
        fake.parent.mkdir()
        fake.write_text(FAKE_AWS_STATUS)
        fake.chmod(0o755)
        for state in ("STARTED", "FAILED", "SUPERSEDED"):
            env = {
                **os.environ,
                "PATH": f"{fake.parent}:{os.environ['PATH']}",
                "PIPELINE": "ecommerce-order-service-production",
                "EXECUTION_ID": "e-1",
                "STATE": state,
                "REPOSITORY": "example/ecommerce-product-service",
                "TOKEN_SECRET": "ecommerce/github-status-token",
                "AWS_REGION": "us-east-1",
                "GITHUB_API": f"http://127.0.0.1:{server.server_port}",
            }
            res = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
            assert "ghs_test_token" not in res.stdout + res.stderr
    finally:
        server.shutdown()
        thread.join()
    assert [b["state"] for _, _, b in seen] == ["pending", "failure", "error"]
    url, auth, body = seen[1]
    assert url == (
        "/repos/example/ecommerce-product-service/statuses/0123456789abcdef0123456789abcdef01234567"
    )
    assert auth == "Bearer ghs_test_token"
    assert body["context"] == "codepipeline/ecommerce-order-service-production"


def test_the_commit_status_project_starts_on_every_execution_change() -> None:
    import json

    res = tf_resources((TF / "chatops.tf").read_text())
    rule = _json(res[("aws_cloudwatch_event_rule", "commit_status")]["event_pattern"])
    assert rule["detail-type"] == ["CodePipeline Pipeline Execution State Change"]
    assert rule["detail"] == {"pipeline": [{"prefix": "ecommerce-"}]}
    target = res[("aws_cloudwatch_event_target", "commit_status")]
    template = _str(target["input_transformer"][0]["input_template"])
    overrides = json.loads(template.replace("<", "").replace(">", ""))
    names = [o["name"] for o in overrides["environmentVariablesOverride"]]
    assert names == ["PIPELINE", "EXECUTION_ID", "STATE"]


# -- 9. the scan gate's findings where the approver decides ----------------------------------


def test_each_codepipeline_approval_points_at_the_images_scan_findings() -> None:
    ir = ir_of(REF)
    res = tf_resources((TF / "codepipeline.tf").read_text())
    approvals = [
        action["configuration"]
        for (kind, _), body in res.items()
        if kind == "aws_codepipeline"
        for stage in body["stage"]
        for action in stage["action"]
        if action["category"] == "Approval"
    ]
    assert approvals
    for config in approvals:
        text = config["CustomData"]
        # the Sign action's validated values (issue 28 trace: nothing after the build
        # reads the build action's own variables when images are signed)
        assert "#{SignVariables.IMAGE_TAG}" in text and "-ecr-image-scan" in text
        assert "BuildVariables" not in text
        # CodePipeline's limit for CustomData (Manual approval action reference), with the
        # longest tag ECR takes (128) and a digest (71) substituted
        filled = text.replace("#{SignVariables.IMAGE_TAG}", "t" * 128)
        assert len(filled.replace("#{SignVariables.IMAGE_DIGEST}", "d" * 71)) <= 500
        link = config["ExternalEntityLink"]
        assert link.startswith(f"https://{ir.aws.region}.console.aws.amazon.com/ecr/repositories/")
        assert any(
            link.split("/private/")[1].split("?")[0] == f"{ir.aws.account_id}/{s.release_image}"
            for s in ir.services
        )


def test_a_manual_blue_green_in_the_dast_environment_is_scanned_at_its_preview() -> None:
    """Paused at the preview (waiting-for-promotion, a healthy deploy), the new digest
    answers only at <service>-preview.<domain>: DAST scans that, never the active host
    that still serves the previous release (issue 26 trace of the per-service URL)."""
    source = (MINI % {"prod": "", "schedule": ""}).replace(
        'url: "https://staging.example.com"}',
        'url: "https://staging.example.com", strategy: blue-green}',
    )
    ir = compile_bytes("pipeline.yaml", source.encode())
    (scan, _) = ir.plan.stage("web", "staging").dast
    assert (scan.input("DAST_URL") or PlanInput("")).value == (
        "https://web-preview.staging.example.com"
    )


def test_the_service_url_keeps_scheme_port_and_path_and_changes_only_the_host() -> None:
    from pipecompile.ir import service_url

    hosts = ("pay.shop.example.com",)
    assert service_url("https://shop.example.com:8443/app?x=1", hosts) == (
        "https://pay.shop.example.com:8443/app?x=1"
    )
    # the environment's host among the service's own (the first service): unchanged
    first = ("shop.example.com", "web.shop.example.com")
    assert service_url("https://shop.example.com/app", first) == "https://shop.example.com/app"
    # no exposure domain, no hosts: the environment's url
    assert service_url("http://10.0.0.1:8080/", ()) == "http://10.0.0.1:8080/"


def test_a_dast_action_over_codepipelines_limit_is_a_located_error() -> None:
    import pytest

    from pipecompile.errors import PipelineError

    source = (MINI % {"prod": "", "schedule": ""}).replace(
        'url: "https://staging.example.com"}',
        'url: "https://staging.example.com/' + "a" * 700 + '"}',
    )
    with pytest.raises(PipelineError) as exc:
        compile_bytes("pipeline.yaml", source.encode())
    assert "PC302" in str(exc.value)
    assert "the Dast action of pipeline 'shop-web-staging' passes" in str(exc.value)
    assert "environments.staging.url" in str(exc.value)
