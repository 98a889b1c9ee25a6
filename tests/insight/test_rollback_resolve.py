"""rollback-resolve.sh against moto holding the table the generated audit.tf declares,
its rows written by audit-row.sh (the real scripts, the real AWS CLI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest

from pipecompile.targets.common import script_path
from tests.conftest import ROOT
from tests.harness.moto import audit_table, aws_env, moto_server

TOOLS = ROOT / ".venv-tools" / "bin"
REF = ROOT / "samples/ecommerce"
A, B, C, D = ("sha256:" + c * 64 for c in "abcd")
ROLE = "arn:aws:sts::123456789012:assumed-role/oncall/ana"  # who started the build


def run(script: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", script], env={**env, **extra}, capture_output=True,
                          text=True, check=False)  # fmt: skip


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_a_manual_rollback_resolves_only_digests_that_ran(tmp_path: Path) -> None:
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_table(**table)  # fmt: skip
        rows = [
            ("production", A, "succeeded"),
            ("production", B, "succeeded"),
            ("production", C, "failed"),  # after B: B still runs
            ("staging", D, "succeeded"),  # another environment's
        ]
        for n, (environment, digest, outcome) in enumerate(rows):
            (tmp_path / f"o{n}").write_text(f"outcome={outcome}\n")
            res = run(str(script_path("audit-row.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT=environment, COMMIT=f"c{n}", RUN=f"r{n}",
                      OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST=digest,
                      IMAGE_TAG=f"rel-{n}")  # fmt: skip
            assert res.returncode == 0, res.stderr

        def resolve(digest: str) -> tuple[int, str, str]:
            out = tmp_path / f"image-{digest[-4:]}.env"
            res = run(str(script_path("rollback-resolve.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", DIGEST=digest, IMAGE_ENV=str(out))  # fmt: skip
            return res.returncode, out.read_text() if out.exists() else "", res.stderr

        # previous: the succeeded digest before the one running (B), not the failed C
        assert resolve("previous")[:2] == (
            0,
            f"IMAGE_TAG=rel-0\nIMAGE_DIGEST={A}\nROLLBACK_COMMIT=c0\nROLLBACK_ISSUES=\n",
        )
        assert resolve(B)[:2] == (
            0,
            f"IMAGE_TAG=rel-1\nIMAGE_DIGEST={B}\nROLLBACK_COMMIT=c1\nROLLBACK_ISSUES=\n",
        )
        for never in (C, D):  # failed here; ran only in staging
            code, written, err = resolve(never)
            assert code == 1 and written == "" and "never deployed successfully" in err
    check = subprocess.run(["shellcheck", str(script_path("rollback-resolve.sh"))])
    assert check.returncode == 0


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_previous_walks_back_one_step_per_rollback(tmp_path: Path) -> None:
    """Rollbacks in a row walk back (README, "Manual rollback"): after deploys A, B, C
    "previous" is B; once B is back, "previous" is A, not B again; a deploy D after a
    rollback to B makes "previous" B; a rollback whose own rollout was aborted, a failed
    deploy, change nothing."""
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_table(**table)  # fmt: skip
        commits = {A: "a" * 40, B: "b" * 40, C: "c" * 40, D: "d" * 40}
        n = 0

        def write(digest: str, written: str, reason: str = "") -> None:
            nonlocal n
            n += 1
            (tmp_path / f"o{n}").write_text(written)
            extra = {"ROLLBACK_REASON": reason, "ACTOR": "oncall"} if reason else {}
            res = run(str(script_path("audit-row.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", COMMIT=commits[digest], RUN=f"r{n:02d}",
                      OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST=digest,
                      IMAGE_TAG=f"tag-{digest[-1]}", **extra)  # fmt: skip
            assert res.returncode == 0, res.stderr

        def previous() -> str:
            out = tmp_path / f"image-{n}.env"
            res = run(str(script_path("rollback-resolve.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", DIGEST="previous", IMAGE_ENV=str(out))  # fmt: skip
            if res.returncode:
                return "error: " + res.stderr
            values = dict(line.split("=", 1) for line in out.read_text().splitlines())
            assert values["ROLLBACK_COMMIT"] == commits[values["IMAGE_DIGEST"]]
            return values["IMAGE_DIGEST"]

        for digest in (A, B, C):
            write(digest, "outcome=succeeded\n")
        assert previous() == B
        write(B, "outcome=succeeded\n", "C breaks checkout")  # the first rollback: B runs
        assert previous() == A  # the second goes further back, not to B again
        # a rollback to A whose rollout aborted itself: B still runs
        write(A, "outcome=rolled-back\nreason=automatic: aborted\n", "B breaks too")
        assert previous() == A
        write(D, "outcome=succeeded\n")  # fixed forward on top of B
        write(C, "outcome=failed\n")  # a failed deploy: D still runs
        assert previous() == B
        write(B, "outcome=succeeded\n", "D breaks")
        write(A, "outcome=succeeded\n", "B breaks")
        assert previous().startswith("error: no succeeded deploy of order-service in production")


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
@pytest.mark.parametrize("ended", ["cancelled", "timed-out", "waiting-for-promotion"])
def test_a_deploy_that_recorded_its_digest_counts_as_live_however_it_ended(
    tmp_path: Path, ended: str
) -> None:
    """A deploy whose GitOps commit landed (gitops-record.sh wrote recorded=true) and that
    then ended cancelled, timed-out or waiting for a person's promotion left its digest in
    GitOps: Argo CD runs it, so "previous" is the digest before it, and the security review
    scans it. One that recorded nothing (it stopped before the commit) and one that
    recorded and then failed or aborted change nothing."""
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_table(**table)  # fmt: skip
        n = 0

        def write(digest: str, written: str, reason: str = "") -> None:
            nonlocal n
            n += 1
            (tmp_path / f"o{n}").write_text(written)
            extra = {"ROLLBACK_REASON": reason, "ACTOR": "oncall"} if reason else {}
            res = run(str(script_path("audit-row.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", COMMIT=digest[-1] * 40, RUN=f"r{n:02d}",
                      OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST=digest,
                      IMAGE_TAG=f"tag-{digest[-1]}", **extra)  # fmt: skip
            assert res.returncode == 0, res.stderr

        def resolve(digest: str = "previous") -> str:
            out = tmp_path / f"image-{n}-{digest[-4:]}.env"
            res = run(str(script_path("rollback-resolve.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", DIGEST=digest, IMAGE_ENV=str(out))  # fmt: skip
            if res.returncode:
                return "error: " + res.stderr
            return dict(line.split("=", 1) for line in out.read_text().splitlines())["IMAGE_DIGEST"]

        write(A, "recorded=true\noutcome=succeeded\n")
        write(B, f"recorded=true\noutcome={ended}\nreason=still progressing\n")
        assert resolve() == A  # B runs: the rollback undoes it
        # the rows written before the field (no recorded line): only succeeded counts
        write(C, f"outcome={ended}\n")
        assert resolve() == A
        write(C, "recorded=true\noutcome=failed\nreason=health Degraded\n")
        write(C, "recorded=true\noutcome=rolled-back\nreason=automatic: aborted\n")
        assert resolve() == A  # B still runs
        # a named digest must have run well: B never did
        assert "never deployed successfully" in resolve(B)
        # a manual rollback to A that timed out after its commit: A runs again, so the
        # stack is back where A was (nothing before it), not A-B with "previous" A
        write(A, "recorded=true\noutcome=timed-out\n", "B is slow")
        assert resolve().startswith("error: no succeeded deploy of order-service")
        rows = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="testing",
                            aws_secret_access_key="testing").scan(
            TableName=table["TableName"])["Items"]  # fmt: skip
    assert sum("recorded" in r for r in rows) == 5
    assert all(r["recorded"] == {"BOOL": True} for r in rows if "recorded" in r)


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_a_manual_rollback_row_records_its_reason_trigger_and_actor(tmp_path: Path) -> None:
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing",
                              aws_secret_access_key="testing")  # fmt: skip
        client.create_table(**table)
        cases = [  # (the wait's outcome file, the row's outcome and reason)
            ("outcome=succeeded\n", "rolled-back", "checkout errors since rel-1"),
            ("outcome=failed\nreason=health Degraded\n", "failed",
             "checkout errors since rel-1; health Degraded"),
        ]  # fmt: skip
        for n, (written, _, _) in enumerate(cases):
            (tmp_path / f"o{n}").write_text(written)
            res = run(str(script_path("audit-row.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", COMMIT="c", RUN=f"r{n}",
                      OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST=A, IMAGE_TAG="rel-0",
                      ROLLBACK_REASON="checkout errors since rel-1", ACTOR="octocat")  # fmt: skip
            assert res.returncode == 0, res.stderr
        # an ordinary deploy records neither
        (tmp_path / "o9").write_text("outcome=succeeded\n")
        res = run(str(script_path("audit-row.sh")), env, DEPLOYMENTS_TABLE=table["TableName"],
                  SERVICE="order-service", ENVIRONMENT="production", COMMIT="c", RUN="r9",
                  OUTCOME_FILE=str(tmp_path / "o9"), IMAGE_DIGEST=B)  # fmt: skip
        assert res.returncode == 0, res.stderr
        items = {i["run"]["S"]: i for i in client.scan(TableName=table["TableName"])["Items"]}
    for n, (_, outcome, reason) in enumerate(cases):
        row = items[f"r{n}"]
        assert row["outcome"]["S"] == outcome
        assert row["reason"]["S"] == reason
        assert (row["trigger"]["S"], row["actor"]["S"]) == ("manual", "octocat")
    assert items["r9"]["outcome"]["S"] == "succeeded"
    assert "trigger" not in items["r9"] and "reason" not in items["r9"]


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_a_rollback_row_carries_the_issue_keys_and_link_of_the_deploy_it_returns_to(
    tmp_path: Path,
) -> None:
    """The rollback's build seldom holds the rolled-back-to commit (a NO_SOURCE start-build,
    GitHub's one-commit checkout of the dispatching branch), so the message is not there to
    read: rollback-resolve.sh hands on the keys that deployment's row recorded and
    audit-row.sh records them (both orchestrators pass ROLLBACK_ISSUES as ISSUES), with
    the commit link; the file is sourced as the deploy buildspec sources it."""
    table = audit_table(REF)
    url = "https://github.com/acme/shop"
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing",
                              aws_secret_access_key="testing")  # fmt: skip
        client.create_table(**table)
        base = {**env, "DEPLOYMENTS_TABLE": table["TableName"], "SERVICE": "order-service",
                "ENVIRONMENT": "production", "REPOSITORY_URL": url}  # fmt: skip
        messages = ["#7 and SHOP-12: retry payments", "SHOP-13: faster checkout", ""]
        commits = ["a" * 40, "b" * 40, ""]  # the third deploy's row recorded no commit
        for n, (digest, message) in enumerate(zip((A, B, C), messages, strict=True)):
            (tmp_path / f"o{n}").write_text("outcome=succeeded\n")
            res = run(str(script_path("audit-row.sh")), base, COMMIT=commits[n], RUN=f"r{n}",
                      OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST=digest,
                      IMAGE_TAG=f"rel-{n}", COMMIT_MESSAGE=message)  # fmt: skip
            assert res.returncode == 0, res.stderr
        # the deploy buildspec's way: resolve, source the file, then the finally's facts
        facts = 'export COMMIT="${ROLLBACK_COMMIT:-}" ISSUES="${ROLLBACK_ISSUES:-}"'
        script = tmp_path / "rollback.sh"
        script.write_text(
            "set -e\n"
            f'bash "{script_path("rollback-resolve.sh")}"\n'
            f'set -a; . "$IMAGE_ENV"; set +a\n{facts}\n'
            f'bash "{script_path("audit-row.sh")}"\n'
        )
        for n, digest in enumerate((A, C)):  # C: its row has no commit to link
            (tmp_path / f"w{n}").write_text("outcome=succeeded\n")
            res = run(str(script), base, DIGEST=digest, IMAGE_ENV=str(tmp_path / f"e{n}"),
                      RUN=f"rollback-{n}", OUTCOME_FILE=str(tmp_path / f"w{n}"),
                      ROLLBACK_REASON="payments fail", ACTOR="ana")  # fmt: skip
            assert res.returncode == 0, res.stderr
        items = {i["run"]["S"]: i for i in client.scan(TableName=table["TableName"])["Items"]}
    assert "ROLLBACK_ISSUES=#7,SHOP-12\n" in (tmp_path / "e0").read_text()
    row = items["rollback-0"]
    assert (row["outcome"]["S"], row["commit"]["S"]) == ("rolled-back", commits[0])
    assert [i["S"] for i in row["issues"]["L"]] == ["#7", "SHOP-12"]
    assert row["issues"] == items["r0"]["issues"]
    assert row["commit_url"] == {"S": f"{url}/commit/{commits[0]}"}
    bare = items["rollback-1"]
    assert bare["issues"] == {"L": []} and "commit_url" not in bare


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_a_malformed_issue_key_in_the_audit_row_is_refused(tmp_path: Path) -> None:
    """ROLLBACK_ISSUES lands in a file the deploy buildspec sources: a row whose issue
    list holds anything but keys (written by hand, say) is refused, nothing written."""
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing",
                              aws_secret_access_key="testing")  # fmt: skip
        client.create_table(**table)
        for n, digest in enumerate((A, B)):
            item = {"stream": {"S": "production/order-service"},
                    "deployment": {"S": f"2026-01-0{n + 1}T00:00:00Z/r{n}"},
                    "deployed_at": {"S": f"2026-01-0{n + 1}T00:00:00Z"},
                    "image_digest": {"S": digest}, "image_tag": {"S": f"rel-{n}"},
                    "commit": {"S": "c" * 40}, "outcome": {"S": "succeeded"},
                    "issues": {"L": [{"S": "SHOP-1"}, {"S": "$(touch x)"}]}}  # fmt: skip
            client.put_item(TableName=table["TableName"], Item=item)
        out = tmp_path / "image.env"
        res = run(str(script_path("rollback-resolve.sh")), env,
                  DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                  ENVIRONMENT="production", DIGEST="previous", IMAGE_ENV=str(out))  # fmt: skip
    assert res.returncode == 1 and "issue keys are malformed" in res.stderr, res.stderr
    assert not out.exists()


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_the_deploy_buildspec_resolves_a_manual_rollback_before_it_deploys(
    tmp_path: Path,
) -> None:
    """CodePipeline delivery: explain --rollback starts the environment's deploy project
    with ROLLBACK_REASON and DIGEST; the buildspec's first commands (as CodeBuild runs
    them, one shell for the phase) resolve the digest, then the deploy's checks see it."""
    import yaml

    spec = yaml.safe_load((REF / "ci/codebuild/deploy.yml").read_text())
    commands = spec["phases"]["build"]["commands"]
    first = commands[: commands.index(next(c for c in commands if c.startswith("test -n")))]
    assert len(first) == 2
    table = audit_table(REF)
    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     ).create_table(**table)  # fmt: skip
        for n, digest in enumerate((A, B)):
            (tmp_path / f"o{n}").write_text("outcome=succeeded\n")
            res = run(str(script_path("audit-row.sh")), env,
                      DEPLOYMENTS_TABLE=table["TableName"], SERVICE="order-service",
                      ENVIRONMENT="production", COMMIT=f"c{n}", RUN=f"r{n}",
                      OUTCOME_FILE=str(tmp_path / f"o{n}"), IMAGE_DIGEST=digest,
                      IMAGE_TAG=f"rel-{n}")  # fmt: skip
            assert res.returncode == 0, res.stderr
        script = tmp_path / "phase.sh"
        probe = 'echo "$IMAGE_TAG $IMAGE_DIGEST chart=[$CHART_SOURCE] $ACTOR ${ROLLBACK_COMMIT:-}"'
        # /tmp/rollback.env is the build's own /tmp on CodeBuild; here a private copy
        body = "\n".join(first).replace("/tmp/rollback.env", str(tmp_path / "rollback.env"))
        script.write_text(f"set -e\n{body}\n{probe}\n")
        base = {**env, "DEPLOYMENTS_TABLE": table["TableName"], "SERVICE": "order-service",
                "ENVIRONMENT": "production", "CHART_SOURCE": "kubernetes/apps/_chart",
                "CODEBUILD_INITIATOR": ROLE}  # fmt: skip
        # who ran it is CodeBuild's CODEBUILD_INITIATOR (the caller's identity), never an
        # ACTOR the person starting the build passes as an override
        res = run(str(script), base, ROLLBACK_REASON="bad release", DIGEST="previous",
                  IMAGE_TAG="rollback", IMAGE_DIGEST="previous", ACTOR="someone-else")  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[-1] == (f"rel-0 {A} chart=[] {ROLE} c0")
        (tmp_path / "rollback.env").unlink()
        # an ordinary deploy: nothing resolved, nothing changed
        res = run(str(script), base, IMAGE_TAG="rel-1", IMAGE_DIGEST=B, ACTOR="")
        assert res.returncode == 0, res.stderr
        # (ACTOR is always the initiator; audit-row.sh records it for a rollback only)
        assert res.stdout.splitlines()[-1] == f"rel-1 {B} chart=[kubernetes/apps/_chart] {ROLE} "
        assert not (tmp_path / "rollback.env").exists()
        # a digest that never ran there: the build fails before any deploy step
        res = run(str(script), base, ROLLBACK_REASON="x", DIGEST=C, IMAGE_TAG="rollback",
                  IMAGE_DIGEST="previous")  # fmt: skip
        assert res.returncode != 0 and "never deployed successfully" in res.stderr


@pytest.mark.skipif(not (TOOLS / "aws").exists(), reason="scripts/test creates .venv-tools")
def test_a_codebuild_rollback_tells_the_topic_as_a_deploy_would(tmp_path: Path) -> None:
    """rollback-notify.sh (the deploy buildspec's finally, CodePipeline delivery): an AWS
    Chatbot custom notification with the deploy's environment and status, the reason and
    who started it; a closed sync window says so; a status the topic does not hear is
    not sent."""
    import json

    with moto_server() as endpoint:
        env = {"PATH": f"{TOOLS}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
               "LANG": "C.UTF-8", **aws_env(endpoint, "us-east-1")}  # fmt: skip
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1",
              "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # fmt: skip
        sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
        topic = sns.create_topic(Name="ecommerce-pipeline-events")["TopicArn"]
        queue = sqs.create_queue(QueueName="channel")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"],
                      Attributes={"RawMessageDelivery": "true"})  # fmt: skip

        def notify(written: str, events: str = "succeeded failed") -> str:
            (tmp_path / "outcome").write_text(written)
            res = run(str(script_path("rollback-notify.sh")), env, TOPIC_ARN=topic,
                      NOTIFY_EVENTS=events, SERVICE="order-service", ENVIRONMENT="production",
                      IMAGE_DIGEST=A, ROLLBACK_REASON="orders fail", ACTOR="oncall-ana",
                      OUTCOME_FILE=str(tmp_path / "outcome"), DEPLOY_STATUS="failed",
                      RUN="ecommerce-production-deploy:1234")  # fmt: skip
            assert res.returncode == 0, res.stderr
            return res.stdout

        notify("outcome=succeeded\n")
        notify("outcome=outside-sync-window\nreason=sync window closed\n")
        assert "not an event the topic hears" in notify("outcome=failed\n", "succeeded")
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        heard = [json.loads(m["Body"]) for m in got]
    ok, closed = heard  # the third was not sent
    for message, status in ((ok, "succeeded"), (closed, "failed")):
        context = message["metadata"]["additionalContext"]
        assert (context["environment"], context["status"]) == ("production", status)
        assert "Reason: orders fail. Started by oncall-ana." in message["content"]["description"]
    assert ok["content"]["title"] == (
        f"production: manual rollback of order-service succeeded: order-service runs {A} again"
    )
    assert "sync window closed" in closed["content"]["title"]
    check = subprocess.run(["shellcheck", str(script_path("rollback-notify.sh"))])
    assert check.returncode == 0


def test_each_codebuild_deploy_role_may_tell_the_topic_of_its_rollbacks() -> None:
    """The deploy project runs rollback-notify.sh as its own role: it may publish to the
    pipeline topic (encrypted with the project key: SNS asks KMS for a data key as the
    publisher) and to no other topic; the project hands the script the topic's ARN."""
    from tests.iam_eval import Account
    from tests.targets.test_compliance import tf_blocks

    tf = REF / "infrastructure/terraform/cicd"
    acct = Account(tf, "123456789012")
    topic = acct.arn("aws_sns_topic.events")
    key = acct.arn("aws_kms_key.cicd")
    projects = tf_blocks(tf / "codebuild.tf")
    for env in ("development", "testing", "staging", "production"):
        role = f"deploy_{env}"
        assert acct.can(role, "sns:Publish", topic)
        assert acct.can(role, "kms:GenerateDataKey", key)
        other = acct.arn("aws_sns_topic.approvals_production")
        assert not acct.can(role, "sns:Publish", other)
        variables = projects[f"aws_codebuild_project.deploy-{env}"]["environment"][0]
        given = {v["name"]: v["value"] for v in variables["environment_variable"]}
        assert given["TOPIC_ARN"] == "${aws_sns_topic.events.arn}"


@pytest.mark.parametrize(
    ("extra", "said"),
    [({"ROLLBACK_REASON": "orders fail"}, "none (manual rollback)"), ({}, "unknown")],
)
def test_a_manual_rollback_in_an_approval_environment_names_no_approver(
    tmp_path: Path, extra: dict[str, str], said: str
) -> None:
    """explain --rollback's start-build runs the deploy project outside any pipeline
    execution: PIPELINE_EXECUTION_ID is unset (its #{codepipeline...} value is the
    pipeline's to resolve), and under set -u the lookup used to die on it."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
           "PIPELINE_NAME": "ecommerce-product-service-production", **extra}  # fmt: skip
    res = run(str(script_path("approver-codepipeline.sh")), env)
    assert (res.returncode, res.stdout, res.stderr) == (0, said + "\n", "")
