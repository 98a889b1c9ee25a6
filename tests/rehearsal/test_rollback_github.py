"""The generated manual rollback on GitHub Actions delivery (samples/storefront, issue 29
item 7): three deploys of web to development through deliver-web.yml, then rollback.yml
dispatched with a reason, job by job as :mod:`.flow` runs every workflow (the real AWS
CLI against moto, real git remotes, Argo CD answering from what GitOps records).  The
rollback goes through deploy.yml: the digest comes from the audit table, the signature
is verified, the GitOps commit and the health wait run, the audit row records the reason
and who ran it, and the channel hears the result."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.insight.environments import environment_requests
from tests.harness.cluster import head_file
from tests.harness.runner import Job
from tests.harness.world import world
from tests.rehearsal.test_flow_github import SAMPLE, audit_rows, storefront

IMAGE_FILE = "apps/web/development/image-development.yaml"
# what the dispatching branch changes after the last deploy: chart and values no deploy
# shipped (a rollback restores a digest, never the branch's chart or values)
BRANCH_CHANGES = {
    "README.md": "docs only\n",
    "deploy/apps/_chart/values.yaml": "# not deployed: the branch's own chart\n",
    "deploy/apps/web/values-development.yaml": "replicaCount: 9\n",
}


def gitops_tree(remote: Path, folder: str) -> dict[str, str]:
    """Each file under ``folder`` at the GitOps repository's head: its blob."""
    listing = subprocess.run(
        ["git", "-c", "safe.directory=*", "ls-tree", "-r", "HEAD", folder],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        path: line.split()[2] for line in listing.splitlines() for path in [line.split("\t")[1]]
    }


def branch_policies() -> dict[str, tuple[str, ...]]:
    """Each GitHub environment's deployment branch policy, as the requests ``explain``
    prints define it (insight/environments.py): the environments without one admit any
    branch."""
    ir = compile_bytes("pipeline.yaml", (SAMPLE / "pipeline.yaml").read_bytes())
    out: dict[str, tuple[str, ...]] = {}
    for req in environment_requests(ir):
        parts = req["path"].split("/")
        if len(parts) == 2 and req["body"]["deployment_branch_policy"] is not None:
            out.setdefault(parts[1], ())
        elif len(parts) == 3:
            out[parts[1]] += (req["body"]["name"],)
    return out


def rehearse_rollback(digest: str | None, rollbacks: int = 1) -> dict[str, Any]:
    with world() as w, storefront(w, environment_branches=branch_policies()) as sf:
        app, d = sf.app, sf.d
        gitops = sf.remotes["git@github.com:example/storefront-gitops.git"]
        deploys, commits = [], []
        for n in (1, 2, 3):
            sha, changed = app.push(
                "feature/checkout", {"app.py": f"print({n})\n"}, message=f"SHOP-{n}: step {n}"
            )
            runs = d.push("feature/checkout", sha, changed)
            assert [r.results.get("deploy-development") for r in runs] == ["success"], [
                r.log for r in runs
            ]
            deploys.append(head_file(gitops, IMAGE_FILE))
            commits.append(sha)
        # the dispatching branch moves on: its head is no deployment's commit, and its
        # chart and values differ from what GitOps holds
        app.push("feature/checkout", BRANCH_CHANGES)
        tree = gitops_tree(gitops, "apps/web/development")
        before = audit_rows(w)
        inputs = {
            "service": "web",
            "environment": "development",
            "reason": "checkout errors since the third deploy",
            "digest": digest or "",
        }
        runs, after = [], []
        for _ in range(rollbacks):
            runs.append(
                d.run(
                    "rollback.yml",
                    "feature/checkout",
                    app.heads["feature/checkout"],
                    inputs=inputs,
                    actor="oncall",
                )
            )
            after.append(head_file(gitops, IMAGE_FILE))
        trees = gitops_tree(gitops, "apps/web/development")
        rows = [r for r in audit_rows(w) if r not in before]
        return {
            "before": before,
            "rows": sorted(rows, key=lambda r: r["deployment"]),
            "run": runs[0],
            "runs": runs,
            "deploys": deploys,
            "commits": commits,
            "after": after[0],
            "afters": after,
            "tree": tree,
            "trees": trees,
        }


def _digest(image_file: str) -> str:
    return next(line.split('"')[1] for line in image_file.splitlines() if "digest:" in line)


def test_a_manual_rollback_redeploys_the_previous_digest_and_records_why() -> None:
    res = rehearse_rollback(None)  # the default: previous
    run = res["run"]
    assert run.results["rollback"] == "success", "\n".join(run.log)
    first, second, third = (_digest(f) for f in res["deploys"])
    assert len({first, second, third}) == 3
    # the GitOps repository runs the second digest again (the deploy path's commit)
    assert _digest(res["after"]) == second
    assert "signature verified" in "\n".join(run.log)
    # only the image file changed: the chart and values stay the last deploy's, not the
    # dispatching branch's (DeliveryPlan.rollback, as on CodePipeline)
    changed = {
        p
        for p in res["tree"].keys() | res["trees"].keys()
        if res["tree"].get(p) != res["trees"].get(p)
    }
    assert changed == {IMAGE_FILE}, changed
    assert "apps/web/development/values-development.yaml" in res["trees"]
    (row,) = res["rows"]
    assert row["stream"] == "development/web"
    assert row["image_digest"] == second
    assert row["outcome"] == "rolled-back"
    assert row["reason"] == "checkout errors since the third deploy"
    assert (row["trigger"], row["actor"]) == ("manual", "oncall")
    # the commit is the rolled-back-to deployment's, not the dispatching branch's head
    assert row["commit"] == res["commits"][1]
    assert row["commit_url"].endswith("/commit/" + res["commits"][1])
    # its issue keys, as that deployment's row has them: the rollback's checkout (one
    # commit, the dispatching branch's head) does not hold the message to read them from
    assert row["issues"] == ["SHOP-2"]
    (deployed,) = [r for r in res["before"] if r["commit"] == res["commits"][1]]
    assert deployed["issues"] == row["issues"]
    # the channel of a development deploy (notifications-dev: feature branches), which
    # GitHub lets a job of feature/checkout use; the release tier's refuses it
    assert run.results["notify"] == "success", "\n".join(run.log)
    (message,) = run.notifications
    assert message.startswith("Manual rollback of web in development: success, by oncall: ")
    assert "checkout errors since the third deploy" in message


def test_two_previous_rollbacks_in_a_row_walk_back() -> None:
    """The second "previous" goes one step further back (README, "Manual rollback"): not
    to the digest the first rollback restored."""
    res = rehearse_rollback(None, rollbacks=2)
    first, second, third = (_digest(f) for f in res["deploys"])
    assert third not in (first, second)
    for run in res["runs"]:
        assert run.results["rollback"] == "success", "\n".join(run.log)
    assert [_digest(f) for f in res["afters"]] == [second, first]
    assert [(r["image_digest"], r["outcome"], r["commit"]) for r in res["rows"]] == [
        (second, "rolled-back", res["commits"][1]),
        (first, "rolled-back", res["commits"][0]),
    ]


def test_a_rollback_refuses_a_digest_that_never_ran_there() -> None:
    res = rehearse_rollback("sha256:" + "0" * 64)
    run = res["run"]
    assert run.results["rollback"] == "failure"
    assert "never deployed successfully to development" in "\n".join(run.log)
    assert _digest(res["after"]) == _digest(res["deploys"][2])  # nothing redeployed
    (row,) = res["rows"]  # the attempt is recorded, as a failure, with its reason
    assert row["outcome"] == "failed"
    assert row["reason"] == "checkout errors since the third deploy"
    (message,) = run.notifications
    assert "Manual rollback of web in development: failure" in message


def test_a_rollback_row_records_the_rolled_back_to_commit_never_the_branch_head() -> None:
    """deploy.yml's audit step as the runner evaluates it: a deploy records github.sha;
    a rollback the rolled-back-to deployment's commit, and nothing when that row has none
    (a row recorded by hand): never the dispatching branch's head, which would add a
    commit_url to a commit that was not deployed (trace of the rollback rows)."""
    workflow = yaml.safe_load((SAMPLE / ".github/workflows/deploy.yml").read_text())
    (commit,) = [
        s["env"]["COMMIT"]
        for job in workflow["jobs"].values()
        for s in job.get("steps", [])
        if "ROLLBACK_REASON" in s.get("env", {})
    ]
    head = "f" * 40

    def value(reason: str, rolled_back_to: str) -> str:
        job = Job(
            contexts={
                "inputs": {"rollback_reason": reason},
                "github": {"sha": head},
            },
            workdir=Path("/nonexistent"),
            run_as=subprocess.run,
            temp=Path("/nonexistent"),
            steps={"rollback": {"outputs": {"ROLLBACK_COMMIT": rolled_back_to}}},
        )
        return job.substitute(commit)

    assert value("", "") == head  # a deploy
    assert value("bad canary", "a" * 40) == "a" * 40
    assert value("bad canary", "") == ""
