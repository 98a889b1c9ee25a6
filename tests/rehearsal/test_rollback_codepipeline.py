"""The manual rollback on CodePipeline delivery (samples/ecommerce, issue 29 item 7): two
deploys of product-service to development through the generated pipeline, then the
start-build ``explain --rollback`` prints, its overrides given to the environment's
deploy project as :mod:`.flow_codepipeline` runs a CodeBuild build (the buildspec's
phases as root, the real AWS CLI against moto, the real GitOps remote, Argo CD answering
from it).  The deploy project resolves the digest from the audit table and redeploys it;
the row records the reason.  The harness's build has a checkout; the real one (no
source) has none, which the buildspec's rollback commands make moot (CHART_SOURCE empty:
only the image file changes)."""

from __future__ import annotations

import re
import shlex

from pipecompile.compiler import compile_bytes
from pipecompile.insight.rollback import rollback_commands
from tests.harness.cluster import head_file
from tests.harness.world import world
from tests.rehearsal.flow_codepipeline import Execution
from tests.rehearsal.test_flow_codepipeline import SAMPLE, SERVICES, TABLE, ecommerce
from tests.rehearsal.test_flow_github import audit_rows

IMAGE_FILE = "kubernetes/apps/product-service/development/image-development.yaml"
REASON = "orders fail since the second deploy"


def _overrides() -> list[tuple[str, str, str]]:
    """The printed start-build's --environment-variables-override, REASON filled in."""
    ir = compile_bytes("pipeline.yaml", (SAMPLE / "pipeline.yaml").read_bytes())
    text = "\n".join(rollback_commands(ir, "product-service", "development"))
    command = text[text.index("aws codebuild start-build") : text.index("(the project's own")]
    words = shlex.split(command.replace("\\\n", " ").replace("$REASON", REASON))
    assert words[words.index("--project-name") + 1] == "ecommerce-development-deploy"
    assert words[words.index("--source-type-override") + 1] == "NO_SOURCE"
    start = words.index("--environment-variables-override") + 1
    out = []
    for word in words[start:]:
        m = re.fullmatch(r"name=(\w+),value=(.*)", word)
        assert m, word
        out.append((m[1], m[2], "PLAINTEXT"))
    return out


def _digest(image_file: str) -> str:
    return next(line.split('"')[1] for line in image_file.splitlines() if "digest:" in line)


def test_the_printed_start_build_rolls_back_through_the_deploy_project() -> None:
    overrides = _overrides()
    with world() as w, ecommerce(w) as ec:
        app, d, remote = ec.app, ec.d, ec.remote
        deployed = []
        for n in (1, 2):
            sha, changed = app.push("feature/orders", {SERVICES["product-service"]: f"// {n}\n"})
            (ex,) = d.push("feature/orders", sha, changed)
            assert ex.state == "SUCCEEDED", "\n".join(ex.log)[-4000:]
            deployed.append(_digest(head_file(remote, IMAGE_FILE)))
        before = audit_rows(w, TABLE)
        build = Execution("rollback", app.heads["feature/orders"], "manual")
        ok, _ = d.codebuild("deploy-development", overrides, {}, build)
        rows = [r for r in audit_rows(w, TABLE) if r not in before]
        after = _digest(head_file(remote, IMAGE_FILE))
    assert ok, "\n".join(build.log)[-4000:]
    first, second = deployed
    assert first != second and after == first
    (row,) = rows
    assert (row["stream"], row["image_digest"], row["outcome"]) == (
        "development/product-service",
        first,
        "rolled-back",
    )
    assert row["reason"] == REASON and row["trigger"] == "manual"
    assert row["actor"]  # CODEBUILD_INITIATOR: who started the build
