"""The whole flow on CodePipeline delivery (samples/ecommerce), issue 26 item 3.

The story of :mod:`tests.rehearsal.scenarios`, each push through the pipelines the
generated Terraform defines (:mod:`.flow_codepipeline`): CodeBuild's phases of each
action's buildspec as root, the real AWS CLI against moto (ECR, KMS, DynamoDB, Secrets
Manager), one bare GitOps remote (the reference's single repository), Argo CD answering
from it, the execution's notification through the generated EventBridge rules.

A cancel is the execution stopped while its deploy runs ("Stop and wait", CodePipeline
user guide, pipelines-stop.html: the running action completes and nothing after it
starts): the deploy records its own outcome, DAST does not run, and the FAILED/STOPPED
rule says STOPPED.  The reference has no sync window, so the closed window is played on
the reference with one more line, a production sync_window, built into the rehearsal's
own folder (:func:`window_sample`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.harness.argocd import argocd_server
from tests.harness.cluster import GitOpsArgoCD, head_file, targets
from tests.harness.codepipeline_api import CodePipelineAPI, codepipeline_api_server
from tests.harness.github_api import GitHubAPI, github_api_server
from tests.harness.moto import audit_table
from tests.harness.world import World, world
from tests.iam_eval import Account
from tests.rehearsal.flow import App, git
from tests.rehearsal.flow_codepipeline import CodePipelineDelivery, Execution, approver
from tests.rehearsal.iam_calls import denials, recorded, without
from tests.rehearsal.scenarios import Scenario, story
from tests.rehearsal.test_flow_github import audit_rows, bare

SAMPLE = ROOT / "samples/ecommerce"
SERVICES = {"product-service": "index.js", "order-service": "services/order/index.js"}
TABLE = "ecommerce-deployments"
APP_COMMANDS = {"npm ci", "npm run lint", "npm run test"}
APPROVALS = {"staging", "production"}  # the reference's approval environments
STORY = story("product-service", "development", ("staging", "production"), "testing")


def _on_codepipeline(s: Scenario) -> Scenario:
    if s.name == "abort":  # without the window scenario: release/1.4 reaches main here
        return replace(s, action="merge:release/1.4", closed="")
    if s.name == "cancel":  # Stop and wait: the deploy finishes as it would have
        return replace(s, rows={("product-service", "staging"): "succeeded"}, notified=("STOPPED",))
    return s


SCENARIOS = [_on_codepipeline(s) for s in STORY if s.name != "window"]
# on the reference with a production sync window (window_sample): staged, then closed
WINDOW_SCENARIOS = [s for s in STORY if s.name in ("window-release", "window")]
WINDOW = "    sync_window: {schedule: '0 9 * * 1-5', duration: 8h}\n"


def provision(w: World, secrets: dict[str, dict[str, str]], sample: Path = SAMPLE) -> None:
    ecr, kms, ddb, sm = (w.client(n) for n in ("ecr", "kms", "dynamodb", "secretsmanager"))
    for svc in SERVICES:
        for repo in (f"ecommerce/{svc}", f"ecommerce/{svc}-release"):
            ecr.create_repository(
                repositoryName=repo,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
            )
    for alias in ("ecommerce-release-signing", "ecommerce-image-signing"):
        key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_4096")["KeyMetadata"]
        kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key["KeyId"])
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "stream", "AttributeType": "S"},
            {"AttributeName": "deployment", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "stream", "KeyType": "HASH"},
            {"AttributeName": "deployment", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(**audit_table(sample, "promotions"))  # the DAST passes (dast-mark.sh)
    for name, value in secrets.items():
        sm.create_secret(
            Name=name, SecretString=json.dumps(value) if isinstance(value, dict) else value
        )


def application(w: World, sample: Path = SAMPLE) -> App:
    seed = w.base / "app"
    shutil.copytree(sample, seed, ignore=shutil.ignore_patterns(".pipecompile"))
    (seed / "Dockerfile").write_text("FROM node:20-slim\n")
    (seed / "index.js").write_text("// v0\n")
    (seed / "services/order").mkdir(parents=True)
    (seed / "services/order/Dockerfile").write_text("FROM node:20-slim\n")
    (seed / "services/order/index.js").write_text("// v0\n")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "initial")
    remote = bare(w, "app", seed, owner=0)
    return App(seed=seed, remote=remote, heads={"main": git(seed, "rev-parse", "HEAD")})


def play(
    d: CodePipelineDelivery, app: App, argocd: GitOpsArgoCD, w: World, s: Scenario, n: int
) -> list[Execution]:
    first = next(iter(SERVICES))
    argocd.aborted = {f"{first}-{s.abort}"} if s.abort else set()
    argocd.closed = {f"{first}-{s.closed}"} if s.closed else set()
    if s.cancel:  # asked while the deploy waits for its rollout: it completes all the same

        def stop(ex: Execution) -> None:
            ex.stop_requested = True

        d.hooks[s.cancel] = stop
    if s.unsign:

        def unsign(ex: Execution) -> None:
            ecr = w.client("ecr")
            for repo in (f"ecommerce/{first}", f"ecommerce/{first}-release"):
                ids = ecr.list_images(repositoryName=repo)["imageIds"]
                tags = [i["imageTag"] for i in ids if i.get("imageTag", "").endswith(".sig")]
                if tags:
                    ecr.batch_delete_image(
                        repositoryName=repo, imageIds=[{"imageTag": t} for t in tags]
                    )

        d.hooks[s.unsign] = unsign
    if s.action == "rerun":
        last = d.executions[-1]
        label = next(k for k, p in d.pipelines.items() if p["name"] == last.pipeline)
        return [d.run(label, last.sha)]
    if s.action.startswith("merge:"):
        sha, changed = app.merge(s.action.split(":", 1)[1], s.branch)
    else:
        names = list(SERVICES) if s.services == ("both",) else list(s.services)
        sha, changed = app.push(
            s.branch, {SERVICES[svc]: f"// {s.name} {n}\n" for svc in names}, start=s.start
        )
    return d.push(s.branch, sha, changed)


def window_sample(w: World) -> Path:
    """The reference with a production sync window (pipeline.yaml must stay the
    acceptance file), built by pipecompile into the rehearsal's folder."""
    sample = w.base / "ecommerce-window"
    sample.mkdir()
    text = (SAMPLE / "pipeline.yaml").read_text()  # the rest is what the build generates
    anchor = "    url: https://shop.example.com\n"
    assert text.count(anchor) == 1
    (sample / "pipeline.yaml").write_text(text.replace(anchor, anchor + WINDOW))
    cli = ROOT / ".venv/bin/pipecompile"
    subprocess.run([str(cli), "build", "-q", "-f", str(sample / "pipeline.yaml")], check=True)
    return sample


@dataclass
class Ecommerce:
    """The delivery of a sample (the reference, or a variant built from it) in one
    world, ready for pushes: its GitOps remote and Argo CD answering from it."""

    w: World
    app: App
    d: CodePipelineDelivery
    argocd: GitOpsArgoCD
    remote: Path


@contextmanager
def ecommerce(w: World, sample: Path = SAMPLE) -> Iterator[Ecommerce]:
    """Provision what the Terraform creates, the application and GitOps remotes, and the
    loopback Argo CD, GitHub/SonarQube and ListActionExecutions APIs (stopped on
    leaving)."""
    remote = bare(w, "ecommerce-infra", owner=0)
    git_env = {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_1": f"url.file://{remote}.insteadOf",
        "GIT_CONFIG_VALUE_1": "git@github.com:example/ecommerce-infra.git",
        "GIT_CONFIG_KEY_2": "safe.directory",
        "GIT_CONFIG_VALUE_2": "*",
    }
    argocd = GitOpsArgoCD(
        apps_of=targets(
            sample / "kubernetes/argocd",
            sample / "kubernetes/apps",
            {"git@github.com:example/ecommerce-infra.git": remote},
        )
    )
    api = GitHubAPI()
    approvals = CodePipelineAPI()  # moto serves no ListActionExecutions
    with (
        argocd_server(argocd) as argocd_url,
        github_api_server(api) as api_url,
        codepipeline_api_server(approvals, w.env["AWS_ENDPOINT_URL"]) as codepipeline_url,
    ):
        git_env["AWS_ENDPOINT_URL_CODEPIPELINE"] = codepipeline_url
        secrets: dict[str, Any] = {
            "ecommerce/sonarqube": {"host_url": api_url, "token": api.sonar_token},
            "ecommerce/sonarqube-release": {"host_url": api_url, "token": api.sonar_token},
            "ecommerce/nvd": {"api_key": "nvd-key"},
        }
        for env in ("development", "testing", "staging", "production"):
            secrets[f"ecommerce/{env}/argocd"] = {"server": argocd_url, "token": argocd.token}
            secrets[f"ecommerce/{env}/gitops-credential"] = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        provision(w, secrets, sample)
        app = application(w, sample)
        d = CodePipelineDelivery(
            w, sample, app, app_commands=APP_COMMANDS, env=git_env, approvals=approvals
        )
        yield Ecommerce(w, app, d, argocd, remote)


def rehearse(scenarios: list[Scenario] = SCENARIOS, *, with_window: bool = False) -> dict[str, Any]:
    with world() as w, ecommerce(w, window_sample(w) if with_window else SAMPLE) as ec:
        results: dict[str, Any] = {}
        for n, s in enumerate(scenarios):
            before = audit_rows(w, TABLE)
            runs = play(ec.d, ec.app, ec.argocd, w, s, n)
            promotions = w.client("dynamodb").scan(TableName="ecommerce-promotions")
            results[s.name] = {
                "runs": runs,
                "rows": [r for r in audit_rows(w, TABLE) if r not in before],
                # the digests DAST passed, and what production's image file records
                "promoted": {i["digest"]["S"] for i in promotions["Items"]},
                "gitops": head_file(
                    ec.remote, "kubernetes/apps/product-service/production/image-production.yaml"
                ),
            }
        assert ec.d.approvals is not None
        extra = ec.d.approvals.requests + ec.d.pipeline_calls
        results["aws-calls"] = {"calls": recorded(w, extra)}
        return results


def check_scenario(got: dict[str, Any], s: Scenario) -> None:
    runs: list[Execution] = got["runs"]
    logs = "\n".join(line for r in runs for line in r.log)
    want = {}
    for (svc, env), outcome in s.rows.items():
        for one in SERVICES if svc == "*" else [svc]:
            want[(one, env)] = outcome
    rows = {(r["service"], r["environment"]): r["outcome"] for r in got["rows"]}
    assert rows == want, logs[-6000:]
    # approver-codepipeline.sh asked ListActionExecutions for this execution's approval
    # (never the queued next execution's, the newest one)
    approvers = {(r["environment"], r["approver"]) for r in got["rows"]}
    assert approvers == {
        (env, approver(env) if env in APPROVALS else "none (no approval)") for _, env in want
    }, logs[-3000:]
    # issue 28: every execution that deployed signed in its Sign action first, in the
    # tier's sign project, and no build session signed (the build logs hold no cosign sign)
    for r in runs:
        stages = list(r.actions)
        if "Deploy" in stages:
            assert r.actions.get("Sign") == "succeeded", logs[-3000:]
            assert stages.index("Build") < stages.index("Sign") < stages.index("Deploy")
        for line in r.log:
            if line.startswith("== build-"):
                assert "Pushing signature to" not in line, line[-3000:]
    if s.notified:
        for r in runs:
            assert any(f.lower() in " ".join(r.notifications).lower() for f in s.notified), (
                r.notifications,
                logs[-3000:],
            )


def test_the_whole_flow_ends_as_documented_on_codepipeline() -> None:
    res = rehearse()
    failed = []
    for s in SCENARIOS:
        try:
            check_scenario(res[s.name], s)
        except AssertionError as err:
            failed.append(f"{s.name}: {err}")
    for check in (
        stopped_runs_nothing_after_the_deploy,
        every_aws_call_is_allowed,
        a_removed_permission_is_denied,
    ):
        try:
            check(res)
        except AssertionError as err:
            failed.append(f"{check.__name__}: {err}")
    assert not failed, "\n\n".join(failed)


def stopped_runs_nothing_after_the_deploy(res: dict[str, Any]) -> None:
    """Stop and wait: the deploy completed (its row, its digest in GitOps); the DAST
    stage never started, so nothing may promote this digest to production."""
    (ex,) = res["cancel"]["runs"]
    assert ex.state == "STOPPED"
    assert ex.actions == {
        "Build": "succeeded",
        "Sign": "succeeded",  # issue 28: signing is an action of its own, before the deploy
        "Approval": "succeeded",
        "Deploy": "succeeded",
    }
    (row,) = res["cancel"]["rows"]
    assert ex.notifications == [f"staging: {ex.pipeline} STOPPED"]
    assert row["image_digest"] not in res["cancel"]["promoted"]


def test_a_closed_sync_window_ends_as_documented_on_codepipeline() -> None:
    """Production outside its window: nothing reaches GitOps, the row says
    outside-sync-window, the notification FAILED (README, "How a release flows")."""
    res = rehearse(WINDOW_SCENARIOS, with_window=True)
    for s in WINDOW_SCENARIOS:
        check_scenario(res[s.name], s)
    (ex,) = res["window"]["runs"]
    assert ex.state == "FAILED" and ex.actions["Deploy"] == "failed"
    logs = "\n".join(ex.log)
    assert "production's sync window is closed" in logs, logs[-4000:]
    (row,) = res["window"]["rows"]
    assert row["image_digest"] not in (res["window"]["gitops"] or ""), res["window"]["gitops"]


CICD = SAMPLE / "infrastructure/terraform/cicd"
ACCOUNT = "123456789012"  # the sample's account (pipeline.yaml aws.account_id)


def every_aws_call_is_allowed(res: dict[str, Any]) -> None:
    """Every AWS request of every CodeBuild action, evaluated against the generated
    policy of its project's service role (codebuild.tf service_role, iam.tf)."""
    calls = res["aws-calls"]["calls"]
    assert calls, "the rehearsal recorded no AWS call"
    denied = denials(Account(CICD, ACCOUNT), calls)
    assert not denied, "\n".join(denied)


def a_removed_permission_is_denied(res: dict[str, Any]) -> None:
    """The check sees a real removal: the staging deploy role without
    codepipeline:ListActionExecutions cannot read who approved."""
    role = "ecommerce-codebuild-deploy-staging"
    acct = without(Account(CICD, ACCOUNT), role, "codepipeline:ListActionExecutions")
    denied = denials(acct, res["aws-calls"]["calls"])
    assert any(
        d.startswith("codepipeline:ListActionExecutions(pipelineName=ecommerce-")
        and f"role {role} lacks codepipeline:ListActionExecutions" in d
        for d in denied
    ), denied
