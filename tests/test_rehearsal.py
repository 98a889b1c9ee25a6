"""The release rehearsal (issue 26): the deploy scripts against the real tools' behaviour.

The real AWS CLI against moto in server mode (ECR, KMS, DynamoDB), real git with bare
remotes (a lost push race included), an Argo CD API on loopback, each script run as the
user that runs it (uid 1001 on GitHub-hosted runners, root on CodeBuild), docker and
cosign stubs that enforce the real tools' preconditions (tests/harness/stubs).  One moto
for the module: the slow part starts once."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipecompile.targets import common

from .harness.argocd import ArgoCD, application, argocd_server
from .harness.world import CODEBUILD_UID, RUNNER_UID, World, world

DIGEST_RE = r"sha256:[0-9a-f]{64}"
RELEASE_KEY = "awskms:///alias/shop-release-signing"
DEV_KEY = "awskms:///alias/shop-signing"


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    with world() as wd:
        # the account as terraform leaves it (boto3 here: the scripts use the real CLI)
        ecr, kms, ddb = (wd.client(n) for n in ("ecr", "kms", "dynamodb"))
        for repo in ("shop/web", "shop/payments"):
            ecr.create_repository(
                repositoryName=repo,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
            )
        for alias in (RELEASE_KEY, DEV_KEY):
            key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_4096")["KeyMetadata"]
            kms.create_alias(AliasName=alias.removeprefix("awskms:///"), TargetKeyId=key["KeyId"])
        ddb.create_table(
            TableName="shop-deployments",
            AttributeDefinitions=[
                {"AttributeName": "service", "AttributeType": "S"},
                {"AttributeName": "deployed_at", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "service", "KeyType": "HASH"},
                {"AttributeName": "deployed_at", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield wd


def app_repo(w: World, name: str, uid: int) -> Path:
    """A checkout of the application, owned by the runner user (actions/checkout)."""
    repo = w.workdir(name, uid)
    (repo / "services/payments").mkdir(parents=True)
    (repo / "Dockerfile").write_text("FROM scratch\n")
    (repo / "app.py").write_text("web\n")
    (repo / "services/payments/Dockerfile").write_text("FROM scratch\n")
    (repo / "services/payments/main.go").write_text(f"package main // {name}\n")
    ident = ["-c", "user.name=dev", "-c", "user.email=dev@example.com", "-c", "safe.directory=*"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "one"]):
        subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)
    w.chown_tree(repo, uid)
    return repo


def image_vars(w: World, svc: str = "payments") -> dict[str, str]:
    return {
        "ECR_REGISTRY": w.registry,
        "ECR_REPOSITORY": f"shop/{svc}",
        "IMAGE_URI": f"{w.registry}/shop/{svc}",
        "SERVICE_PATH": "services/payments" if svc == "payments" else ".",
        "DOCKERFILE": "services/payments/Dockerfile" if svc == "payments" else "Dockerfile",
        "SERVICE": svc,
    }


def built(w: World, name: str, uid: int, **extra: str) -> dict[str, str]:
    """Build (and sign) in one job, as the build job does; return the image it recorded."""
    repo = app_repo(w, name, uid)
    home = w.home(name, uid)
    out = repo.parent / f"{name}.env"
    out.write_text("")
    os.chown(out, uid, uid)
    env = {**image_vars(w), "IMAGE_ENV": str(out), **extra}
    res = w.run(common.BUILD_ONCE, uid=uid, cwd=repo, home=home, **env)
    assert res.returncode == 0, res.stderr
    image = dict(line.split("=", 1) for line in out.read_text().split())
    sign = w.run(
        common.SIGN_ONCE, uid=uid, cwd=repo, home=home, **env, **image,
        SIGNING_KEY=extra.get("SIGNING_KEY", DEV_KEY),
    )  # fmt: skip
    assert sign.returncode == 0, sign.stderr
    return {**env, **image}


# -- the harness itself: the stubs refuse what the real tools refuse --------------------------


def test_the_stubs_refuse_what_the_real_tools_refuse(w: World) -> None:
    repo = app_repo(w, "stubs", RUNNER_UID)
    home = w.home("stubs", RUNNER_UID)
    uri = f"{w.registry}/shop/web"
    push = w.run(f"docker build --file Dockerfile --tag {uri}:x . && docker push {uri}:x",
                 uid=RUNNER_UID, cwd=repo, home=home)  # fmt: skip
    assert push.returncode == 1 and "no basic auth credentials" in push.stderr
    sign = w.run(f"cosign sign --yes --tlog-upload=false --key {DEV_KEY} {uri}@sha256:{'0' * 64}",
                 uid=RUNNER_UID, cwd=repo, home=home)  # fmt: skip
    assert sign.returncode == 1 and "UNAUTHORIZED" in sign.stderr
    reports = w.workdir("stubs-reports", RUNNER_UID)
    dc = w.run(f"docker run --rm -v {reports}:/report:rw owasp/dependency-check:12.1.0 --out /report",
               uid=RUNNER_UID, cwd=repo, home=home)  # fmt: skip
    assert dc.returncode == 1 and "not writable by uid 1000" in dc.stderr


# -- both orchestrators: build once, sign, and cosign's credentials ----------------------------


@pytest.mark.parametrize("uid", [RUNNER_UID, CODEBUILD_UID], ids=["github", "codebuild"])
def test_a_build_pushes_to_ecr_once_and_reuses_the_digest(w: World, uid: int) -> None:
    first = built(w, f"build-{uid}", uid, TAG_PREFIX="src")
    assert first["IMAGE_TAG"].startswith("src-")
    images = w.client("ecr").describe_images(
        repositoryName="shop/payments", imageIds=[{"imageTag": first["IMAGE_TAG"]}]
    )["imageDetails"]
    assert images[0]["imageDigest"] == first["IMAGE_DIGEST"]
    again = built(w, f"rebuild-{uid}", uid, TAG_PREFIX="src")  # same tree: reused
    assert again["IMAGE_DIGEST"] == first["IMAGE_DIGEST"]


def test_a_deploy_job_verifies_the_signature_of_an_image_it_did_not_build(w: World) -> None:
    # the designed promotion: main reuses the image staging built, in a fresh job whose
    # home has no docker config; cosign reads registry credentials only from there
    image = built(w, "promote", RUNNER_UID, TAG_PREFIX="rel", SIGNING_KEY=RELEASE_KEY)
    deploy = w.workdir("promote-deploy", RUNNER_UID)
    home = w.home("promote-deploy", RUNNER_UID)
    res = w.run(common.VERIFY_SIGNATURE, uid=RUNNER_UID, cwd=deploy, home=home, **image,
                SIGNING_KEYS=RELEASE_KEY)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"signature verified with {RELEASE_KEY}" in res.stdout
