#!/usr/bin/env bash
# attest.sh: attach an SBOM (SPDX JSON, from the pinned syft) and a SLSA v1 build
# provenance to the image digest, each a cosign attestation signed with the tier's key,
# unless the digest carries both already (a reused image was attested when built).
#
# cosign flags checked against the pinned cosign (v3.0.6): cmd/cosign/cli/options/
# attest.go (--yes, --key, --tlog-upload, --use-signing-config, --new-bundle-format:
# true, an OCI referrer per attestation, so an immutable repository takes several) and
# predicate.go (--type spdxjson -> https://spdx.dev/Document, slsaprovenance1 ->
# https://slsa.dev/provenance/v1).  syft (anchore/syft, README at v1.51.0):
# "registry:<ref>" reads the image from the registry with the credentials in
# $DOCKER_CONFIG; "-o spdx-json".
#
# Inputs (environment):
#   IMAGE_URI          registry/repository, without tag
#   IMAGE_DIGEST       the digest (sha256:...)
#   ECR_REGISTRY       the registry host (docker login for syft)
#   SIGNING_KEY        the cosign key reference of this build tier (awskms:///alias/...)
#   SYFT_IMAGE         the pinned syft container image
#   BUILDER_ID         who built it (the CodeBuild project ARN or the GitHub workflow)
#   BUILD_INVOCATION   this run (CodeBuild build ARN or the GitHub run URL)
#   SOURCE_REPOSITORY  the source repository (owner/name)
#   COMMIT             the commit built
#   SERVICE_PATH       the service's folder in the source
# Outputs:
#   two attestations of IMAGE_URI@IMAGE_DIGEST in the registry
# Exit codes:
#   0  attested, or both attestations exist already with SIGNING_KEY
#   1  syft or cosign failed
set -euo pipefail
ref="$IMAGE_URI@$IMAGE_DIGEST"
has() {
  cosign verify-attestation --insecure-ignore-tlog=true --key "$SIGNING_KEY" --type "$1" \
    "$ref" >/dev/null 2>&1
}
if has spdxjson && has slsaprovenance1; then
  echo "$ref already carries its SBOM and provenance signed with $SIGNING_KEY"
  exit 0
fi
work="$(mktemp -d)"
export DOCKER_CONFIG="$work/docker"
mkdir -p "$DOCKER_CONFIG"
aws ecr get-login-password | docker login --username AWS --password-stdin "$ECR_REGISTRY"
docker run --rm -v "$DOCKER_CONFIG:/config:ro" -e DOCKER_CONFIG=/config "$SYFT_IMAGE" \
  "registry:$ref" -o spdx-json > "$work/sbom.spdx.json"
jq -n --arg builder "$BUILDER_ID" --arg run "$BUILD_INVOCATION" \
  --arg repo "$SOURCE_REPOSITORY" --arg commit "$COMMIT" --arg path "$SERVICE_PATH" \
  --arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{
    buildDefinition: {
      buildType: "https://pipecompile.invalid/build-once/v1",
      externalParameters: {repository: $repo, path: $path},
      resolvedDependencies: [{uri: ("git+https://github.com/" + $repo), digest: {gitCommit: $commit}}]
    },
    runDetails: {builder: {id: $builder}, metadata: {invocationId: $run, finishedOn: $now}}
  }' > "$work/provenance.json"
for kind in spdxjson:sbom.spdx.json slsaprovenance1:provenance.json; do
  cosign attest --yes --use-signing-config=false --tlog-upload=false --key "$SIGNING_KEY" \
    --type "${kind%%:*}" --predicate "$work/${kind#*:}" "$ref"
done
echo "$ref: SBOM and provenance attested with $SIGNING_KEY"
