"""The release rehearsal (issue 26): the delivery scripts against the real tools' behaviour.

The real AWS CLI against moto in server mode (ECR, KMS, DynamoDB), real git with bare
remotes (a lost push race included), an Argo CD API on loopback, each script run as the
user that runs it (uid 1001 on GitHub-hosted runners, root on CodeBuild), docker and
cosign stubs that enforce the real tools' preconditions (tests/harness/stubs).  One moto
for the module: the slow part starts once, and the image is built once."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipecompile.targets.common import script_path
from tests.conftest import ROOT, terraform_blocks
from tests.harness.argocd import NEW_DIGEST, ArgoCD, application, argocd_server, deployment, rollout
from tests.harness.codepipeline_api import CodePipelineAPI, codepipeline_api_server
from tests.harness.moto import audit_table
from tests.harness.reusable import defaults_of, expand
from tests.harness.runner import Job
from tests.harness.world import CODEBUILD_UID, RUNNER_UID, Started, World, world
from tests.rehearsal.flow_codepipeline import approver

RELEASE_KEY = "awskms:///alias/shop-release-signing"
DEV_KEY = "awskms:///alias/shop-signing"
USERS = pytest.mark.parametrize("uid", [RUNNER_UID, CODEBUILD_UID], ids=["github", "codebuild"])


def sh(name: str) -> str:
    """Run the packaged script itself (the file the targets inline); REHEARSAL_SCRIPTS
    names another folder of them (to show that these tests fail on the scripts before
    the fixes of issue 26)."""
    folder = os.environ.get("REHEARSAL_SCRIPTS")
    return f'bash "{Path(folder) / name if folder else script_path(name)}"'


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    with world() as wd:
        # the account as terraform leaves it (boto3 here: the scripts use the real CLI)
        ecr, kms, ddb = (wd.client(n) for n in ("ecr", "kms", "dynamodb"))
        for repo in (
            "shop/web",
            "shop/payments",
            "storefront/payments",
            "storefront/payments-release",
        ):
            ecr.create_repository(
                repositoryName=repo,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
            )
        for alias in (RELEASE_KEY, DEV_KEY):
            key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_4096")["KeyMetadata"]
            kms.create_alias(AliasName=alias.removeprefix("awskms:///"), TargetKeyId=key["KeyId"])
        # keyed as the generated audit.tf declares it (stream, deployment)
        ddb.create_table(
            **{**audit_table(ROOT / "samples/ecommerce"), "TableName": "shop-deployments"}
        )
        yield wd


def app_repo(w: World, name: str, uid: int) -> Path:
    """A checkout of the application, owned by the runner user (actions/checkout)."""
    repo = w.workdir(name, uid)
    (repo / "services/payments").mkdir(parents=True)
    (repo / "Dockerfile").write_text("FROM scratch\n")
    (repo / "app.py").write_text("web\n")
    (repo / "services/payments/Dockerfile").write_text("FROM scratch\n")
    (repo / "services/payments/main.go").write_text("package main\n")
    ident = ["-c", "user.name=dev", "-c", "user.email=dev@example.com", "-c", "safe.directory=*"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "one"]):
        subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)
    w.chown_tree(repo, uid)
    return repo


def image_vars(w: World) -> dict[str, str]:
    return {
        "ECR_REGISTRY": w.registry,
        "ECR_REPOSITORY": "shop/payments",
        "IMAGE_URI": f"{w.registry}/shop/payments",
        "SERVICE_PATH": "services/payments",
        "DOCKERFILE": "services/payments/Dockerfile",
        "SERVICE": "payments",
    }


@pytest.fixture(scope="module")
def release(w: World) -> dict[str, str]:
    """The release build (staging's), signed with the release key, in one GitHub job."""
    repo = app_repo(w, "release", RUNNER_UID)
    home = w.home("release", RUNNER_UID)
    out = w.workdir("release-out", RUNNER_UID) / "image.env"
    env = {**image_vars(w), "IMAGE_ENV": str(out), "TAG_PREFIX": "rel"}
    res = w.run(sh("build-once.sh"), uid=RUNNER_UID, cwd=repo, home=home, **env)
    assert res.returncode == 0, res.stderr
    image = dict(line.split("=", 1) for line in out.read_text().split())
    assert image["IMAGE_TAG"].startswith("rel-")
    sign = w.run(
        sh("sign-once.sh"),
        uid=RUNNER_UID,
        cwd=repo,
        home=home,
        **env,
        **image,
        SIGNING_KEY=RELEASE_KEY,
    )
    assert sign.returncode == 0, sign.stderr
    return {**env, **image}


# -- the harness: the stubs refuse what the real tools refuse ----------------------------------


def test_the_stubs_refuse_what_the_real_tools_refuse(w: World) -> None:
    repo = app_repo(w, "stubs", RUNNER_UID)
    home = w.home("stubs", RUNNER_UID)
    uri = f"{w.registry}/shop/web"
    push = w.run(
        f"docker build --file Dockerfile --tag {uri}:x . && docker push {uri}:x",
        uid=RUNNER_UID,
        cwd=repo,
        home=home,
    )
    assert push.returncode == 1 and "no basic auth credentials" in push.stderr
    sign = w.run(
        f"cosign sign --yes --tlog-upload=false --key {DEV_KEY} {uri}@sha256:{'0' * 64}",
        uid=RUNNER_UID,
        cwd=repo,
        home=home,
    )
    assert sign.returncode == 1 and "UNAUTHORIZED" in sign.stderr
    reports = w.workdir("stubs-reports", RUNNER_UID)
    image = "owasp/dependency-check:12.1.0"
    dc = w.run(
        f"docker run --rm -v {reports}:/report:rw {image} --nvdApiKey k --out /report",
        uid=RUNNER_UID,
        cwd=repo,
        home=home,
    )
    assert dc.returncode == 1 and "not writable by uid 1000" in dc.stderr


# -- cosign's credentials: every path logs in --------------------------------------------------


def test_a_rebuild_that_reuses_the_image_still_signs_and_a_deploy_verifies(
    w: World, release: dict[str, str]
) -> None:
    # main after the merge: the same tree, so the build reuses staging's digest, built
    # nothing, and checks the release key's signature before it reuses it (as the release
    # tier's build is generated); cosign reads registry credentials only from the docker
    # config, so the reuse path logs in too
    repo = app_repo(w, "main", RUNNER_UID)
    home = w.home("main", RUNNER_UID)
    out = w.workdir("main-out", RUNNER_UID) / "image.env"
    env = {**image_vars(w), "IMAGE_ENV": str(out), "TAG_PREFIX": "rel"}
    env["REUSE_SIGNED_BY"] = RELEASE_KEY
    res = w.run(sh("build-once.sh"), uid=RUNNER_UID, cwd=repo, home=home, **env)
    assert res.returncode == 0 and "reusing it" in res.stdout, res.stderr
    image = dict(line.split("=", 1) for line in out.read_text().split())
    assert image["IMAGE_DIGEST"] == release["IMAGE_DIGEST"]
    sign = w.run(
        sh("sign-once.sh"),
        uid=RUNNER_UID,
        cwd=repo,
        home=home,
        **env,
        **image,
        SIGNING_KEY=RELEASE_KEY,
    )
    assert sign.returncode == 0 and "already signed" in sign.stdout, sign.stderr
    # the production deploy: a fresh job that built nothing logs in, then verifies
    deploy_home = w.home("deploy-production", RUNNER_UID)
    verify = w.run(
        f"{sh('ecr-login.sh')} && {sh('verify-signature.sh')}",
        uid=RUNNER_UID,
        cwd=repo,
        home=deploy_home,
        **release,
        SIGNING_KEYS=RELEASE_KEY,
    )
    assert verify.returncode == 0, verify.stderr
    assert f"signature verified with {RELEASE_KEY}" in verify.stdout


def test_a_failed_signature_check_says_why(w: World, release: dict[str, str]) -> None:
    home = w.home("wrong-key", CODEBUILD_UID)
    res = w.run(
        f"{sh('ecr-login.sh')} && {sh('verify-signature.sh')}",
        uid=CODEBUILD_UID,
        cwd=w.base,
        home=home,
        **release,
        SIGNING_KEYS=DEV_KEY,
    )
    assert res.returncode == 1
    assert "carries no signature this environment accepts" in res.stderr
    assert "no matching signatures" in res.stderr  # cosign's reason, no longer hidden


@USERS
def test_ecr_login_gives_cosign_the_registry_credentials(
    w: World, release: dict[str, str], uid: int
) -> None:
    """ecr-login.sh as the sign and verify steps run before them: in a fresh home cosign
    finds no credentials (the stub: docker config only, cosign v3.0.6
    cmd/cosign/cli/options/registry.go); after the login the real AWS CLI's ECR token is
    in the docker config (the stub: docker/cli v27.5.1 cli/command/registry/login.go)."""
    home = w.home(f"login-{uid}", uid)
    verify = {**release, "SIGNING_KEYS": RELEASE_KEY}
    before = w.run(sh("verify-signature.sh"), uid=uid, cwd=w.base, home=home, **verify)
    assert before.returncode == 1 and "UNAUTHORIZED" in before.stderr
    login = w.run(sh("ecr-login.sh"), uid=uid, cwd=w.base, home=home, ECR_REGISTRY=w.registry)
    assert login.returncode == 0, login.stderr
    assert login.stdout == f"logged in to {w.registry}\n"  # docker's own line goes nowhere
    config = json.loads((home / ".docker/config.json").read_text())
    assert list(config["auths"]) == [w.registry]
    after = w.run(sh("verify-signature.sh"), uid=uid, cwd=w.base, home=home, **verify)
    assert after.returncode == 0, after.stderr


def test_ecr_login_fails_when_aws_cannot_give_a_token(w: World) -> None:
    home = w.home("login-no-aws", RUNNER_UID)
    res = w.run(
        sh("ecr-login.sh"),
        uid=RUNNER_UID,
        cwd=w.base,
        home=home,
        ECR_REGISTRY=w.registry,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens: the CLI cannot connect
        AWS_MAX_ATTEMPTS="1",
    )
    assert res.returncode == 1
    assert not (home / ".docker/config.json").exists()


# -- the OWASP dependency check: mounts, NVD data, key ------------------------------------------


@USERS
def test_the_dependency_check_can_write_its_mounts_and_keeps_the_nvd_data(
    w: World, uid: int
) -> None:
    repo = app_repo(w, f"dc-{uid}", uid)
    home = w.home(f"dc-{uid}", uid)
    env = {
        "DEPENDENCY_CHECK_IMAGE": "owasp/dependency-check:12.1.0",
        "DC_PROJECT": "shop-payments",
        "SERVICE_PATH": "services/payments",
        "FAIL_CVSS": "9.0",
    }
    first = w.run(
        sh("dependency-check.sh"), uid=uid, cwd=repo, home=home, **env, NVD_API_KEY="nvd-key"
    )
    assert first.returncode == 0, first.stderr
    report = repo / "reports/dependency-check-report.xml"
    assert report.stat().st_uid == uid  # the runner can upload what the scan wrote
    # the next run restores the NVD data (actions/cache, CodeBuild's cache): no key needed
    again = w.run(sh("dependency-check.sh"), uid=uid, cwd=repo, home=home, **env)
    assert again.returncode == 0, again.stderr


@USERS
def test_the_dependency_check_passes_because_it_makes_its_mounts_as_the_runner(
    w: World, uid: int
) -> None:
    # without its mkdir the daemon creates reports/ and the NVD folder, root:root 0755
    # (moby v27.5.1 volume/mounts/mounts.go): the container, run as the runner's uid and
    # gid, cannot write them on GitHub (1001); as root on CodeBuild it can
    mkdir = 'mkdir -p reports "$HOME/.dependency-check"\n'
    script = script_path("dependency-check.sh").read_text()
    assert mkdir in script
    copy = w.workdir(f"dc-nomkdir-{uid}-script", 0) / "dependency-check.sh"
    copy.write_text(script.replace(mkdir, ""))
    repo = app_repo(w, f"dc-nomkdir-{uid}", uid)
    home = w.home(f"dc-nomkdir-{uid}", uid)
    env = {
        "DEPENDENCY_CHECK_IMAGE": "owasp/dependency-check:12.1.0",
        "DC_PROJECT": "shop-payments",
        "SERVICE_PATH": "services/payments",
        "FAIL_CVSS": "9.0",
        "NVD_API_KEY": "nvd-key",
    }
    res = w.run(f'bash "{copy}"', uid=uid, cwd=repo, home=home, **env)
    reports = repo / "reports"
    assert (reports.stat().st_uid, reports.stat().st_gid, reports.stat().st_mode & 0o777) == (
        0,
        0,
        0o755,
    )
    if uid == RUNNER_UID:
        assert res.returncode == 1
        assert f"/report ({reports}) is not writable by uid {uid}" in res.stderr
    else:
        assert res.returncode == 0, res.stderr
    # as generated (its own mkdir), the report belongs to the runner's uid and group
    repo = app_repo(w, f"dc-mkdir-{uid}", uid)
    home = w.home(f"dc-mkdir-{uid}", uid)
    res = w.run(sh("dependency-check.sh"), uid=uid, cwd=repo, home=home, **env)
    assert res.returncode == 0, res.stderr
    report = repo / "reports/dependency-check-report.xml"
    assert (report.stat().st_uid, report.stat().st_gid) == (uid, uid)


def test_both_orchestrators_give_the_dependency_check_its_key_and_cache() -> None:
    spec = yaml.safe_load((ROOT / "samples/ecommerce/ci/codebuild/build.yml").read_text())
    assert spec["env"]["secrets-manager"]["NVD_API_KEY"] == "ecommerce/nvd:api_key"
    assert "/root/.dependency-check/**/*" in spec["cache"]["paths"]
    iam = (ROOT / "samples/ecommerce/infrastructure/terraform/cicd/iam.tf").read_text()
    assert "aws_secretsmanager_secret.nvd.arn" in iam
    ci = expand(ROOT / "samples/storefront/.github/workflows/ci-web.yml")  # calls ci.yml
    steps = ci["jobs"]["validate"]["steps"]
    cache = next(s for s in steps if s["name"].startswith("Cache the NVD data"))
    check = next(i for i, s in enumerate(steps) if s["name"].startswith("OWASP dependency"))
    assert steps.index(cache) < check and cache["with"]["path"] == "~/.dependency-check"


def test_the_github_dependency_check_runs_at_the_workspace_under_the_jobs_default(
    w: World,
) -> None:
    # ci.yml's job sets defaults.run.working-directory to the service's folder; the runner
    # applies it to every run: step without its own (ScriptHandler.cs, actions/runner
    # v2.336.0), so the scan's own working-directory '.' is what puts reports/ where
    # "Upload reports" (path reports/, from the workspace) looks
    wf = expand(ROOT / "samples/storefront/.github/workflows/ci-payments.yml")
    step = next(
        s for s in wf["jobs"]["validate"]["steps"] if s["name"].startswith("OWASP dependency")
    )
    variants = {
        "as-generated": step,
        "without-its-own": {k: v for k, v in step.items() if k != "working-directory"},
    }
    folders = {}
    for label, scan in variants.items():
        repo = app_repo(w, f"dc-gha-{label}", RUNNER_UID)
        temp = w.workdir(f"dc-gha-{label}-temp", RUNNER_UID)
        home = w.home(f"dc-gha-{label}", RUNNER_UID)

        def run_as(
            script: str | list[str], started: Started = None, home: Path = home, **env: str
        ) -> subprocess.CompletedProcess[str]:
            cwd = Path(env.pop("cwd"))
            return w.run(script, uid=RUNNER_UID, cwd=cwd, home=home, started=started, **env)

        job = Job(
            contexts={
                "github": {},
                "runner": {"temp": str(temp), "uid": RUNNER_UID},
                "secrets": {"NVD_API_KEY": "nvd-key"},
            },
            workdir=repo,
            run_as=run_as,
            temp=temp,
            defaults=defaults_of(wf, "validate"),
        )
        job.run([scan], {})
        assert job.status == "success", job.log
        folders[label] = sorted(
            str(p.parent.parent.relative_to(repo))
            for p in repo.rglob("reports/dependency-check-report.xml")
        )
    assert folders == {"as-generated": ["."], "without-its-own": ["services/payments"]}


# -- GitOps: a lost push race ----------------------------------------------------------------


def gitops_remote(w: World, name: str, uid: int) -> Path:
    seed = w.workdir(f"{name}-seed", 0)
    ident = ["-c", "user.name=ops", "-c", "user.email=ops@example.com"]
    (seed / "README").write_text("gitops\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "seed"]):
        subprocess.run(["git", *ident, *args], cwd=seed, check=True, capture_output=True)
    remote = w.base / "remotes" / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    w.chown_tree(remote, uid)
    return remote


RACE_HOOK = """#!/bin/sh
# pre-push: another deploy lands first, once (a real lost race against the bare remote)
[ -e "$RACE_MARK" ] && exit 0
touch "$RACE_MARK"
other="$(mktemp -d)"
git clone -q "$RACE_REMOTE" "$other"
cd "$other" && echo other > other.txt && git add other.txt
git -c user.name=other -c user.email=other@example.com commit -qm other
git -c core.hooksPath=/dev/null push -q origin HEAD:main
"""


@USERS
def test_a_lost_gitops_push_race_rebases_and_pushes(w: World, uid: int) -> None:
    remote = gitops_remote(w, f"race-{uid}", uid)
    hooks = w.workdir(f"race-hooks-{uid}", uid)
    (hooks / "pre-push").write_text(RACE_HOOK)
    (hooks / "pre-push").chmod(0o755)
    work = w.workdir(f"race-work-{uid}", uid)
    env = {
        "GITOPS_AUTH": "https",
        "GITOPS_TOKEN": "t",
        "GITOPS_REPOSITORY": f"file://{remote}",
        "GITOPS_REVISION": "HEAD",
        "GITOPS_DIR": "apps/payments/production",
        "CHART_SOURCE": "",
        "VALUES_SOURCE": "",
        "SERVICE": "payments",
        "ENVIRONMENT": "production",
        "IMAGE_URI": f"{w.registry}/shop/payments",
        "IMAGE_TAG": "rel-abc",
        "IMAGE_DIGEST": "sha256:" + "ab" * 32,
        # the hooks of every clone the script makes: the race happens in its first push
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_1": "core.hooksPath",
        "GIT_CONFIG_VALUE_1": str(hooks),
        "RACE_MARK": str(hooks / "raced"),
        "RACE_REMOTE": f"file://{remote}",
    }
    res = w.run(sh("gitops-record.sh"), uid=uid, cwd=work, home=w.home(f"race-{uid}", uid), **env)
    assert (hooks / "raced").exists()  # the race happened
    assert res.returncode == 0, res.stderr
    log = subprocess.run(
        ["git", "-c", "safe.directory=*", "log", "--format=%s", "main"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert log.splitlines()[:2] == [
        "Deploy payments rel-abc (sha256:" + "ab" * 32 + ") to production",
        "other",
    ]


# -- the build's outputs on GitHub: the step's own GITHUB_OUTPUT ------------------------------


def test_the_github_build_job_hands_the_tag_and_digest_to_the_deploys(w: World) -> None:
    # deliver-payments.yml as GitHub runs it: build.yml with the caller's inputs
    wf = expand(ROOT / "samples/storefront/.github/workflows/deliver-payments.yml")
    steps = wf["jobs"]["build"]["steps"]
    image = next(s for s in steps if s.get("id") == "image")
    repo = app_repo(w, "gha-build", RUNNER_UID)
    temp = w.workdir("gha-temp", RUNNER_UID)
    home = w.home("gha-build", RUNNER_UID)

    def run_as(
        script: str | list[str], started: Started = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        cwd = Path(env.pop("cwd"))  # the step's folder, as the runner resolves it
        return w.run(script, uid=RUNNER_UID, cwd=cwd, home=home, started=started, **env)

    job = Job(
        contexts={
            "github": {"sha": "c0ffee"},
            "needs": {"route": {"outputs": {"release": "true"}}},
            "runner": {"temp": str(temp), "uid": RUNNER_UID},
            "secrets": {},
        },
        workdir=repo,
        run_as=run_as,
        temp=temp,
    )
    # a step before it (the runner's previous file), then the build step as generated
    job.run([{"name": "earlier", "id": "earlier", "run": "true"}, image], {})
    assert job.status == "success", job.log
    outputs = job.steps["image"]["outputs"]
    tree = subprocess.run(
        ["git", "-c", "safe.directory=*", "rev-parse", "HEAD:services/payments"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert outputs["IMAGE_TAG"] == f"rel-{tree}"
    pushed = w.client("ecr").describe_images(
        repositoryName="storefront/payments-release", imageIds=[{"imageTag": f"rel-{tree}"}]
    )["imageDetails"][0]["imageDigest"]
    assert outputs["IMAGE_DIGEST"] == pushed
    job_outputs = wf["jobs"]["build"]["outputs"]
    assert job.substitute(job_outputs["digest"]) == pushed


def test_the_scan_gate_fails_at_once_without_a_tag(w: World) -> None:
    env = {
        "ECR_REPOSITORY": "shop/payments",
        "IMAGE_TAG": "",
        "SCAN_TYPE": "basic",
        "SCAN_TIMEOUT_SECONDS": "1200",
        "FAIL_SEVERITIES": "CRITICAL HIGH",
    }
    home = w.home("scan", RUNNER_UID)
    res = w.run(sh("ecr-scan-gate.sh"), uid=RUNNER_UID, cwd=w.base, home=home, **env)
    assert res.returncode == 1 and "recorded no image tag" in res.stderr
    missing = w.run(
        sh("ecr-scan-gate.sh"),
        uid=RUNNER_UID,
        cwd=w.base,
        home=home,
        **{**env, "IMAGE_TAG": "rel-missing"},
    )
    assert missing.returncode == 1 and "ImageNotFound" in missing.stderr  # the CLI's words


# -- the health wait: truthful outcomes, fast failures --------------------------------------------

NEW = NEW_DIGEST
OLD = "sha256:" + "01" * 32
APP = "payments-production"


def wait(w: World, argocd: ArgoCD, *, seconds: str = "30", **extra: str) -> tuple[int, str, str]:
    scratch = w.workdir(f"wait-{uuid.uuid4().hex}", RUNNER_UID)
    outcome = scratch / "outcome"
    with argocd_server(argocd) as url:
        res = w.run(
            sh("wait-healthy.sh"),
            uid=RUNNER_UID,
            cwd=scratch,
            home=scratch,
            ARGOCD_SERVER=extra.pop("server", url),
            ARGOCD_AUTH_TOKEN=extra.pop("token", "tok"),
            ARGOCD_APP=APP,
            SERVICE="payments",
            ENVIRONMENT="production",
            IMAGE_DIGEST=NEW,
            WAIT_SECONDS=seconds,
            OUTCOME_FILE=str(outcome),
            POLL_SECONDS="0",
            **extra,
        )
    lines = outcome.read_text().splitlines() if outcome.exists() else []
    said = [line.removeprefix("outcome=") for line in lines if line.startswith("outcome=")]
    # the reason line (audit-row.sh records it) comes with every outcome but success
    reasons = [line for line in lines if line.startswith("reason=")]
    assert len(reasons) == (0 if said[-1:] in (["succeeded"], ["waiting-for-promotion"]) else 1)
    return res.returncode, said[-1] if said else "", res.stderr


def test_a_healthy_rollout_succeeds_after_out_of_sync(w: World) -> None:
    replies = [
        application(APP, "Healthy", sync="OutOfSync", images=(f"r@{OLD}",)),
        application(APP, "Progressing", images=(f"r@{OLD}", f"r@{NEW}")),
        application(APP, "Healthy", images=(f"r@{NEW}",)),
    ]
    assert wait(w, ArgoCD(token="tok", apps={APP: replies}))[:2] == (0, "succeeded")


@pytest.mark.parametrize(
    ("reply", "live", "outcome"),
    [
        # an aborted canary: Degraded, the new digest gone, the stable version serves; the
        # Rollout of the new template says it aborted
        (
            application(APP, "Degraded", images=(f"r@{OLD}",)),
            rollout("payments", abort=True),
            "rolled-back",
        ),
        # a Deployment past its progress deadline: Degraded at the new digest, nothing
        # rolled back (the cluster and Git keep it)
        (
            application(
                APP,
                "Degraded",
                images=(f"r@{NEW}",),
                message="Deployment exceeded its progress deadline",
            ),
            deployment("payments"),
            "failed",
        ),
        # a Deployment whose new pods admission rejects: no pod of the new digest at all
        # (Argo CD builds summary.images from Pods only: argo-cd v3.5.1
        # controller/cache/info.go populatePodInfo), nothing rolled back
        (
            application(APP, "Degraded", images=(f"r@{OLD}",)),
            deployment("payments"),
            "failed",
        ),
        (
            application(
                APP,
                "Missing",
                sync="OutOfSync",
                phase="Failed",
                message="one or more objects failed to apply",
            ),
            None,
            "failed",
        ),
    ],
    ids=["aborted-canary", "degraded-deployment", "deployment-without-pods", "sync-failed"],
)
def test_the_wait_tells_a_rollback_from_a_failure(
    w: World, reply: dict[str, Any], live: dict[str, Any] | None, outcome: str
) -> None:
    argocd = ArgoCD(token="tok", apps={APP: [reply]}, resources={APP: [live]} if live else {})
    assert wait(w, argocd)[:2] == (1, outcome)


def test_an_abort_is_a_rollback_without_argo_cd_saying_so(w: World) -> None:
    """Argo CD 3 leaves the application's health message empty (v3.5.1
    pkg/apis/application/v1alpha1/types.go AppHealthStatus.Message: "Deprecated: this
    field is not used"), and the aborted canary's pods still run the new digest for
    abortScaleDownDelaySeconds (default 30 s): the abort is read from the Rollout."""
    degraded = application(APP, "Degraded", images=(f"r@{OLD}", f"r@{NEW}"))
    aborted = rollout("payments", abort=True)
    argocd = ArgoCD(token="tok", apps={APP: [degraded]}, resources={APP: [aborted]})
    assert wait(w, argocd)[:2] == (1, "rolled-back")
    # a Deployment Degraded at the new digest: failed
    argocd = ArgoCD(token="tok", apps={APP: [degraded]}, resources={APP: [deployment("payments")]})
    assert wait(w, argocd)[:2] == (1, "failed")
    # a Rollout Degraded without an abort (InvalidSpec, say): failed, nothing rolled back
    argocd = ArgoCD(token="tok", apps={APP: [degraded]}, resources={APP: [rollout("payments")]})
    assert wait(w, argocd)[:2] == (1, "failed")


def test_the_previous_releases_abort_is_not_this_deploys_rollback(w: World) -> None:
    """The deploy after an aborted release: GET ?refresh=normal answers before auto-sync
    applies the new commit (argo-cd v3.5.1 server/application/application.go Get), and
    the Rollout keeps status.abort until the controller reconciles a new pod template
    (argo-rollouts v1.9.0 rollout/sync.go resetRolloutStatus). Only a Rollout that runs
    the new digest, at a generation the controller observed, tells."""
    degraded = application(APP, "Degraded", images=(f"r@{OLD}",))
    lives = [
        rollout("payments", abort=True, digest=OLD),  # the previous release, aborted
        rollout("payments", abort=True, observed=False),  # applied, not yet reconciled
        rollout("payments"),  # reconciled: abort cleared, the new version progresses
    ]
    replies = [
        degraded,
        degraded,
        application(APP, "Progressing", images=(f"r@{OLD}", f"r@{NEW}")),
        application(APP, "Healthy", images=(f"r@{NEW}",)),
    ]
    argocd = ArgoCD(token="tok", apps={APP: replies}, resources={APP: lives})
    code, outcome, stderr = wait(w, argocd)
    assert (code, outcome) == (0, "succeeded"), stderr
    # the same holds for a Deployment that the previous release left Degraded
    stale = [deployment("payments", digest=OLD), deployment("payments", observed=False)]
    argocd = ArgoCD(token="tok", apps={APP: [degraded]}, resources={APP: stale})
    code, outcome, stderr = wait(w, argocd, seconds="0")
    assert (code, outcome) == (1, "timed-out")
    assert "does not run" in stderr


@pytest.mark.parametrize("promotion", ["auto", "manual"])
def test_an_inconclusive_analysis_is_reported_as_such_for_every_strategy(
    w: World, promotion: str
) -> None:
    """Argo Rollouts pauses a canary or a blue-green whose AnalysisRun is Inconclusive
    (argo-rollouts v1.9.0 rollout/analysis.go: AnalysisPhaseInconclusive ->
    AddPauseCondition(PauseReasonInconclusiveAnalysis)); Argo CD shows it Suspended.
    Nothing judged the release: the wait says so at once, with the commands that decide."""
    paused = application(APP, "Suspended", images=(f"r@{OLD}", f"r@{NEW}"))
    for live in (
        rollout("payments", ("InconclusiveAnalysisRun",), "Inconclusive"),  # blue-green
        {
            **rollout("payments", ("InconclusiveAnalysisRun",)),
            "spec": {
                "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
                "template": rollout("payments")["spec"]["template"],
            },
        },
    ):
        argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [live]})
        code, outcome, stderr = wait(w, argocd, PROMOTION=promotion)
        assert (code, outcome) == (1, "paused-inconclusive")
        assert "kubectl argo rollouts promote payments -n shop-production" in stderr
        assert "kubectl argo rollouts abort payments -n shop-production" in stderr
    # the previous release's inconclusive pause, before the new template is reconciled
    stale = rollout("payments", ("InconclusiveAnalysisRun",), "Inconclusive", observed=False)
    argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [stale]})
    assert wait(w, argocd, seconds="0", PROMOTION=promotion)[:2] == (1, "timed-out")


def test_a_blue_green_waiting_for_promotion_is_not_a_failure(w: World) -> None:
    """Reported only once the controller paused it for promotion, which it does after
    pre-promotion analysis succeeded (argo-rollouts v1.9.0 rollout/bluegreen.go
    reconcileBlueGreenPause: "not ready for pause: prePromotionAnalysis incomplete")."""
    paused = application(APP, "Suspended", images=(f"r@{OLD}", f"r@{NEW}"))
    ready = rollout("payments", ("BlueGreenPause",), "Successful")
    argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [ready]})
    code, outcome, _ = wait(w, argocd, PROMOTION="manual")
    assert (code, outcome) == (0, "waiting-for-promotion")
    assert any("/resource?" in r and "kind=Rollout" in r for r in argocd.requests)
    # with automatic promotion the same pause is still progress: it times out
    argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [ready]})
    assert wait(w, argocd, seconds="0")[:2] == (1, "timed-out")


@pytest.mark.parametrize(
    ("live", "why"),
    [
        # paused while its analysis still runs (a person paused it, or an older
        # controller): the analysis may still fail and abort the rollout
        (rollout("payments", ("BlueGreenPause",), "Running"), "pre-promotion analysis Running"),
        (rollout("payments", ("BlueGreenPause",)), "pre-promotion analysis not started"),
        # the Rollout is not the application's (or not readable): nothing is known
        (rollout("elsewhere", ("BlueGreenPause",), "Successful"), "cannot be read"),
    ],
    ids=["analysis-running", "analysis-not-started", "unreadable"],
)
def test_a_suspended_blue_green_before_its_analysis_passed_is_not_waiting_for_promotion(
    w: World, live: dict[str, Any], why: str
) -> None:
    """Argo CD shows every paused Rollout as Suspended (resource_customizations/
    argoproj.io/Rollout/health.lua: phase Paused), whatever the pause reason."""
    paused = application(APP, "Suspended", images=(f"r@{OLD}", f"r@{NEW}"))
    argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [live]})
    code, outcome, stderr = wait(w, argocd, seconds="0", PROMOTION="manual")
    assert (code, outcome) == (1, "timed-out")
    assert why in stderr


def test_the_wait_reports_promotion_once_the_analysis_has_passed(w: World) -> None:
    paused = application(APP, "Suspended", images=(f"r@{OLD}", f"r@{NEW}"))
    running = application(APP, "Progressing", images=(f"r@{OLD}", f"r@{NEW}"))
    lives = [
        rollout("payments", ("BlueGreenPause",), "Running"),  # paused by a person
        rollout("payments", ("BlueGreenPause",), "Successful"),  # the analysis passed
    ]
    argocd = ArgoCD(token="tok", apps={APP: [running, paused, paused]}, resources={APP: lives})
    code, outcome, _ = wait(w, argocd, PROMOTION="manual")
    assert (code, outcome) == (0, "waiting-for-promotion")
    assert sum("/resource?" in r for r in argocd.requests) == 2  # asked when Suspended
    # a rollout without pre-promotion analysis waits for promotion once paused
    plain = rollout("payments", ("BlueGreenPause",), analysis=False)
    argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [plain]})
    assert wait(w, argocd, PROMOTION="manual")[:2] == (0, "waiting-for-promotion")


def test_a_person_who_promotes_in_time_gets_the_post_promotion_outcome(w: World) -> None:
    """PROMOTION_WAIT_SECONDS (strategies.<bg>.promotion_wait): a promotion within it is
    followed by the post-promotion analysis; Argo CD shows the Rollout Progressing
    meanwhile (argo-rollouts v1.9.0 utils/rollout/rolloututil.go CalculateRolloutPhase:
    "waiting for analysis to complete" until the new ReplicaSet is stable; argo-cd's
    Rollout health.lua maps phase Progressing to Progressing), then Healthy, or Degraded
    with status.abort when that analysis failed and the controller switched back."""
    paused = application(APP, "Suspended", images=(f"r@{OLD}", f"r@{NEW}"))
    analysing = application(APP, "Progressing", images=(f"r@{OLD}", f"r@{NEW}"))
    healthy = application(APP, "Healthy", images=(f"r@{NEW}",))
    ready = rollout("payments", ("BlueGreenPause",), "Successful")
    argocd = ArgoCD(
        token="tok", apps={APP: [paused, paused, analysing, healthy]}, resources={APP: [ready]}
    )
    code, outcome, _ = wait(w, argocd, PROMOTION="manual", PROMOTION_WAIT_SECONDS="600")
    assert (code, outcome) == (0, "succeeded")
    # the post-promotion analysis aborts it: rolled back, not succeeded nor waiting
    degraded = application(APP, "Degraded", images=(f"r@{OLD}", f"r@{NEW}"))
    aborted = rollout("payments", abort=True, pre_promotion="Successful")
    argocd = ArgoCD(
        token="tok",
        apps={APP: [paused, analysing, analysing, degraded]},
        resources={APP: [ready, aborted]},
    )
    code, outcome, _ = wait(w, argocd, PROMOTION="manual", PROMOTION_WAIT_SECONDS="600")
    assert (code, outcome) == (1, "rolled-back")


def test_nobody_promoting_within_the_wait_is_waiting_for_promotion(w: World) -> None:
    paused = application(APP, "Suspended", images=(f"r@{OLD}", f"r@{NEW}"))
    ready = rollout("payments", ("BlueGreenPause",), "Successful")
    argocd = ArgoCD(token="tok", apps={APP: [paused]}, resources={APP: [ready]})
    code, outcome, stderr = wait(w, argocd, PROMOTION="manual", PROMOTION_WAIT_SECONDS="1")
    assert (code, outcome) == (0, "waiting-for-promotion"), stderr
    # it asked more than once: it waited for the person, not for a timeout
    assert sum("/resource?" in r for r in argocd.requests) > 1


@pytest.mark.parametrize(
    ("argocd", "extra", "message"),
    [
        (ArgoCD(token="tok", apps={APP: []}), {"token": "wrong"}, "refused the token (401)"),
        (ArgoCD(token="tok", html=True), {}, "not Argo CD's API"),
        (ArgoCD(token="tok", apps={}), {}, "does not show application"),
    ],
    ids=["401", "html-sign-in-page", "unknown-app"],
)
def test_an_api_that_cannot_answer_fails_at_once(
    w: World, argocd: ArgoCD, extra: dict[str, str], message: str
) -> None:
    code, outcome, stderr = wait(w, argocd, seconds="1500", **extra)
    assert (code, outcome) == (1, "failed") and message in stderr
    assert len(argocd.requests) == 1  # no 25-minute wait


def test_a_wrong_url_is_html_and_fails_at_once(w: World) -> None:
    argocd = ArgoCD(token="tok", apps={APP: [application(APP, "Healthy")]})
    with argocd_server(argocd) as url:
        code, outcome, stderr = wait(w, argocd, server=url + "/argo", seconds="1500")
    assert (code, outcome) == (1, "failed") and "not Argo CD's API" in stderr


@pytest.mark.parametrize(("open_", "code"), [(True, 0), (False, 1)])
def test_a_closed_sync_window_records_nothing(w: World, open_: bool, code: int) -> None:
    window = {"kind": "allow", "schedule": "0 8 * * 1-5", "duration": "10h", "manualSync": True}
    argocd = ArgoCD(
        token="tok",
        apps={APP: [application(APP, "Healthy")]},
        sync_windows={APP: [window]},
        windows={APP: open_},
    )
    scratch = w.workdir(f"window-{open_}", RUNNER_UID)
    outcome = scratch / "outcome"
    with argocd_server(argocd) as url:
        res = w.run(
            sh("sync-window.sh"),
            uid=RUNNER_UID,
            cwd=scratch,
            home=scratch,
            ARGOCD_SERVER=url,
            ARGOCD_AUTH_TOKEN="tok",
            ARGOCD_APP=APP,
            ENVIRONMENT="production",
            OUTCOME_FILE=str(outcome),
        )
    assert res.returncode == code, res.stderr
    if not open_:
        # the audit row's reason too (a manual rollback's row and message say it)
        assert outcome.read_text() == "outcome=outside-sync-window\nreason=sync window closed\n"
        assert "nothing was recorded" in res.stderr


def test_both_orchestrators_check_the_window_before_recording() -> None:
    wf = expand(ROOT / "samples/storefront/.github/workflows/deliver-web.yml")
    names = [s["name"] for s in wf["jobs"]["deploy-production"]["steps"]]
    window = names.index("Deploy only inside the sync window of production")
    assert window < next(i for i, n in enumerate(names) if n.startswith("Record"))
    assert not any("sync window" in s["name"] for s in wf["jobs"]["deploy-staging"]["steps"])
    # CodeBuild: the one deploy buildspec checks the window before it records, where the
    # environment's project turns the check on (the reference with production's window)
    from pipecompile.compiler import compile_bytes
    from pipecompile.targets import codebuild, terraform

    text = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
    edit = "    strategy: canary\n"
    assert edit in text
    text = text.replace(edit, edit + '    sync_window: {schedule: "0 8 * * 1-5", duration: 10h}\n')
    ir = compile_bytes("pipeline.yaml", text.encode())
    spec = yaml.safe_load(codebuild.render(ir)["deploy.yml"])
    commands = spec["phases"]["build"]["commands"]
    (window,) = [i for i, c in enumerate(commands) if "/syncwindows" in c]
    assert commands[window].startswith('if [ "$RUN_SYNC_WINDOW" = true ]; then (')
    assert window < next(i for i, c in enumerate(commands) if "git clone" in c)
    assert spec["env"]["variables"]["RUN_SYNC_WINDOW"] == "false"
    tf = terraform.render(ir)["codebuild.tf"]

    def project(env: str) -> str:
        head = f'resource "aws_codebuild_project" "deploy-{env}" {{'
        return tf.split(head, 1)[1].split("\nresource ", 1)[0]

    assert 'name  = "RUN_SYNC_WINDOW"\n      value = "true"' in project("production")
    assert "RUN_SYNC_WINDOW" not in project("staging")


# -- the audit row: written whatever happened, also from CodeBuild's finally ----------------------


# CODEBUILD_BUILD_SUCCEEDING in the build phase's finally after a failed command: "Set to 0
# if the build is failing, or 1 if the build is succeeding" (CodeBuild User Guide,
# build-env-ref-env-vars), so 0; the guide does not say when it changes inside a phase,
# so the row must say failed with 1 (or none) too: without an outcome line the deploy
# never finished its wait
@pytest.mark.parametrize("succeeding", ["0", "1", None], ids=["documented", "one", "unset"])
def test_a_deploy_that_failed_early_still_writes_its_audit_row(
    w: World, succeeding: str | None
) -> None:
    # the one deploy buildspec, with what CodeBuild gives it in production: the buildspec's
    # variables, then the production project's (Terraform; the secrets not needed here),
    # then the action's and CodeBuild's own (project values win over the buildspec's)
    spec = yaml.safe_load((ROOT / "samples/ecommerce/ci/codebuild/deploy.yml").read_text())
    finally_ = "\n".join(spec["phases"]["build"]["finally"])
    project = next(
        body
        for block in terraform_blocks(ROOT / "samples/ecommerce")["resource"]
        for label, body in block.get("aws_codebuild_project", {}).items()
        if label == "deploy-production"
    )
    rows = project["environment"][0]["environment_variable"]
    env = {
        **spec["env"]["variables"],
        **{r["name"]: r["value"] for r in rows if r.get("type") != "SECRETS_MANAGER"},
        "DEPLOYMENTS_TABLE": "shop-deployments",
        "SERVICE": "order-service",
        "ENVIRONMENT": "production",
        "OUTCOME_FILE": str(w.base / "never-written"),  # the verify step failed first
        **({"CODEBUILD_BUILD_SUCCEEDING": succeeding} if succeeding is not None else {}),
        "CODEBUILD_RESOLVED_SOURCE_VERSION": "c0ffee",
        "CODEBUILD_BUILD_ID": f"deploy:{succeeding}",
        "CODEBUILD_INITIATOR": "codepipeline/ecommerce-order-service-production",
        "PIPELINE_EXECUTION_ID": "e-1",
        "IMAGE_TAG": "rel-abc",
        "IMAGE_DIGEST": NEW,
    }
    # CodeBuild runs the commands in one bash (env.shell: bash), as root
    res = w.run("set -o pipefail\n" + finally_, uid=CODEBUILD_UID, cwd=w.base, home=w.base, **env)
    assert res.returncode == 0, res.stderr
    items = w.client("dynamodb").scan(TableName="shop-deployments")["Items"]
    row = next(
        i
        for i in items
        if i["service"]["S"] == "order-service" and i["run"]["S"] == f"deploy:{succeeding}"
    )
    assert row["outcome"]["S"] == "failed" and row["approver"]["S"] == "unknown"
    assert row["commit"]["S"] == "c0ffee" and row["image_digest"]["S"] == NEW


def test_the_approver_is_looked_up_by_this_runs_execution_id() -> None:
    script = script_path("approver-codepipeline.sh").read_text()
    assert '--filter "pipelineExecutionId=$PIPELINE_EXECUTION_ID"' in script
    # the latest action execution can be the next run's
    assert "aws codepipeline get-pipeline-state" not in script
    tf = (ROOT / "samples/ecommerce/infrastructure/terraform/cicd/codepipeline.tf").read_text()
    assert '"PIPELINE_EXECUTION_ID", value = "#{codepipeline.PipelineExecutionId}"' in tf


# -- the CodePipeline approver: ListActionExecutions, beside moto ------------------------------


def test_the_codepipeline_approver_is_this_executions_not_the_queued_next_ones(w: World) -> None:
    # moto serves no ListActionExecutions: against moto alone the script says "unknown",
    # which is what the CodePipeline rehearsal's rows said before it had this responder
    env = {"PIPELINE_NAME": "shop-web-staging", "PIPELINE_EXECUTION_ID": str(uuid.uuid4())}
    home = w.home("approver", CODEBUILD_UID)
    alone = w.run(sh("approver-codepipeline.sh"), uid=CODEBUILD_UID, cwd=w.base, home=home, **env)
    assert alone.stdout.strip() == "unknown"
    api = CodePipelineAPI()
    api.approve(env["PIPELINE_NAME"], env["PIPELINE_EXECUTION_ID"], approver("staging"), "Approval")
    # QUEUED mode: the next execution's approval is the newest entry
    api.approve(env["PIPELINE_NAME"], str(uuid.uuid4()), approver("queued"), "Approval")
    with codepipeline_api_server(api, w.env["AWS_ENDPOINT_URL"]) as url:
        res = w.run(
            sh("approver-codepipeline.sh"),
            uid=CODEBUILD_UID,
            cwd=w.base,
            home=home,
            AWS_ENDPOINT_URL_CODEPIPELINE=url,
            **env,
        )
        assert res.stdout.strip() == approver("staging"), res.stderr
        # another operation still reaches moto (its own answer, passed on unchanged)
        other = w.run(
            "aws codepipeline list-pipelines --output json",
            uid=CODEBUILD_UID,
            cwd=w.base,
            home=home,
            AWS_ENDPOINT_URL_CODEPIPELINE=url,
        )
        assert other.returncode == 0 and '"pipelines"' in other.stdout, other.stderr
