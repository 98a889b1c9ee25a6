#!/usr/bin/env bash
# verify-attestations.sh: deploy a digest only when one accepted key signed both its SBOM
# (https://spdx.dev/Document) and its build provenance (https://slsa.dev/provenance/v1).
#
# cosign verify-attestation checks the signature and that the statement's subject is
# this digest (cmd/cosign/cli/verify/verify_attestation.go at v3.0.6).
#
# Inputs (environment):
#   IMAGE_URI      registry/repository, without tag
#   IMAGE_DIGEST   the digest to deploy (sha256:...)
#   SIGNING_KEYS   space-separated cosign key references this environment accepts
# Outputs:
#   none (a line naming the key that verified)
# Exit codes:
#   0  one of SIGNING_KEYS signed both attestations
#   1  none did
set -euo pipefail
ref="$IMAGE_URI@$IMAGE_DIGEST"
for key in $SIGNING_KEYS; do
  ok=1
  for type in spdxjson slsaprovenance1; do
    if ! cosign verify-attestation --insecure-ignore-tlog=true --key "$key" --type "$type" \
      "$ref" >/dev/null 2>&1; then
      ok=0
    fi
  done
  if [ "$ok" = 1 ]; then
    echo "$ref: SBOM and provenance verified with $key"
    exit 0
  fi
done
echo "$ref has no SBOM and provenance signed by a key this environment accepts" \
  "($SIGNING_KEYS)" >&2
exit 1
