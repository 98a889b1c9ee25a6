"""The whole flow on CodePipeline delivery (samples/ecommerce), issue 26 item 3.

The story of :mod:`tests.rehearsal.scenarios`, each push through the pipelines the
generated Terraform defines (:mod:`.flow_codepipeline`): CodeBuild's phases of each
action's buildspec as root, the real AWS CLI against moto (ECR, KMS, DynamoDB, Secrets
Manager), one bare GitOps remote (the reference's single repository), Argo CD answering
from it, the execution's notification through the generated EventBridge rules.

Not played here: a closed sync window (no environment of the reference has one) and a
cancel (how a stopped CodeBuild deploy ends is not modelled yet)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from typing import Any

from tests.conftest import ROOT
from tests.harness.argocd import argocd_server
from tests.harness.cluster import GitOpsArgoCD, targets
from tests.harness.codepipeline_api import CodePipelineAPI, codepipeline_api_server
from tests.harness.github_api import GitHubAPI, github_api_server
from tests.harness.moto import audit_table
from tests.harness.world import World, world
from tests.rehearsal.flow import App, git
from tests.rehearsal.flow_codepipeline import CodePipelineDelivery, Execution, approver
from tests.rehearsal.scenarios import Scenario, story
from tests.rehearsal.test_flow_github import audit_rows, bare

SAMPLE = ROOT / "samples/ecommerce"
SERVICES = {"product-service": "index.js", "order-service": "services/order/index.js"}
TABLE = "ecommerce-deployments"
APP_COMMANDS = {"npm ci", "npm run lint", "npm run test"}
APPROVALS = {"staging", "production"}  # the reference's approval environments
SCENARIOS = [
    replace(s, action="merge:release/1.4", closed="") if s.name == "abort" else s
    for s in story("product-service", "development", ("staging", "production"), "testing")
    if s.name not in ("window", "cancel")
]


def provision(w: World, secrets: dict[str, dict[str, str]]) -> None:
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
    ddb.create_table(**audit_table(SAMPLE, "promotions"))  # the DAST passes (dast-mark.sh)
    for name, value in secrets.items():
        sm.create_secret(
            Name=name, SecretString=json.dumps(value) if isinstance(value, dict) else value
        )


def application(w: World) -> App:
    seed = w.base / "app"
    shutil.copytree(SAMPLE, seed, ignore=shutil.ignore_patterns(".pipecompile"))
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


def rehearse() -> dict[str, Any]:
    with world() as w:
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
                SAMPLE / "kubernetes/argocd",
                SAMPLE / "kubernetes/apps",
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
                secrets[f"ecommerce/{env}/gitops-credential"] = (
                    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                )
            provision(w, secrets)
            app = application(w)
            d = CodePipelineDelivery(
                w, SAMPLE, app, app_commands=APP_COMMANDS, env=git_env, approvals=approvals
            )
            results: dict[str, Any] = {}
            for n, s in enumerate(SCENARIOS):
                before = audit_rows(w, TABLE)
                runs = play(d, app, argocd, w, s, n)
                results[s.name] = {
                    "runs": runs,
                    "rows": [r for r in audit_rows(w, TABLE) if r not in before],
                }
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
    assert not failed, "\n\n".join(failed)
