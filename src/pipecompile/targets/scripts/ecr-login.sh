#!/usr/bin/env bash
# ecr-login.sh: log docker in to the ECR registry, for the cosign steps after it.
#
# Inputs (environment):
#   ECR_REGISTRY   the registry host (<account>.dkr.ecr.<region>.amazonaws.com)
# Outputs:
#   the registry's credentials in the docker config file ($DOCKER_CONFIG/config.json,
#   else ~/.docker/config.json), for the rest of the job or build
# Exit codes:
#   0  logged in
#   1  aws ecr get-login-password or docker login failed
#
# cosign reads registry credentials only from the docker config file (sigstore/cosign
# v3.0.6, cmd/cosign/cli/options/registry.go: the default keychain unless
# --k8s-keychain): the signing and the verification log in first, also when this job
# or build pushed nothing.
set -euo pipefail
aws ecr get-login-password | docker login --username AWS --password-stdin "$ECR_REGISTRY" \
  >/dev/null
echo "logged in to $ECR_REGISTRY"
