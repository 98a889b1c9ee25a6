#!/usr/bin/env bash
# install-cosign.sh: install the pinned cosign release, checked against its pinned sha256
# (CodeBuild; GitHub Actions uses sigstore/cosign-installer with the same release).
#
# Inputs (environment):
#   COSIGN_VERSION   the release tag (v3.0.6)
#   COSIGN_SHA256    sha256 of its cosign-linux-amd64
# Outputs:
#   /usr/local/bin/cosign
# Exit codes:
#   0  installed and checked
#   1  the checksum differs (the file stays, not executable)
#   22 the download failed with an HTTP error (curl --fail: 404 for an unknown release);
#      curl's other codes when GitHub did not answer
set -euo pipefail
curl -fsSL -o /usr/local/bin/cosign "https://github.com/sigstore/cosign/releases/download/${COSIGN_VERSION}/cosign-linux-amd64"
echo "$COSIGN_SHA256  /usr/local/bin/cosign" | sha256sum -c -
chmod +x /usr/local/bin/cosign
