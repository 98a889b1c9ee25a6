"""Admission enforces the signature in each cluster (issue 28, item 3): a Kyverno
ClusterPolicy per environment, valid against the published CRD schema, admitting in the
environment's namespace only its own repositories, by digest, signed with a key it
accepts (the same keys as the deploy's verify step)."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets.common import accepted_keys

from .conftest import ROOT, SAMPLES, validator

SCHEMA = "kyverno-clusterpolicy-v1.json"


def ir_of(sample: str) -> IR:
    p = ROOT / "samples" / sample / "pipeline.yaml"
    return compile_bytes(str(p), p.read_bytes())


def policies(sample: str) -> dict[str, dict]:
    ir = ir_of(sample)
    folder = ROOT / "samples" / sample / ir.output("argocd")
    return {
        p.stem.removeprefix("admission-"): yaml.safe_load(p.read_text())
        for p in sorted(folder.glob("admission-*.yaml"))
    }


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_environment_has_a_valid_admission_policy(sample: str) -> None:
    ir = ir_of(sample)
    found = policies(sample)
    if not ir.security.sign_images:
        assert found == {}
        return
    assert sorted(found) == sorted(e.name for e in ir.environments)
    for env in ir.environments:
        doc = found[env.name]
        assert (doc["apiVersion"], doc["kind"]) == ("kyverno.io/v1", "ClusterPolicy")
        validator(SCHEMA).validate(doc)
        own, signed = doc["spec"]["rules"]
        for rule in (own, signed):
            assert rule["match"] == {
                "any": [{"resources": {"kinds": ["Pod"], "namespaces": [env.namespace]}}]
            }
        uris = sorted(ir.image_of(s, env)[1] for s in ir.services)
        allowed = own["validate"]["pattern"]["spec"]["containers"][0]["image"]
        assert allowed.split(" | ") == [f"{u}@sha256:*" for u in uris]
        (verify,) = signed["verifyImages"]
        assert verify["imageReferences"] == [f"{u}@*" for u in uris]
        assert verify["required"] and verify["verifyDigest"]
        assert verify["failureAction"] == "Enforce"
        (attestor,) = verify["attestors"]
        keys = [e["keys"]["kms"] for e in attestor["entries"]]
        assert keys == accepted_keys(ir, env).split()  # what the deploy step verifies
        # the SBOM and the provenance, signed by the same keys (item 7, at admission)
        assert [(a["type"], a["attestors"]) for a in verify["attestations"]] == [
            ("https://spdx.dev/Document", verify["attestors"]),
            ("https://slsa.dev/provenance/v1", verify["attestors"]),
        ]
        assert verify["cosignOCI11"] is True  # cosign v3 bundles are OCI referrers
        if env.approval:
            assert keys == [f"awskms:///{ir.aws.release_key_alias}"]
            assert all(u.endswith("-release") for u in uris)


def test_the_schema_refuses_a_broken_policy() -> None:
    doc = policies("ecommerce")["production"]
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["rules"][1]["verifyImages"][0]["failureAction"] = "Block"
    with pytest.raises(jsonschema.ValidationError):
        validator(SCHEMA).validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["rules"][1]["verifyImages"][0]["attestors"][0]["count"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        validator(SCHEMA).validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["rules"][1]["verifyImages"][0]["keyless"] = True  # strict: unknown keys
    with pytest.raises(jsonschema.ValidationError, match="keyless"):
        validator(SCHEMA).validate(broken)


def test_a_development_image_is_not_admitted_in_production() -> None:
    """The dev credential rewrote production's image file to a dev-tier image: production's
    policy neither lists the dev repository nor accepts the dev key."""
    ir = ir_of("ecommerce")
    prod = policies("ecommerce")["production"]
    dev_uris = [s.image_uri for s in ir.services]
    text = yaml.safe_dump(prod)
    for uri in dev_uris:
        assert f"{uri}@" not in text
    assert ir.aws.signing_key_alias not in text
