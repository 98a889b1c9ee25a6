"""The generated manual rollback on GitHub Actions delivery (samples/storefront, issue 29
item 7): two deploys of web to development through deliver-web.yml, then rollback.yml
dispatched with a reason, job by job as :mod:`.flow` runs every workflow (the real AWS
CLI against moto, real git remotes, Argo CD answering from what GitOps records).  The
rollback goes through deploy.yml: the digest comes from the audit table, the signature
is verified, the GitOps commit and the health wait run, the audit row records the reason
and who ran it, and the channel hears the result."""

from __future__ import annotations

from typing import Any

from tests.harness.cluster import head_file
from tests.harness.world import world
from tests.rehearsal.test_flow_github import audit_rows, storefront

IMAGE_FILE = "apps/web/development/image-development.yaml"


def rehearse_rollback(digest: str | None) -> dict[str, Any]:
    with world() as w, storefront(w) as sf:
        app, d = sf.app, sf.d
        gitops = sf.remotes["git@github.com:example/storefront-gitops.git"]
        deploys = []
        for n in (1, 2):
            sha, changed = app.push("feature/checkout", {"app.py": f"print({n})\n"})
            runs = d.push("feature/checkout", sha, changed)
            assert [r.results.get("deploy-development") for r in runs] == ["success"], [
                r.log for r in runs
            ]
            deploys.append(head_file(gitops, IMAGE_FILE))
        before = audit_rows(w)
        inputs = {
            "service": "web",
            "environment": "development",
            "reason": "checkout errors since the second deploy",
            "digest": digest or "",
        }
        run = d.run(
            "rollback.yml",
            "feature/checkout",
            app.heads["feature/checkout"],
            inputs=inputs,
            actor="oncall",
        )
        rows = [r for r in audit_rows(w) if r not in before]
        return {
            "before": before,
            "rows": rows,
            "run": run,
            "deploys": deploys,
            "after": head_file(gitops, IMAGE_FILE),
        }


def _digest(image_file: str) -> str:
    return next(line.split('"')[1] for line in image_file.splitlines() if "digest:" in line)


def test_a_manual_rollback_redeploys_the_previous_digest_and_records_why() -> None:
    res = rehearse_rollback(None)  # the default: previous
    run = res["run"]
    assert run.results["rollback"] == "success", "\n".join(run.log)
    first, second = (_digest(f) for f in res["deploys"])
    assert first != second
    # the GitOps repository runs the first digest again (the deploy path's commit)
    assert _digest(res["after"]) == first
    assert "signature verified" in "\n".join(run.log)
    (row,) = res["rows"]
    assert row["stream"] == "development/web"
    assert row["image_digest"] == first
    assert row["outcome"] == "rolled-back"
    assert row["reason"] == "checkout errors since the second deploy"
    assert (row["trigger"], row["actor"]) == ("manual", "oncall")
    (message,) = run.notifications
    assert message.startswith("Manual rollback of web in development: success, by oncall: ")
    assert "checkout errors since the second deploy" in message


def test_a_rollback_refuses_a_digest_that_never_ran_there() -> None:
    res = rehearse_rollback("sha256:" + "0" * 64)
    run = res["run"]
    assert run.results["rollback"] == "failure"
    assert "never deployed successfully to development" in "\n".join(run.log)
    assert _digest(res["after"]) == _digest(res["deploys"][1])  # nothing redeployed
    (row,) = res["rows"]  # the attempt is recorded, as a failure, with its reason
    assert row["outcome"] == "failed"
    assert row["reason"] == "checkout errors since the second deploy"
    (message,) = run.notifications
    assert "Manual rollback of web in development: failure" in message
