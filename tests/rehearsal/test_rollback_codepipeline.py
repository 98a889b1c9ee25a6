"""The manual rollback on CodePipeline delivery (samples/ecommerce, issue 29 item 7): two
deploys of product-service to development through the generated pipeline, then the
start-build ``explain --rollback`` prints, its overrides given to the environment's
deploy project as :mod:`.flow_codepipeline` runs a CodeBuild build (the buildspec's
phases as root, the real AWS CLI against moto, the real GitOps remote, Argo CD answering
from it).  The deploy project resolves the digest from the audit table and redeploys it;
the row records the reason, who started the build (its caller, CODEBUILD_INITIATOR, not
an override) and the commit of the deployment it returned to; the pipeline topic hears
the outcome as it hears a deploy's.  The build runs as a start-build with NO_SOURCE does:
no checkout, no CODEBUILD_RESOLVED_SOURCE_VERSION (CHART_SOURCE empty: only the image
file changes).  The branch the pipeline reads has changed its chart and values since the
last deploy: the rollback's GitOps commit changes only the image file, also when the
start-build is given that branch as its source instead of NO_SOURCE."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.insight.rollback import rollback_commands
from tests.harness.cluster import head_file
from tests.harness.world import world
from tests.rehearsal.flow_codepipeline import Execution
from tests.rehearsal.test_flow_codepipeline import SAMPLE, SERVICES, TABLE, ecommerce
from tests.rehearsal.test_flow_github import audit_rows
from tests.rehearsal.test_rollback_github import gitops_tree

FOLDER = "kubernetes/apps/product-service/development"
IMAGE_FILE = f"{FOLDER}/image-development.yaml"
# what the branch changes after the last deploy: chart and values no deploy shipped (a
# rollback restores a digest, never the branch's chart or values)
BRANCH_CHANGES = {
    "kubernetes/apps/_chart/values.yaml": "# not deployed: the branch's own chart\n",
    "kubernetes/apps/product-service/values-development.yaml": "replicaCount: 9\n",
}
# a comma (the CLI shorthand's separator), quotes of both kinds and a $ (the shell's)
REASON = """orders fail, since the "second" deploy's $PATH change"""
STARTED_BY = "oncall-ana"  # the IAM user who runs the printed start-build


def _overrides() -> list[tuple[str, str, str]]:
    """The printed start-build's --environment-variables-override, REASON filled in: the
    printed lines run in bash (the real jq builds the JSON), with ``aws`` a function that
    prints its arguments, so the reason's comma and quotes meet the real quoting."""
    ir = compile_bytes("pipeline.yaml", (SAMPLE / "pipeline.yaml").read_bytes())
    text = "\n".join(rollback_commands(ir, "product-service", "development"))
    block = text[text.index("   REASON=") : text.index("(the project's own")]
    lines = block.splitlines()
    assert lines[0].startswith("   REASON='<why>'")
    script = "\n".join(
        [
            "set -euo pipefail",
            """aws() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }""",
            f"REASON={shlex.quote(REASON)}",
            *lines[1:],
        ]
    )
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    words = json.loads(run.stdout)
    assert words[:2] == ["codebuild", "start-build"]
    assert words[words.index("--project-name") + 1] == "ecommerce-development-deploy"
    assert words[words.index("--source-type-override") + 1] == "NO_SOURCE"
    (given,) = words[words.index("--environment-variables-override") + 1 :]
    # the AWS CLI's JSON form of the list (aws codebuild start-build help: "JSON Syntax")
    out = []
    for item in json.loads(given):
        assert set(item) == {"name", "value", "type"}, item
        out.append((item["name"], item["value"], item["type"]))
    assert ("ROLLBACK_REASON", REASON, "PLAINTEXT") in out
    return out


def _digest(image_file: str) -> str:
    return next(line.split('"')[1] for line in image_file.splitlines() if "digest:" in line)


@pytest.mark.parametrize("source", [False, True], ids=["no-source", "branch-source"])
def test_the_printed_start_build_rolls_back_through_the_deploy_project(source: bool) -> None:
    """``source``: the start-build as printed (NO_SOURCE), or given the branch as its
    source: the GitOps commit changes the image file only, either way (CHART_SOURCE
    empty: with NO_SOURCE the deploy would otherwise find no chart, with the branch it
    would commit the branch's chart and values)."""
    overrides = _overrides()
    with world() as w, ecommerce(w) as ec:
        app, d, remote = ec.app, ec.d, ec.remote
        # the pipeline topic, and a queue subscribed to it that reads what it hears
        sns, sqs = w.client("sns"), w.client("sqs")
        topic = sns.create_topic(Name="ecommerce-pipeline-events")["TopicArn"]
        queue = sqs.create_queue(QueueName="channel")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        deployed, commits = [], []
        for n in (1, 2):
            sha, changed = app.push(
                "feature/orders",
                {SERVICES["product-service"]: f"// {n}\n"},
                message=f"SHOP-{n}: orders change {n} (#{10 + n})",
            )
            (ex,) = d.push("feature/orders", sha, changed)
            assert ex.state == "SUCCEEDED", "\n".join(ex.log)[-4000:]
            deployed.append(_digest(head_file(remote, IMAGE_FILE)))
            commits.append(sha)
        # the branch moves on: its head is no deployment's commit, and its chart and
        # values differ from what GitOps holds
        app.push("feature/orders", BRANCH_CHANGES)
        tree = gitops_tree(remote, FOLDER)
        before = audit_rows(w, TABLE)
        build = Execution("rollback", app.heads["feature/orders"], "manual")
        # someone adds an ACTOR override to the printed command: it names nobody
        forged = [*overrides, ("ACTOR", "someone-else", "PLAINTEXT")]
        ok, _ = d.codebuild(
            "deploy-development", forged, {}, build, started_by=STARTED_BY, source=source
        )
        rows = [r for r in audit_rows(w, TABLE) if r not in before]
        after = _digest(head_file(remote, IMAGE_FILE))
        trees = gitops_tree(remote, FOLDER)
        heard = [
            json.loads(m["Body"])
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        ]
    assert ok, "\n".join(build.log)[-4000:]
    first, second = deployed
    assert first != second and after == first
    # only the image file changed: the chart and values stay the last deploy's, not the
    # branch's (DeliveryPlan.rollback, as on GitHub)
    changed = {p for p in tree.keys() | trees.keys() if tree.get(p) != trees.get(p)}
    assert changed == {IMAGE_FILE}, changed
    assert f"{FOLDER}/values-development.yaml" in trees
    (row,) = rows
    assert (row["stream"], row["image_digest"], row["outcome"]) == (
        "development/product-service",
        first,
        "rolled-back",
    )
    assert row["reason"] == REASON and row["trigger"] == "manual"
    assert row["actor"] == STARTED_BY  # CODEBUILD_INITIATOR: who started the build
    # the commit of the deployment it returned to (a NO_SOURCE build resolves none), its
    # link and the issue keys its message names, as that deployment's row has them (the
    # build holds no checkout to read the message from)
    assert row["commit"] == commits[0]
    assert (
        row["commit_url"]
        == f"https://github.com/example/ecommerce-product-service/commit/{commits[0]}"
    )
    assert row["issues"] == ["SHOP-1", "#11"]
    (deployed_row,) = [r for r in before if r["commit"] == commits[0]]
    assert (deployed_row["issues"], deployed_row["commit_url"]) == (
        row["issues"],
        row["commit_url"],
    )
    # the channel hears it as it hears a deploy to development, with the reason
    (message,) = heard
    assert message["metadata"]["additionalContext"]["environment"] == "development"
    assert message["metadata"]["additionalContext"]["status"] == "succeeded"
    assert message["content"]["title"].startswith(
        "development: manual rollback of product-service succeeded"
    )
    assert REASON in message["content"]["description"]
    assert STARTED_BY in message["content"]["description"]
