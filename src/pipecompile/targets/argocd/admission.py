"""Admission: a Kyverno ClusterPolicy per environment (issue 28, item 3).

In the environment's namespace a Pod is admitted only when every container image is one of
this environment's repositories, by digest, and the digest carries a cosign signature by a
key that environment accepts (an approval environment: the release key alone).  So a
rewritten GitOps folder (or a hand-applied manifest) cannot run an image that the
pipeline's own verify step would refuse.

Why Kyverno and not sigstore policy-controller: environments often share one cluster, one
namespace each, and the key must be tied to the namespace.  A Kyverno rule matches
namespaces and verifies images in the same policy, and a second rule of the same policy
refuses images outside the environment's repositories (a policy-controller
ClusterImagePolicy selects by image glob only, and a namespace opts in to all policies at
once, so "production accepts only the release key" cannot be said per namespace).
Kyverno's verifyImages reads AWS KMS keys (keys.kms: awskms:///alias/...) with the
credentials of its admission controller (IRSA: kms:GetPublicKey and kms:DescribeKey).

Checked in tests against the published CRD schema (tests/schemas/kyverno-clusterpolicy-v1.json).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment

# the predicate types cosign gives --type spdxjson and slsaprovenance1 (options/predicate.go)
ATTESTATIONS = (
    ("sbom", "https://spdx.dev/Document"),
    ("provenance", "https://slsa.dev/provenance/v1"),
)


def policy_name(ir: IR, env: Environment) -> str:
    return f"{ir.project}-{env.name}-verify-images"[:63].rstrip("-")


def accepted(ir: IR, env: Environment) -> list[str]:
    """The cosign keys whose signature this environment admits (as the deploy step)."""
    release = f"awskms:///{ir.aws.release_key_alias}"
    if env.approval:
        return [release]
    dev = f"awskms:///{ir.aws.signing_key_alias}"
    return [release, dev] if ir.release_branches else [dev]


def cluster_policy(ir: IR, env: Environment) -> dict[str, Any]:
    uris = sorted({ir.image_of(svc, env)[1] for svc in ir.services})
    match = {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [env.namespace]}}]}
    by_digest = " | ".join(f"{u}@sha256:*" for u in uris)
    entries = [
        {
            "keys": {
                "kms": key,
                # cosign signs with --tlog-upload=false: no transparency log entry to check
                "rekor": {"ignoreTlog": True},
                "ctlog": {"ignoreSCT": True},
            }
        }
        for key in accepted(ir, env)
    ]
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
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
                    f"Pods in {env.namespace} run only {ir.project}'s images for {env.name}, "
                    "by digest, signed with "
                    + ("the release key" if env.approval else "a key of either build tier")
                ),
                # Rollouts are not a Kyverno pod controller: check the Pods themselves
                "pod-policies.kyverno.io/autogen-controllers": "none",
            },
        },
        "spec": {
            "background": False,
            "webhookTimeoutSeconds": 30,
            "rules": [
                {
                    "name": "own-images-by-digest",
                    "match": match,
                    "validate": {
                        "failureAction": "Enforce",
                        "message": f"{env.name} runs only these repositories, by digest: "
                        + ", ".join(uris),
                        "pattern": {
                            "spec": {
                                "containers": [{"image": by_digest}],
                                "=(initContainers)": [{"image": by_digest}],
                            }
                        },
                    },
                },
                {
                    "name": "signed-with-an-accepted-key",
                    "match": match,
                    "verifyImages": [
                        {
                            "imageReferences": [f"{u}@*" for u in uris],
                            "failureAction": "Enforce",
                            "mutateDigest": False,
                            "verifyDigest": True,
                            "required": True,
                            # cosign v3 stores signatures and attestations as OCI
                            # referrers (its new bundle format)
                            "cosignOCI11": True,
                            "attestors": [{"count": 1, "entries": entries}],
                            # the SBOM and the build provenance, bound to the digest
                            "attestations": [
                                {
                                    "name": name,
                                    "type": kind,
                                    "attestors": [{"count": 1, "entries": entries}],
                                }
                                for name, kind in ATTESTATIONS
                            ],
                        }
                    ],
                },
            ],
        },
    }
