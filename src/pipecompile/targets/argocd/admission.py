"""Admission: a Kyverno ImageValidatingPolicy per environment (issue 28, item 3).

In the environment's namespace a Pod is admitted, and an ephemeral container added (the
pods/ephemeralcontainers subresource, as ``kubectl debug`` does), only when every image
of its containers, init containers and ephemeral containers is one of this environment's
repositories, by digest, and the digest carries a cosign signature, an SPDX SBOM and a
SLSA provenance, each signed by a key that environment accepts (an approval environment:
the release key alone).  So a rewritten GitOps folder (or a hand-applied manifest) cannot
run an image that the pipeline's own verify steps would refuse.

Why an ImageValidatingPolicy (policies.kyverno.io/v1) and not a ClusterPolicy's
``verifyImages``, read at Kyverno v1.18.1 and cosign v3.0.6:

- cosign v3 signs and attests in the Sigstore bundle format by default
  (cmd/cosign/cli/options/sign.go and attest.go: ``--new-bundle-format`` defaults to
  true), stored as OCI referrers of artifact type application/vnd.dev.sigstore.bundle...;
- a ClusterPolicy's ``type: Cosign`` verifies through cosign's CheckOpts with
  NewBundleFormat unset (pkg/image/verifiers/cpol/cosign/cosign.go,
  buildCosignOptions): cosign's VerifyImageSignatures then reads the legacy
  ``sha256-<digest>.sig`` tag, or with ``cosignOCI11`` referrers of the legacy artifact
  type application/vnd.dev.cosign.artifact.sig.v1+json (pkg/cosign/verify.go,
  verifyImageSignaturesExperimentalOCI), and VerifyImageAttestations the ``.att`` tag
  only; none of them is what cosign v3 writes;
- a ClusterPolicy's ``type: SigstoreBundle`` (pkg/image/verifiers/cpol/cosign/
  sigstore.go) ignores the attestor's keys: it verifies against the public-good
  Sigstore trusted root and certificate identities, so it cannot check a KMS key;
- signing in the legacy format instead (``--new-bundle-format=false``) does not fit
  ECR's immutable tags: ``cosign attest`` then appends every attestation to the one
  ``.att`` tag (cmd/cosign/cli/attest/attest.go, WriteAttestations), and the SBOM's tag
  cannot be rewritten for the provenance;
- an ImageValidatingPolicy verifies with cosign's own verifier and detects the bundle
  format per image (pkg/image/verifiers/ivpol/cosign/verifier.go,
  buildCheckOptsWithBundleDetection: cosign.GetBundles), with the attestor's KMS key as
  the verifier (opts.go: key.kms -> PublicKeyFromKeyRefWithHashAlgo; kms.go registers
  the AWS KMS plugin).

How Kyverno v1.18.1 reads it (tests/test_trust_admission.py evaluates the validations
with a CEL interpreter and these rules):

- no matchImageReferences: every image is in ``images`` (pkg/cel/matching/image.go,
  MatchImage: no rule matches all; pkg/image/verification/evaluator/policy.go drops the
  images a rule does not match before the validations see them);
- ``images`` holds containers, initContainers and ephemeralContainers for Pods
  (pkg/cel/compiler/images.go, podImageExtractors), each always a list;
- verifyImageSignatures / verifyAttestationSignatures return how many of the given
  attestors verified (pkg/cel/libs/imageverify/impl.go);
- with webhookConfiguration.timeoutSeconds the webhook's rules are exactly
  matchConstraints.resourceRules (pkg/controllers/webhook/validating.go, fine-grained):
  hence pods/ephemeralcontainers is listed.

Why Kyverno and not sigstore policy-controller: environments often share one cluster, one
namespace each, and the key must be tied to the namespace; a policy-controller
ClusterImagePolicy selects by image glob only.  Kyverno reads AWS KMS keys and ECR with
the credentials of its admission controller (IRSA: kms:GetPublicKey, kms:DescribeKey and
ECR pulls).

Checked in tests against the published CRD schema
(tests/schemas/kyverno-imagevalidatingpolicy-v1.json).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment

# the predicate types cosign gives --type spdxjson and slsaprovenance1 (options/predicate.go)
ATTESTATIONS = (
    ("sbom", "https://spdx.dev/Document"),
    ("provenance", "https://slsa.dev/provenance/v1"),
)
# every image of a Pod, as Kyverno extracts them (pkg/cel/compiler/images.go)
ALL_IMAGES = "(images.containers + images.initContainers + images.ephemeralContainers)"


def policy_name(ir: IR, env: Environment) -> str:
    return f"{ir.project}-{env.name}-verify-images"[:63].rstrip("-")


def accepted(ir: IR, env: Environment) -> list[str]:
    """The cosign keys whose signature this environment admits (the IR's, as the deploy
    step checks them)."""
    return list(env.accepted_keys)


def _attestor_name(ir: IR, key: str) -> str:
    """A CEL identifier per key (attestors.<name> in the validations)."""
    return "release" if key == f"awskms:///{ir.aws.release_key_alias}" else "development"


def _cel_list(items: list[str]) -> str:
    """A CEL list of string literals (no quote or backslash reaches here: image URIs)."""
    assert all("'" not in i and "\\" not in i for i in items), items
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def image_policy(ir: IR, env: Environment) -> dict[str, Any]:
    uris = sorted({ir.image_of(svc, env)[1] for svc in ir.services})
    keys = accepted(ir, env)
    names = [_attestor_name(ir, k) for k in keys]
    attestors = "[" + ", ".join(f"attestors.{n}" for n in names) + "]"
    prefixes = _cel_list([f"{u}@sha256:" for u in uris])
    signed_by = "the release key" if env.approval else "a key of either build tier"
    validations: list[dict[str, str]] = [
        {
            "expression": f"{ALL_IMAGES}.all(image, {prefixes}.exists(p, image.startsWith(p)))",
            "message": f"{env.name} runs only these repositories, by digest: " + ", ".join(uris),
        },
        {
            "expression": f"{ALL_IMAGES}.all(image, verifyImageSignatures(image, {attestors}) > 0)",
            "message": f"every image in {env.namespace} must be signed with {signed_by}",
        },
    ]
    for name, kind in ATTESTATIONS:
        validations.append(
            {
                "expression": f"{ALL_IMAGES}.all(image, verifyAttestationSignatures("
                f"image, attestations.{name}, {attestors}) > 0)",
                "message": f"every image in {env.namespace} must carry its {name} ({kind}), "
                f"signed with {signed_by}",
            }
        )
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {
            "name": policy_name(ir, env),
            "labels": {
                "app.kubernetes.io/managed-by": "pipecompile",
                "pipecompile/project": ir.project,
                "pipecompile/environment": env.name,
            },
            "annotations": {
                "policies.kyverno.io/title": f"Signed images only in {env.name}",
                "policies.kyverno.io/description": (
                    f"Pods and ephemeral containers in {env.namespace} run only "
                    f"{ir.project}'s images for {env.name}, by digest, signed with {signed_by}"
                ),
            },
        },
        "spec": {
            "validationActions": ["Deny"],
            "failurePolicy": "Fail",  # Kyverno unreachable or a registry error: refused
            "webhookConfiguration": {"timeoutSeconds": 30},
            "evaluation": {"background": {"enabled": False}},
            # Rollouts are no pod controller Kyverno knows: check the Pods themselves
            "autogen": {"podControllers": {"controllers": []}},
            "matchConstraints": {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": env.namespace}
                },
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods", "pods/ephemeralcontainers"],
                    }
                ],
            },
            # ECR with the admission controller's own credentials (IRSA)
            "credentials": {"providers": ["amazon"]},
            "validationConfigurations": {
                "mutateDigest": False,  # images are by digest already: nothing to rewrite
                "verifyDigest": True,
                "required": True,
            },
            "attestors": [
                {
                    "name": name,
                    "cosign": {
                        "key": {"kms": key},
                        # cosign signs with --tlog-upload=false: no transparency log entry
                        "ctlog": {"insecureIgnoreTlog": True, "insecureIgnoreSCT": True},
                    },
                }
                for name, key in zip(names, keys, strict=True)
            ],
            "attestations": [
                {"name": name, "intoto": {"type": kind}} for name, kind in ATTESTATIONS
            ],
            "validations": validations,
        },
    }
