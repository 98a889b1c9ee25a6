"""The whole flow on GitHub Actions delivery (samples/storefront), issue 26 item 3.

Every scenario of :mod:`tests.rehearsal.scenarios` pushes to the application's bare
remote and runs the triggered ``deliver-<svc>.yml`` job by job (:mod:`.flow`): the real
AWS CLI against moto, real git (application and three GitOps remotes), Argo CD answering
from what GitOps records, GitHub's and SonarQube's APIs on loopback, each step as the
runner's uid 1001.  The story runs once for the module; each test reads its scenario's
audit rows (DynamoDB through the real AWS CLI) and notifications."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipecompile.compiler import compile_bytes
from pipecompile.insight.explain import explain_event
from tests.conftest import ROOT
from tests.harness.argocd import argocd_server
from tests.harness.cluster import GitOpsArgoCD, head_file, targets
from tests.harness.github_api import GitHubAPI, github_api_server
from tests.harness.moto import audit_table
from tests.harness.world import RUNNER_UID, World, world
from tests.iam_eval import Account
from tests.rehearsal.flow import App, GitHubDelivery, Run, git
from tests.rehearsal.iam_calls import denials, recorded, without
from tests.rehearsal.scenarios import Scenario, story

SAMPLE = ROOT / "samples/storefront"
SERVICES = {"web": "app.py", "payments": "services/payments/main.go"}
SCENARIOS = story("web", "development", ("staging", "production"), None)
TABLE = "storefront-deployments"


def aws(w: World, *args: str) -> Any:
    res = subprocess.run(
        [str(w.env["PATH"].split(":")[1] + "/aws"), *args, "--output", "json"],
        env=w.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout or "null")


def audit_rows(w: World, table: str = TABLE) -> list[dict[str, Any]]:
    """The audit table, read with the real AWS CLI (strings, the issue keys' list, and
    the recorded flag)."""
    items = aws(w, "dynamodb", "scan", "--table-name", table)["Items"]
    return [{k: _attribute(v) for k, v in item.items()} for item in items]


def _attribute(v: dict[str, Any]) -> Any:
    if "S" in v:
        return v["S"]
    if "BOOL" in v:
        return v["BOOL"]
    return [x["S"] for x in v["L"]]


def provision(w: World) -> None:
    """What the sample's Terraform creates (ecr.tf, kms.tf, audit.tf), via boto3."""
    ecr, kms, ddb = (w.client(n) for n in ("ecr", "kms", "dynamodb"))
    for svc in SERVICES:
        for repo in (f"storefront/{svc}", f"storefront/{svc}-release"):
            ecr.create_repository(
                repositoryName=repo,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
            )
    for alias in ("storefront-release-signing", "storefront-image-signing"):
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
    # the DAST passes (dast-mark.sh), as audit.tf declares the table
    ddb.create_table(**audit_table(SAMPLE, "promotions", "infrastructure/terraform"))


def bare(w: World, name: str, seed: Path | None = None, owner: int = RUNNER_UID) -> Path:
    """A bare remote (owned by ``owner``: the GitOps remotes by the runner's user, who
    pushes to them), seeded with one commit."""
    if seed is None:
        seed = w.base / "seeds" / name
        seed.mkdir(parents=True)
        (seed / "README").write_text(f"{name}\n")
        git(seed, "init", "-q", "-b", "main")
        git(seed, "add", ".")
        git(seed, "commit", "-qm", "seed")
    remote = w.base / "remotes" / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    w.chown_tree(remote, owner)
    return remote


def application(w: World) -> App:
    """The repository the sample describes: its generated files, web at the root (the
    Dockerfile there), payments in services/payments."""
    seed = w.base / "app"
    shutil.copytree(SAMPLE, seed, ignore=shutil.ignore_patterns(".pipecompile"))
    (seed / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY app.py /\n")
    (seed / "app.py").write_text("print('v0')\n")
    (seed / "requirements.txt").write_text("")
    (seed / "services/payments").mkdir(parents=True)
    (seed / "services/payments/Dockerfile").write_text("FROM golang:1.23\n")
    (seed / "services/payments/main.go").write_text("package main\n")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "initial")
    remote = bare(w, "app", seed, owner=0)  # the developer pushes, runners fetch
    return App(seed=seed, remote=remote, heads={"main": git(seed, "rev-parse", "HEAD")})


def play(
    d: GitHubDelivery,
    app: App,
    argocd: GitOpsArgoCD,
    w: World,
    s: Scenario,
    n: int,
    last: list[Run],
) -> list[Run]:
    argocd.aborted = {f"web-{s.abort}"} if s.abort else set()
    argocd.closed = {f"web-{s.closed}"} if s.closed else set()
    if s.unsign:

        def unsign(run: Run) -> None:
            ecr = w.client("ecr")
            for repo in ("storefront/web", "storefront/web-release"):
                tags = [
                    i["imageTag"]
                    for i in ecr.list_images(repositoryName=repo)["imageIds"]
                    if i.get("imageTag", "").endswith(".sig")
                ]
                if tags:
                    ecr.batch_delete_image(
                        repositoryName=repo, imageIds=[{"imageTag": t} for t in tags]
                    )

        d.hooks[f"deploy-{s.unsign}"] = unsign
    cancel = f"Wait until Argo CD reports web-{s.cancel} healthy" if s.cancel else None
    # the cancel point: the health wait's request to Argo CD, before it is answered
    argocd.on_request = (lambda _path: d.cancel()) if cancel else None
    if s.action == "rerun":
        return [d.rerun(r, s.branch, cancel_at=cancel) for r in last]
    if s.action.startswith("merge:"):
        sha, changed = app.merge(s.action.split(":", 1)[1], s.branch)
    else:
        names = list(SERVICES) if s.services == ("both",) else list(s.services)
        files = {
            SERVICES[svc]: f"// {s.name} {n}\n" if svc == "payments" else f"print({n})\n"
            for svc in names
        }
        sha, changed = app.push(s.branch, files, start=s.start)
    return d.push(s.branch, sha, changed, cancel_at=cancel)


@dataclass
class Storefront:
    """The delivery of samples/storefront in one world, ready for pushes: its GitOps
    remotes by URL, Argo CD answering from them, GitHub's API."""

    w: World
    app: App
    d: GitHubDelivery
    argocd: GitOpsArgoCD
    remotes: dict[str, Path]


@contextmanager
def storefront(
    w: World, environment_branches: dict[str, tuple[str, ...]] | None = None
) -> Iterator[Storefront]:
    """Provision what the Terraform creates, the application and GitOps remotes, and the
    loopback Argo CD and GitHub APIs (stopped on leaving)."""
    provision(w)
    app = application(w)
    remotes = {
        f"git@github.com:example/{name}.git": bare(w, name)
        for name in (
            "storefront-gitops",
            "storefront-gitops-staging",
            "storefront-gitops-production",
        )
    }
    git_env = {"GIT_CONFIG_COUNT": str(1 + len(remotes))}
    for i, (url, path) in enumerate(remotes.items(), start=1):
        git_env[f"GIT_CONFIG_KEY_{i}"] = f"url.file://{path}.insteadOf"
        git_env[f"GIT_CONFIG_VALUE_{i}"] = url
    argocd = GitOpsArgoCD(
        apps_of=targets(SAMPLE / "deploy/argocd", SAMPLE / "deploy/apps", remotes)
    )
    api = GitHubAPI()
    with argocd_server(argocd) as argocd_url, github_api_server(api) as api_url:
        secrets = {
            "ARGOCD_SERVER": argocd_url,
            "ARGOCD_AUTH_TOKEN": argocd.token,
            "GITOPS_DEPLOY_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nrehearsal\n",
            "SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T/B/x",
            "SONAR_TOKEN": api.sonar_token,
            "SONAR_HOST_URL": api_url,
            "NVD_API_KEY": "nvd-key",
        }
        d = GitHubDelivery(
            w,
            SAMPLE / ".github/workflows",
            app,
            api,
            api_url=api_url,
            secrets=secrets,
            git_env=git_env,
            approval_environments={"staging", "production"},
            environment_branches=environment_branches,
        )
        yield Storefront(w, app, d, argocd, remotes)


def rehearse() -> dict[str, Any]:
    """Play every scenario in order; what each left: its runs, new audit rows and the
    GitOps image files afterwards."""
    with world() as w, storefront(w) as sf:
        results: dict[str, dict[str, Any]] = {}
        last: list[Run] = []
        for n, s in enumerate(SCENARIOS):
            before = audit_rows(w)
            runs = play(sf.d, sf.app, sf.argocd, w, s, n, last)
            new = [r for r in audit_rows(w) if r not in before]
            gitops = {
                env: head_file(
                    sf.remotes[f"git@github.com:example/storefront-gitops{suffix}.git"],
                    f"apps/web/{env}/image-{env}.yaml",
                )
                for env, suffix in (
                    ("development", ""),
                    ("staging", "-staging"),
                    ("production", "-production"),
                )
            }
            results[s.name] = {"runs": runs, "rows": new, "gitops": gitops}
            if runs:
                last = runs
        results["aws-calls"] = {"calls": recorded(w)}
        return results


def test_the_whole_flow_ends_as_documented_on_github_actions() -> None:
    """One test: the story runs once (a module fixture would run it once per xdist
    worker), then every scenario and every cross-scenario claim is checked."""
    res = rehearse()
    failed = []
    for scenario in SCENARIOS:
        try:
            check_scenario(res[scenario.name], scenario)
        except AssertionError as err:
            failed.append(f"{scenario.name}: {err}")
    for check in (
        release_then_main,
        hotfix_then_merge,
        failures_record_nothing,
        cancel_counts_nothing,
        every_aws_call_is_allowed,
        a_removed_permission_is_denied,
    ):
        try:
            check(res)
        except AssertionError as err:
            failed.append(f"{check.__name__}: {err}")
    assert not failed, "\n\n".join(failed)


def check_scenario(got: dict[str, Any], scenario: Scenario) -> None:
    runs: list[Run] = got["runs"]
    logs = "\n".join(line for r in runs for line in r.log)
    want = {}
    for (svc, env), outcome in scenario.rows.items():
        for s in SERVICES if svc == "*" else [svc]:
            want[(s, env)] = outcome
    assert {(r["service"], r["environment"]): r["outcome"] for r in got["rows"]} == want, logs[
        -6000:
    ]
    assert len(got["rows"]) == len(want)
    services = {r["service"] for r in got["rows"]} or set(scenario.services) - {"both"}
    if scenario.notified:
        assert len(runs) == len(services)
        for r in runs:
            final = r.notifications[-1]
            assert any(f in final for f in scenario.notified), (final, logs[-4000:])
    else:
        assert runs == []


def release_then_main(res: dict[str, Any]) -> None:
    staged = next(r for r in res["release"]["rows"])
    shipped = next(r for r in res["main"]["rows"])
    assert staged["image_tag"].startswith("rel-") and staged["image_digest"].startswith("sha256:")
    assert (shipped["image_tag"], shipped["image_digest"]) == (
        staged["image_tag"],
        staged["image_digest"],
    )
    assert staged["approver"] == "staging-approver"
    assert shipped["approver"] == "production-approver"
    assert "this source tree was built before; reusing it" in "\n".join(res["main"]["runs"][0].log)
    # the re-run deploys the same digest again, and signs nothing new
    again = next(r for r in res["rerun"]["rows"])
    assert again["image_digest"] == staged["image_digest"]
    assert "is already signed with" in "\n".join(res["rerun"]["runs"][0].log)
    feature = next(r for r in res["feature"]["rows"])
    assert feature["image_tag"].startswith("src-") and feature["approver"] == "none (no approval)"


def hotfix_then_merge(res: dict[str, Any]) -> None:
    fix = next(r for r in res["hotfix"]["rows"])
    merged = next(r for r in res["hotfix-merge"]["rows"])
    assert fix["environment"] == "staging" and fix["image_tag"].startswith("rel-")
    assert merged["image_digest"] == fix["image_digest"]
    assert fix["image_digest"] in (res["hotfix-merge"]["gitops"]["production"] or "")
    # what explain says of a hotfix is what ran: the environment that verified it, and
    # the production deploy its merge started
    ir = compile_bytes("pipeline.yaml", (SAMPLE / "pipeline.yaml").read_bytes())
    lines = explain_event(ir, "push", "hotfix/1.2.1")
    hotfix = next(line for line in lines if line.startswith("  hotfix: "))
    assert f"verified in {fix['environment']}" in hotfix
    (run,) = res["hotfix-merge"]["runs"]
    assert f"{run.workflow} job deploy-production" in hotfix
    assert run.results["deploy-production"] == "success"


def failures_record_nothing(res: dict[str, Any]) -> None:
    unsigned = next(r for r in res["unsigned"]["rows"])
    assert unsigned["image_digest"] not in (res["unsigned"]["gitops"]["development"] or "")
    logs = "\n".join(line for r in res["unsigned"]["runs"] for line in r.log)
    assert "no matching signatures" in logs
    closed = next(r for r in res["window"]["rows"])
    assert closed["image_digest"] not in (res["window"]["gitops"]["production"] or "")
    aborted = next(r for r in res["abort"]["rows"])
    notes = res["abort"]["runs"][0].notifications
    assert any("ABORTED and rolled back" in n and aborted["image_digest"] in n for n in notes)


def cancel_counts_nothing(res: dict[str, Any]) -> None:
    run = res["cancel"]["runs"][0]
    assert run.results["deploy-staging"] == "cancelled"
    # deploy.yml under the cancel (actions/runner v2.336.0, runner.py): the health wait
    # was signalled and ends cancelled; its always() steps ran with job.status cancelled
    # (the audit row says so), its failure() Slack step did not
    deploy = run.steps["deploy-staging"]
    assert (deploy["wait"]["outcome"], deploy["wait"]["conclusion"]) == ("cancelled", "cancelled")
    assert deploy["approver"]["conclusion"] == "success"
    assert "audit: web staging cancelled (approved by staging-approver)" in "\n".join(run.log)
    assert not any(n for n in run.notifications if "ABORTED" in n)
    assert run.results["notify"] == "success" and run.results["metrics"] == "success"
    assert "the run was cancelled: no execution to count" in "\n".join(run.log)


TERRAFORM = SAMPLE / "infrastructure/terraform"
ACCOUNT = "345678901234"  # the sample's account (pipeline.yaml aws.account_id)


def every_aws_call_is_allowed(res: dict[str, Any]) -> None:
    """Every AWS request of every job, evaluated against the generated policy of the role
    its configure-aws-credentials step assumed (iam.tf, monitoring.tf, reviews.tf)."""
    calls = res["aws-calls"]["calls"]
    assert calls, "the rehearsal recorded no AWS call"
    denied = denials(Account(TERRAFORM, ACCOUNT), calls)
    assert not denied, "\n".join(denied)


def a_removed_permission_is_denied(res: dict[str, Any]) -> None:
    """The check sees a real removal: production's deploy role without dynamodb:PutItem
    cannot write its audit row."""
    role = "storefront-deploy-production"
    acct = without(Account(TERRAFORM, ACCOUNT), role, "dynamodb:PutItem")
    denied = denials(acct, res["aws-calls"]["calls"])
    assert any(
        d.startswith("dynamodb:PutItem(TableName=storefront-deployments)")
        and f"role {role} lacks dynamodb:PutItem" in d
        for d in denied
    ), denied
