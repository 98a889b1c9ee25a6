#!/usr/bin/env bash
# sign-once.sh: sign the image digest with the KMS key, unless it is signed already.
#
# cosign flags checked against the pinned cosign (v3.0.6, the installer's bootstrap):
# cmd/cosign/cli/options/sign.go (--yes, --key, --tlog-upload, --use-signing-config:
# true by default, and signcommon/common.go refuses --tlog-upload=false with it) and
# options/verify.go (--insecure-ignore-tlog).  The KMS client calls kms:DescribeKey,
# kms:GetPublicKey and kms:Sign (tests/test_delivery.py checks the IAM grants them).
#
# Inputs (environment):
#   IMAGE_URI      registry/repository, without tag (ecr-login.sh logged in to its registry)
#   IMAGE_DIGEST   the digest to sign (sha256:...)
#   SIGNING_KEY    the cosign key reference (awskms:///alias/...)
# Outputs:
#   a signature of IMAGE_URI@IMAGE_DIGEST in the registry
# Exit codes:
#   0  signed, or already signed with SIGNING_KEY
#   1  cosign could not sign
set -euo pipefail
if cosign verify --insecure-ignore-tlog=true --key "$SIGNING_KEY" "$IMAGE_URI@$IMAGE_DIGEST" >/dev/null 2>&1; then
  echo "$IMAGE_URI@$IMAGE_DIGEST is already signed with $SIGNING_KEY"
else
  cosign sign --yes --use-signing-config=false --tlog-upload=false --key "$SIGNING_KEY" \
    "$IMAGE_URI@$IMAGE_DIGEST"
fi
