"""Admission enforces the signature in each cluster (issue 28, item 3): a Kyverno
ImageValidatingPolicy per environment, valid against the published CRD schema, admitting
in the environment's namespace only its own repositories, by digest, signed, with an SBOM
and a provenance, by a key it accepts (the same keys as the deploy's verify steps), for
containers, init containers and ephemeral containers alike.

The validations are evaluated by a CEL interpreter (cel-python) with Kyverno v1.18.1's
inputs and functions restated from its source:

- pkg/cel/compiler/images.go (podImageExtractors): ``images`` has containers,
  initContainers and ephemeralContainers of the Pod, each a list (always present:
  pkg/image/verification/evaluator/policy.go, "ensure image.containers is always []");
- policy.go: images that no matchImageReferences rule matches are dropped before the
  validations run, and pkg/cel/matching/image.go: no rule at all matches every image;
- pkg/cel/libs/imageverify/impl.go: verifyImageSignatures(image, attestors) and
  verifyAttestationSignatures(image, attestation, attestors) return the number of the
  given attestors whose key verified (0 for an image no rule matches);
- pkg/controllers/webhook/validating.go: with webhookConfiguration.timeoutSeconds the
  webhook's rules are matchConstraints.resourceRules as written (fine-grained).

What a signature is comes from cosign v3.0.6 (the pinned cosign): its default bundle
format (options/sign.go, attest.go: --new-bundle-format true), which the policy's
verifier detects per image (Kyverno pkg/image/verifiers/ivpol/cosign/verifier.go).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import celpy
import celpy.celtypes as ct
import jsonschema
import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets.common import accepted_keys
from tests.conftest import ROOT, SAMPLES, validator

SCHEMA = "kyverno-imagevalidatingpolicy-v1.json"
SPDX, SLSA = "https://spdx.dev/Document", "https://slsa.dev/provenance/v1"
DIGEST = "sha256:" + "a" * 64


def ir_of(sample: str) -> IR:
    p = ROOT / "samples" / sample / "pipeline.yaml"
    return compile_bytes(str(p), p.read_bytes())


def policies(sample: str) -> dict[str, dict[str, Any]]:
    ir = ir_of(sample)
    folder = ROOT / "samples" / sample / ir.output("argocd")
    return {
        p.stem.removeprefix("admission-"): yaml.safe_load(p.read_text())
        for p in sorted(folder.glob("admission-*.yaml"))
    }


# -- a registry: which key signed what -----------------------------------------------------


@dataclass
class Registry:
    """image reference -> the keys that signed it, and per predicate type the keys that
    attested it (what cosign v3 wrote as bundles)."""

    signatures: dict[str, set[str]] = field(default_factory=dict)
    attestations: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def release(self, image: str, key: str, *, sbom: bool = True, provenance: bool = True) -> None:
        """What the build does: sign-once.sh, then attest.sh (SPDX, SLSA)."""
        self.signatures.setdefault(image, set()).add(key)
        for kind, present in ((SPDX, sbom), (SLSA, provenance)):
            if present:
                self.attestations.setdefault((image, kind), set()).add(key)


def pod(
    containers: list[str],
    init: list[str] = (),
    ephemeral: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": x} for i, x in enumerate(containers)]
    }
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": x} for i, x in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"e{i}", "image": x} for i, x in enumerate(ephemeral)
        ]
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec}


def matches(policy: dict[str, Any], namespace: str, resource: str, operation: str) -> bool:
    """Does the webhook send this request to the policy (matchConstraints)?"""
    mc = policy["spec"]["matchConstraints"]
    labels = {"kubernetes.io/metadata.name": namespace}  # set by the API server itself
    wanted = mc.get("namespaceSelector", {}).get("matchLabels", {})
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    return any(
        "" in r["apiGroups"]
        and "v1" in r["apiVersions"]
        and operation in r["operations"]
        and resource in r["resources"]
        for r in mc["resourceRules"]
    )


def admit(policy: dict[str, Any], obj: dict[str, Any], registry: Registry) -> list[str]:
    """The messages of the failed validations, as Kyverno evaluates them (first failure
    ends the evaluation: policy.go returns at the first false validation)."""
    spec = policy["spec"]
    assert not spec.get("matchImageReferences")  # every image is checked
    extracted = {
        "containers": [c["image"] for c in obj["spec"].get("containers", [])],
        "initContainers": [c["image"] for c in obj["spec"].get("initContainers", [])],
        "ephemeralContainers": [c["image"] for c in obj["spec"].get("ephemeralContainers", [])],
    }
    kinds = {a["name"]: a["intoto"]["type"] for a in spec["attestations"]}

    def keys_of(attestors: Any) -> list[str]:
        return [str(a["cosign"]["key"]["kms"]) for a in attestors]

    def verify_image_signatures(image: Any, attestors: Any) -> ct.IntType:
        if "@sha256:" not in str(image):  # verifyDigest: a tag is never verified
            return ct.IntType(0)
        signed = registry.signatures.get(str(image), set())
        return ct.IntType(sum(1 for k in keys_of(attestors) if k in signed))

    def verify_attestation_signatures(image: Any, name: Any, attestors: Any) -> ct.IntType:
        if str(name) not in kinds:
            raise AssertionError(f"attestation not found in policy: {name}")
        signed = registry.attestations.get((str(image), kinds[str(name)]), set())
        return ct.IntType(sum(1 for k in keys_of(attestors) if k in signed))

    env = celpy.Environment()
    activation = {
        "images": celpy.json_to_cel(extracted),
        "attestors": celpy.json_to_cel({a["name"]: a for a in spec["attestors"]}),
        "attestations": celpy.json_to_cel({n: n for n in kinds}),
        "object": celpy.json_to_cel(obj),
    }
    functions = {
        "verifyImageSignatures": verify_image_signatures,
        "verifyAttestationSignatures": verify_attestation_signatures,
    }
    for v in spec["validations"]:
        program = env.program(env.compile(v["expression"]), functions=functions)
        if not bool(program.evaluate(activation)):
            return [v["message"]]
    return []


# -- the policies ----------------------------------------------------------------------------


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
        assert (doc["apiVersion"], doc["kind"]) == (
            "policies.kyverno.io/v1",
            "ImageValidatingPolicy",
        )
        validator(SCHEMA).validate(doc)
        spec = doc["spec"]
        assert spec["validationActions"] == ["Deny"] and spec["failurePolicy"] == "Fail"
        assert spec["validationConfigurations"] == {
            "mutateDigest": False,
            "verifyDigest": True,
            "required": True,
        }
        keys = [a["cosign"]["key"]["kms"] for a in spec["attestors"]]
        assert keys == accepted_keys(ir, env).split()  # what the deploy step verifies
        assert [(a["name"], a["intoto"]["type"]) for a in spec["attestations"]] == [
            ("sbom", SPDX),
            ("provenance", SLSA),
        ]
        if env.approval:
            assert keys == [f"awskms:///{ir.aws.release_key_alias}"]
        # it sees every Pod of the namespace and every ephemeral container added to one
        for resource, op in (
            ("pods", "CREATE"),
            ("pods", "UPDATE"),
            ("pods/ephemeralcontainers", "UPDATE"),
        ):
            assert matches(doc, env.namespace, resource, op)
        assert not matches(doc, "kube-system", "pods", "CREATE")


def test_the_schema_refuses_a_broken_policy() -> None:
    doc = policies("ecommerce")["production"]
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["failurePolicy"] = "Block"
    with pytest.raises(jsonschema.ValidationError):
        validator(SCHEMA).validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(doc))
    del broken["spec"]["attestors"][0]["name"]
    with pytest.raises(jsonschema.ValidationError, match="name"):
        validator(SCHEMA).validate(broken)
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["attestors"][0]["cosign"]["keys"] = {"kms": "x"}  # strict: unknown keys
    with pytest.raises(jsonschema.ValidationError, match="keys"):
        validator(SCHEMA).validate(broken)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if ir_of(s).security.sign_images])
def test_admission_refuses_what_the_deploy_would_refuse(sample: str) -> None:
    ir = ir_of(sample)
    found = policies(sample)
    release_key = f"awskms:///{ir.aws.release_key_alias}"
    dev_key = f"awskms:///{ir.aws.signing_key_alias}"
    for env in ir.environments:
        policy = found[env.name]
        svc = ir.services[0]
        own = f"{ir.image_of(svc, env)[1]}@{DIGEST}"
        key = release_key if env.approval or not ir.release_branches else dev_key
        reg = Registry()
        reg.release(own, key)
        assert admit(policy, pod([own]), reg) == [], env.name
        # a tag, not a digest
        assert admit(policy, pod([f"{ir.image_of(svc, env)[1]}:latest"]), reg)
        # another registry, or another repository
        assert admit(policy, pod([own], init=[f"docker.io/library/busybox@{DIGEST}"]), reg)
        # signed but without its SBOM, or without its provenance
        for missing in ("sbom", "provenance"):
            partial = Registry()
            partial.release(own, key, **{missing: False})
            assert admit(policy, pod([own]), partial), (env.name, missing)
        # unsigned
        assert admit(policy, pod([own]), Registry())
        if env.approval:
            # the development key cannot sign anything production admits, not even an
            # image in the release repository (a feature build has that key)
            squat = Registry()
            squat.release(own, dev_key)
            assert admit(policy, pod([own]), squat)
            # a development image, signed by its own tier, in an approval environment
            dev_env = next(e for e in ir.environments if not e.approval)
            dev_image = f"{ir.image_of(svc, dev_env)[1]}@{DIGEST}"
            reg.release(dev_image, dev_key)
            assert admit(policy, pod([dev_image]), reg)


def test_an_ephemeral_debug_container_is_refused() -> None:
    """kubectl debug adds an ephemeral container through the pods/ephemeralcontainers
    subresource (an UPDATE whose object is the whole Pod): the policy is asked, and the
    debug image is neither ours nor signed."""
    ir = ir_of("ecommerce")
    prod = ir.environment("production")
    policy = policies("ecommerce")["production"]
    own = f"{ir.image_of(ir.services[0], prod)[1]}@{DIGEST}"
    reg = Registry()
    reg.release(own, f"awskms:///{ir.aws.release_key_alias}")
    assert matches(policy, prod.namespace, "pods/ephemeralcontainers", "UPDATE")
    debugged = pod([own], ephemeral=[f"docker.io/library/busybox@{DIGEST}"])
    (message,) = admit(policy, debugged, reg)
    assert message.startswith("production runs only these repositories, by digest")
    # even our own image as a debug container must be signed
    unsigned = f"{ir.image_of(ir.services[1], prod)[1]}@{'sha256:' + 'b' * 64}"
    assert admit(policy, pod([own], ephemeral=[unsigned]), reg)


def test_a_development_image_is_not_admitted_in_production() -> None:
    """The dev credential rewrote production's image file to a dev-tier image: production's
    policy neither lists the dev repository nor accepts the dev key."""
    ir = ir_of("ecommerce")
    prod = policies("ecommerce")["production"]
    text = yaml.safe_dump(prod)
    for uri in (s.image_uri for s in ir.services):
        assert f"'{uri}@sha256:'" not in text
    assert ir.aws.signing_key_alias not in text


def test_the_signing_scripts_write_the_format_the_policy_reads() -> None:
    """cosign v3.0.6 writes Sigstore bundles by default; the policy's verifier detects
    them. Signing in the legacy format would need the .att tag rewritten per attestation,
    which ECR's immutable tags refuse: no script may turn the bundle format off."""
    scripts = ROOT / "src/pipecompile/targets/scripts"
    for name in ("sign-once.sh", "attest.sh", "verify-signature.sh", "verify-attestations.sh"):
        text = (scripts / name).read_text()
        assert "cosign " in text
        assert "--new-bundle-format=false" not in text and "registry-referrers-mode" not in text
    for sample in SAMPLES:
        for doc in policies(sample).values():
            assert doc["kind"] == "ImageValidatingPolicy"
