"""The cosign stub refuses what cosign v3.0.6 refuses: credentials the default keychain
does not find or the registry does not take, a key KMS cannot sign with, a signature by
another key (tests/harness/stubs/cosign names the sources)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from .world import RUNNER_UID, World, world

REPO = "shop/web"


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    with world() as w:
        ecr, kms = w.client("ecr"), w.client("kms")
        ecr.create_repository(repositoryName=REPO)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "a", "size": 1, "digest": "sha256:" + "1" * 64},
                "layers": [],
            }
        )
        ecr.put_image(repositoryName=REPO, imageManifest=manifest, imageTag="v1")
        for alias, usage, spec in (
            ("sign", "SIGN_VERIFY", "ECC_NIST_P256"),
            ("other", "SIGN_VERIFY", "ECC_NIST_P256"),
            ("symmetric", "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"),
        ):
            key = kms.create_key(KeyUsage=usage, KeySpec=spec)["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key)
        yield w


def _digest(w: World) -> str:
    ids = w.client("ecr").list_images(repositoryName=REPO)["imageIds"]
    return next(i["imageDigest"] for i in ids if i.get("imageTag") == "v1")


def _cosign(w: World, name: str, config: dict[str, object] | None, *args: str) -> str:
    """Run the stub as the runner user with ``config`` as its docker config; its stderr
    (empty when it succeeded)."""
    home = w.home(name, RUNNER_UID)
    if config is not None:
        (home / ".docker").mkdir()
        (home / ".docker/config.json").write_text(json.dumps(config))
        w.chown_tree(home, RUNNER_UID)
    ref = f"{w.registry}/{REPO}@{_digest(w)}"
    res = w.run(["cosign", *args, ref], uid=RUNNER_UID, cwd=home, home=home)
    assert (res.returncode == 0) == (res.stderr == ""), res
    return res.stderr


def _auth(user: str, password: str) -> dict[str, object]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


SIGN = ("sign", "--key", "awskms:///alias/sign", "--tlog-upload=false",
        "--use-signing-config=false", "--yes")  # fmt: skip


def _good(w: World) -> dict[str, object]:
    return {"auths": {w.registry: _auth("AWS", "123456789012-auth-token")}}


def test_credentials_the_default_keychain_does_not_find_are_anonymous(w: World) -> None:
    for n, cfg in enumerate(
        [None, {"auths": {w.registry: {}}}, {"auths": {w.registry: {"username": "AWS"}}}]
    ):
        assert "UNAUTHORIZED" in _cosign(w, f"anon-{n}", cfg, *SIGN)


def test_a_credential_helper_that_is_not_installed_fails_as_the_keychain_does(
    w: World,
) -> None:
    helper = _cosign(w, "helper", {"credHelpers": {w.registry: "ecr-login"}}, *SIGN)
    assert '"docker-credential-ecr-login": executable file not found' in helper
    store = _cosign(w, "store", {**_good(w), "credsStore": "desktop"}, *SIGN)
    assert '"docker-credential-desktop": executable file not found' in store


def test_the_registry_takes_only_the_token_ecr_issued(w: World) -> None:
    wrong = {"auths": {w.registry: _auth("AWS", "not-the-token")}}
    assert "UNAUTHORIZED" in _cosign(w, "wrong", wrong, *SIGN)
    url = {"auths": {f"https://{w.registry}": _auth("AWS", "123456789012-auth-token")}}
    assert _cosign(w, "url", url, *SIGN) == ""


def test_kms_signs_only_with_a_signing_key_and_only_that_key_verifies(w: World) -> None:
    symmetric = ("sign", "--key", "awskms:///alias/symmetric", *SIGN[3:])
    # real KMS already refuses GetPublicKey on it; moto answers that and refuses Sign
    refused = _cosign(w, "symmetric", _good(w), *symmetric)
    assert "signing with kms" in refused and "usage: 'SIGN_VERIFY'" in refused
    assert "getting key metadata" in _cosign(
        w, "missing", _good(w), "sign", "--key", "awskms:///alias/none", *SIGN[3:]
    )
    assert _cosign(w, "signer", _good(w), *SIGN) == ""
    verify = ("verify", "--insecure-ignore-tlog=true", "--key")
    assert _cosign(w, "verify", _good(w), *verify, "awskms:///alias/sign") == ""
    other = _cosign(w, "other", _good(w), *verify, "awskms:///alias/other")
    assert "no matching signatures" in other
