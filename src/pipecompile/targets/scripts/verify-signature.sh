#!/usr/bin/env bash
# verify-signature.sh: accept the image digest only when one of the listed keys signed it.
#
# Inputs (environment):
#   IMAGE_URI      registry/repository, without tag (ecr-login.sh logged in to its registry)
#   IMAGE_DIGEST   the digest to deploy (sha256:...)
#   SIGNING_KEYS   space-separated cosign key references this environment accepts
#                  (an approval environment: the release key alone)
# Outputs:
#   none (a line naming the key that verified)
# Exit codes:
#   0  a signature by one of SIGNING_KEYS verifies
#   1  none does
set -euo pipefail
errors="$(mktemp)"
for key in $SIGNING_KEYS; do
  if cosign verify --insecure-ignore-tlog=true --key "$key" "$IMAGE_URI@$IMAGE_DIGEST" \
    >/dev/null 2>>"$errors"; then
    echo "$IMAGE_URI@$IMAGE_DIGEST: signature verified with $key"
    exit 0
  fi
done
echo "$IMAGE_URI@$IMAGE_DIGEST carries no signature this environment accepts ($SIGNING_KEYS):" >&2
cat "$errors" >&2  # cosign's own reasons (a registry error is not a missing signature)
exit 1
