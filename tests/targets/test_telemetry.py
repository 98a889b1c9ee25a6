"""A failed run alerts the people who caused it (issue 29, item 1), and the GitHub Actions
deliverer reports the same pipeline metrics as CodePipeline (item 2): the generated
wiring, and failure-alert.sh and workflow-metrics.sh run as files with the real AWS
CLI against moto (CodePipeline, Secrets Manager, SNS, CloudWatch) and GitHub's REST API
answered on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.targets.common import script_path
from pipecompile.targets.registry import render_all
from tests.harness.reusable import expand, expand_rendered
from tests.harness.world import World, world
from tests.iam_eval import Account, github_subject
from tests.rehearsal.test_spec import GHA, REF, TF
from tests.targets.test_compliance import _messages, _queue_on_topic, required_inputs, tf_blocks

USERS = "    users: {octocat: U0123ABCD, hubot: W0456EFGH}\n"


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    with world() as wd:
        yield wd


class GitHub:
    """GitHub's REST API on loopback: the answers the scripts ask for, and what was asked."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization")))
                body = outer.answers.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {"message": "Not Found"}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever)

    def __enter__(self) -> GitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join()


def run(w: World, name: str, cwd: Path, path: str | None = None, **env: str) -> Any:
    full = {**w.env, "HOME": str(cwd), **env}
    if path:
        full["PATH"] = f"{path}:{full['PATH']}"
    return subprocess.run(
        ["bash", str(script_path(name))], cwd=cwd, env=full, capture_output=True, text=True
    )


# -- 1. the people behind a failure ------------------------------------------------------------


def test_a_failed_delivery_mentions_who_caused_it_on_github(tmp_path: Path) -> None:
    source = (
        (GHA / "pipeline.yaml")
        .read_text()
        .replace("    on: [failed, succeeded]\n", "    on: [failed, succeeded]\n" + USERS)
    )
    ir = compile_bytes("pipeline.yaml", source.encode())
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    # as GitHub runs it: notify.yml with the caller's inputs
    notify = expand_rendered(files, ".github/workflows/deliver-web.yml")["jobs"]["notify"]
    who = next(s for s in notify["steps"] if s.get("id") == "who")
    assert json.loads(who["env"]["SLACK_USER_IDS"]) == {
        "hubot": "W0456EFGH",
        "octocat": "U0123ABCD",
    }
    # the caller's input, as the tests' expansion writes it into notify.yml's condition
    assert who["if"].removeprefix("${{ ").removesuffix(" }}") == (
        "contains(needs.*.result, 'failure')"
    )
    failed = next(s for s in notify["steps"] if "FAILED" in s.get("with", {}).get("payload", ""))
    assert "${{ steps.who.outputs.mention }}" in json.loads(failed["with"]["payload"])["text"]
    # the step itself: the actor and the head commit's author, mapped and deduplicated
    out = tmp_path / "out"
    out.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "SLACK_USER_IDS": who["env"]["SLACK_USER_IDS"],
        # what GitHub puts in AUTHORS for a push by octocat of alice's commit, and for a
        # bot; a login never holds a quote or a ';' (GitHub's rules), the script checks
        "AUTHORS": 'octocat alice octocat dependabot[bot] x";rm',
        "GITHUB_OUTPUT": str(out),
    }
    res = subprocess.run(
        ["bash", "-c", who["run"]], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert out.read_text() == "mention=<@U0123ABCD> alice dependabot\n"


def _pipeline(w: World, name: str) -> str:
    cp = w.client("codepipeline")
    iam = w.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": "codepipeline.amazonaws.com"}}],
    }  # fmt: skip
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = role["Role"]["Arn"]
    cp.create_pipeline(
        pipeline={
            "name": name,
            "roleArn": role_arn,
            "artifactStore": {"type": "S3", "location": "bucket"},
            "stages": [
                {"name": "Source", "actions": [{"name": "S", "actionTypeId": {
                    "category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"},
                    "outputArtifacts": [{"name": "src"}]}]},
                {"name": "Build", "actions": [{"name": "B", "actionTypeId": {
                    "category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                    "configuration": {"ProjectName": "p"}, "inputArtifacts": [{"name": "src"}]}]},
            ],
        }
    )  # fmt: skip
    return str(cp.start_pipeline_execution(name=name)["pipelineExecutionId"])


def test_a_failed_pipeline_alerts_through_the_topic(w: World, tmp_path: Path) -> None:
    """CodePipeline: the execution's commit (GetPipelineExecution), its author and
    committer on GitHub (with the token from Secrets Manager), a Chatbot custom
    notification in the thread of the execution's failure notification."""
    topic, queue = _queue_on_topic(w, "alert-events")
    w.client("secretsmanager").create_secret(
        Name="shop/github-status-token", SecretString="ghs_alert_token"
    )
    execution = _pipeline(w, "shop-web-production")
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = {
        "SLACK_USER_IDS": json.dumps({"octocat": "U0123ABCD"}),
        "PIPELINE": "shop-web-production",
        "EXECUTION_ID": execution,
        "REPOSITORY": "example/shop",
        "TOKEN_SECRET": "shop/github-status-token",
        "TOPIC_ARN": topic,
    }
    answers = {f"/repos/example/shop/commits/{sha}": {
        "author": {"login": "octocat"}, "committer": {"login": "web-flow"}}}  # fmt: skip
    with GitHub(answers) as gh:
        # moto's executions carry no artifact revision (moto 5.2.5,
        # codepipeline/models.py PipelineExecution.to_dict): nobody to name, still alerted
        plain = run(w, "failure-alert.sh", tmp_path, **env, GITHUB_API=gh.url)
        assert plain.returncode == 0, plain.stderr
        assert gh.seen == []
        (first,) = _messages(w, queue)
        assert first["content"]["title"] == "shop-web-production FAILED"
        assert first["metadata"]["threadId"] == execution  # under the FAILED notification
        # CodePipeline's answer for a GitHub source (its revisionId is the commit): only
        # that call is answered here, everything else goes to moto through the real CLI
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        real = shutil.which("aws", path=w.env["PATH"])
        answer = json.dumps(sha)
        (bin_dir / "aws").write_text(
            "#!/bin/sh\n"
            'if [ "$1 $2" = "codepipeline get-pipeline-execution" ]; then\n'
            f'  {real} "$@" >/dev/null || exit $?\n'  # the real CLI checks the call
            f"  echo {answer}\n"
            "  exit 0\n"
            "fi\n"
            f'exec {real} "$@"\n'
        )
        (bin_dir / "aws").chmod(0o755)
        res = run(w, "failure-alert.sh", tmp_path, path=str(bin_dir), **env, GITHUB_API=gh.url)
        assert res.returncode == 0, res.stderr
        assert gh.seen == [(f"/repos/example/shop/commits/{sha}", "Bearer ghs_alert_token")]
        assert "ghs_alert_token" not in res.stdout + res.stderr
    (message,) = _messages(w, queue)
    assert message["content"]["description"].startswith("<@U0123ABCD>: your change failed.")
    assert sha in message["content"]["description"]
    # a subscription filtering on failed statuses is not sent the alert twice over
    assert message["metadata"]["additionalContext"]["status"] == "failure-alert"


def test_the_failure_alert_project_starts_on_failed_executions_only() -> None:
    res = tf_blocks(TF / "alerts.tf")
    rule = json.loads(
        res["aws_cloudwatch_event_rule.failure_alert"]["event_pattern"].replace('\\"', '"')
    )
    assert rule["detail"] == {"pipeline": [{"prefix": "ecommerce-"}], "state": ["FAILED"]}
    project = res["aws_codebuild_project.failure_alert"]
    given = {v["name"] for v in project["environment"][0]["environment_variable"]}
    spec = yaml.safe_load(json.loads('"' + project["source"][0]["buildspec"] + '"'))
    given |= set(spec["env"]["variables"]) | {"PIPELINE", "EXECUTION_ID"}  # the overrides
    assert required_inputs("failure-alert.sh") <= given
    ids = next(
        v for v in project["environment"][0]["environment_variable"]
        if v["name"] == "SLACK_USER_IDS"
    )  # fmt: skip
    assert ids["value"] == "${jsonencode(var.slack_user_ids)}"
    acct = Account(TF, "123456789012")
    assert acct.can("failure_alert", "sns:Publish", acct.arn("aws_sns_topic.events"))
    token = acct.arn("aws_secretsmanager_secret.github_status_token")
    assert acct.can("failure_alert", "secretsmanager:GetSecretValue", token)
    other = acct.arn("aws_secretsmanager_secret.gitops_deploy_production")
    assert not acct.can("failure_alert", "secretsmanager:GetSecretValue", other)


@pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform binary")
def test_the_slack_user_ids_variable_takes_member_ids_only(tmp_path: Path) -> None:
    import hcl2

    from tests.conftest import hcl_norm

    source = (
        (REF / "pipeline.yaml")
        .read_text()
        .replace("    on: [failed, succeeded]\n", "    on: [failed, succeeded]\n" + USERS)
    )
    ir = compile_bytes("pipeline.yaml", source.encode())
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    alerts = files[f"{ir.output('terraform')}/alerts.tf"]
    variable = hcl_norm(hcl2.loads(alerts))["variable"][0]["slack_user_ids"]
    assert variable["default"] == {"octocat": "U0123ABCD", "hubot": "W0456EFGH"}
    block = alerts[: alerts.index("\n}\n") + 3]  # the variable block, as generated
    results = []
    for value in ('{a = "U0123ABCD", b = "W01"}', "{}", '{a = "u0123"}', '{a = "U0123 x"}'):
        (tmp_path / "main.tf").write_text(block)
        res = subprocess.run(
            ["terraform", "plan", "-input=false", "-no-color", f"-var=slack_user_ids={value}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(tmp_path),
                "TF_CLI_CONFIG_FILE": "/dev/null",
            },
        )
        refused = "maps GitHub logins to Slack member IDs" in res.stdout + res.stderr
        results.append((res.returncode, refused))
    assert results == [(0, False), (0, False), (1, True), (1, True)]


# -- 2. the GitHub Actions deliverer's metrics --------------------------------------------------


def test_each_deliver_workflow_reports_its_metrics_through_its_own_role() -> None:
    path = GHA / ".github/workflows/deliver-web.yml"
    raw = yaml.safe_load(path.read_text())
    wf = expand(path)  # as GitHub runs it: metrics.yml with the caller's inputs
    assert raw["jobs"]["metrics"]["uses"].endswith("/metrics.yml")
    job = wf["jobs"]["metrics"]
    assert job["if"] == "${{ always() && needs.route.outputs.any == 'true' }}"
    assert set(job["needs"]) >= {"route", "build", "deploy-production"}
    perms = {"actions": "read", "id-token": "write"}
    assert job["permissions"] == raw["jobs"]["metrics"]["permissions"] == perms
    role = job["steps"][0]["with"]["role-to-assume"]
    assert role == "arn:aws:iam::345678901234:role/storefront-github-metrics"
    put = job["steps"][1]
    assert required_inputs("workflow-metrics.sh") - {
        "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"
    } <= set(put["env"])  # fmt: skip
    deploys = json.loads(put["env"]["DEPLOYS"])
    assert deploys[2] == {
        "pipeline": "storefront-web-production",
        "job": raw["jobs"]["deploy-production"]["name"],  # the caller's: its called jobs'
        "targeted": "${{ needs.route.outputs.production }}",
        "result": "${{ needs.deploy-production.result }}",
    }
    # the role: these branches' pushes, metrics in the project's namespace, nothing else
    acct = Account(GHA / "infrastructure/terraform", "345678901234")
    ns = {"cloudwatch:namespace": "storefront/pipelines"}
    assert acct.can("github_metrics", "cloudwatch:PutMetricData", "*", **ns)
    other = {"cloudwatch:namespace": "AWS/EC2"}
    assert not acct.can("github_metrics", "cloudwatch:PutMetricData", "*", **other)
    oidc = (
        "Federated",
        "arn:aws:iam::345678901234:oidc-provider/token.actions.githubusercontent.com",
    )
    claims = {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    sub = "token.actions.githubusercontent.com:sub"
    repo = "example/storefront"
    for s, ok in (
        (github_subject(repo, "metrics.yml", "main"), True),
        (github_subject(repo, "metrics.yml", "feature/x"), True),
        (github_subject(repo, "metrics.yml", "experiment"), False),
        (github_subject(repo, "metrics.yml", "feature/a/b"), False),  # GitHub's * stops at /
        (github_subject(repo, "build.yml", "main"), False),  # another file's job
        (github_subject(repo, "metrics.yml", "experiment", called_at="main"), False),
        (github_subject(repo, "metrics.yml", "main", template=False), False),
    ):
        claims[sub] = s
        assert acct.may_assume("github_metrics", oidc, **claims) == ok, s
    # the same alarm and dashboard as CodePipeline delivery, on these metrics
    res = tf_blocks(GHA / "infrastructure/terraform/monitoring.tf")
    alarm = res["aws_cloudwatch_metric_alarm.failure_rate"]
    assert {q["metric"][0]["namespace"] for q in alarm["metric_query"] if "metric" in q} == {
        "storefront/pipelines"
    }
    board = json.loads(
        json.loads('"' + res["aws_cloudwatch_dashboard.pipelines"]["dashboard_body"] + '"')
    )
    searches = json.dumps(board)
    assert 'MetricName=\\"Duration\\"' in searches and 'MetricName=\\"StageDuration\\"' in searches


def _jobs(*jobs: tuple[str, str, str, str]) -> dict[str, Any]:
    return {
        "jobs": [
            {"name": n, "status": "completed", "conclusion": c, "started_at": s, "completed_at": e}
            for n, c, s, e in jobs
        ]
        + [{"name": "Pipeline metrics", "status": "in_progress", "conclusion": None,
            "started_at": "2026-12-01T10:20:00Z", "completed_at": None}]
    }  # fmt: skip


def test_the_metrics_of_a_run_land_in_cloudwatch(w: World, tmp_path: Path) -> None:
    api = "/repos/example/storefront/actions/runs/42/attempts/1"
    answers = {
        api: {"run_started_at": "2026-12-01T10:00:00Z"},
        api + "/jobs?per_page=100": _jobs(
            ("Choose environments", "success", "2026-12-01T10:00:05Z", "2026-12-01T10:00:15Z"),
            ("Build web", "success", "2026-12-01T10:01:00Z", "2026-12-01T10:05:00Z"),
            # a caller of deploy.yml: its called jobs, "<caller> / <called>" (GitHub docs,
            # "Reusing workflows"); the deploy's end is the last of them
            (
                "Deploy web to staging / Deploy web to staging",
                "success",
                "2026-12-01T10:06:00Z",
                "2026-12-01T10:12:00Z",
            ),
            (
                "Deploy web to staging / OWASP ZAP scan of staging",
                "failure",
                "2026-12-01T10:12:00Z",
                "2026-12-01T10:16:00Z",
            ),
            (
                "Deploy web to production / Deploy web to production",
                "skipped",
                "2026-12-01T10:06:00Z",
                "2026-12-01T10:06:00Z",
            ),
        ),
    }
    deploys = [
        {"pipeline": "storefront-web-staging", "job": "Deploy web to staging",
         "targeted": "true", "result": "failure"},
        {"pipeline": "storefront-web-production", "job": "Deploy web to production",
         "targeted": "false", "result": "skipped"},
    ]  # fmt: skip
    env = {
        "NAMESPACE": "storefront/pipelines",
        "DEPLOYS": json.dumps(deploys),
        "CANCELLED": "false",
        "GITHUB_TOKEN": "ghs_run_token",
        "GITHUB_REPOSITORY": "example/storefront",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "NOW": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with GitHub(answers) as gh:
        res = run(w, "workflow-metrics.sh", tmp_path, **env, GITHUB_API_URL=gh.url)
        assert res.returncode == 0, res.stderr
        assert {auth for _, auth in gh.seen} == {"Bearer ghs_run_token"}
        assert "ghs_run_token" not in res.stdout + res.stderr
    cw = w.client("cloudwatch")
    listed = cw.list_metrics(Namespace="storefront/pipelines")["Metrics"]
    got = sorted(
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
        for m in listed
    )
    staging = ("Pipeline", "storefront-web-staging")
    assert got == sorted(
        [
            ("Started", ()),
            ("Started", (staging,)),
            ("Failed", ()),
            ("Failed", (staging,)),
            ("Duration", (staging,)),
            ("StageFailed", (staging,)),
            *(
                ("StageDuration", (staging, ("Stage", stage)))
                for stage in (
                    "Choose environments",
                    "Build web",
                    "Deploy web to staging / Deploy web to staging",
                    "Deploy web to staging / OWASP ZAP scan of staging",
                )
            ),
        ]
    )  # production was not targeted: no execution of it
    now = datetime.now(UTC)
    duration = cw.get_metric_statistics(
        Namespace="storefront/pipelines",
        MetricName="Duration",
        Dimensions=[{"Name": "Pipeline", "Value": "storefront-web-staging"}],
        StartTime=now.replace(hour=0, minute=0, second=0),
        EndTime=now.replace(hour=23, minute=59, second=59),
        Period=86400,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in duration] == [960.0]  # 10:00:00 to 10:16:00
    # a cancelled run is no execution at all
    again = run(w, "workflow-metrics.sh", tmp_path, **{**env, "CANCELLED": "true"},
                GITHUB_API_URL="http://127.0.0.1:9")  # fmt: skip
    assert again.returncode == 0 and "cancelled" in again.stdout
