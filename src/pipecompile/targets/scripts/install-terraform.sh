#!/usr/bin/env bash
# install-terraform.sh: install the pinned Terraform release, checked against its pinned
# sha256, for the scheduled drift check (CodeBuild and GitHub Actions alike).
#
# Inputs (environment):
#   TERRAFORM_VERSION   the release (1.11.4)
#   TERRAFORM_SHA256    sha256 of its terraform_<version>_linux_amd64.zip
#   BIN_DIR             optional: where to put the binary (default /usr/local/bin)
#   RELEASES_URL        optional: the releases root (default https://releases.hashicorp.com)
#   GITHUB_PATH         optional (GitHub Actions): BIN_DIR is added to later steps' PATH
# Outputs:
#   BIN_DIR/terraform
# Exit codes:
#   0  installed and checked
#   1  the download failed or the checksum differs (nothing installed)
set -euo pipefail
bin="${BIN_DIR:-/usr/local/bin}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
zip="terraform_${TERRAFORM_VERSION}_linux_amd64.zip"
curl -fsSL -o "$work/$zip" "${RELEASES_URL:-https://releases.hashicorp.com}/terraform/$TERRAFORM_VERSION/$zip"
(cd "$work" && echo "$TERRAFORM_SHA256  $zip" | sha256sum -c -)
# the standard images and GitHub's runners have unzip; python3 -m zipfile would do too
unzip -q -o "$work/$zip" terraform -d "$work"
mkdir -p "$bin"
install -m 0755 "$work/terraform" "$bin/terraform"
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$bin" >> "$GITHUB_PATH"
fi
"$bin/terraform" version
