#!/usr/bin/env bash
# build-once.sh: build the service's image once per source tree, or reuse it.
#
# An image is keyed by the git tree of its service folder (the whole tree for a
# service at '.'), less what does not go into the image (IMAGE_EXCLUDES: the other
# services' folders and the folders pipecompile generates or reads deploy values from):
# tag "<TAG_PREFIX>-<tree hash>", so a values-only or workflow-only change reuses it.  A later environment whose source
# tree is the same finds that tag and deploys the very digest that passed the earlier
# ones; a re-run of a build whose push succeeded reuses it instead of failing on the
# immutable tag.
#
# Inputs (environment):
#   SERVICE_PATH     the service's folder in this checkout ('.' for the root)
#   DOCKERFILE       its Dockerfile, relative to the checkout
#   ECR_REGISTRY     the registry host (docker login)
#   ECR_REPOSITORY   the repository name in ECR
#   IMAGE_URI        registry/repository, without tag
#   IMAGE_EXCLUDES   optional: a JSON array of folders (relative to the checkout) inside
#                    SERVICE_PATH left out of the key (jq must be installed then)
#   IMAGE_ENV        a file the result is appended to (default: $GITHUB_OUTPUT)
#   TAG_PREFIX       optional: src (dev tier, the default) or rel (release tier)
#   REUSE_SIGNED_BY  optional: reuse an image found in the registry only when it carries
#                    a cosign signature by this key (the release tier: the release key);
#                    cosign must be installed then
# Outputs:
#   appends IMAGE_TAG=<prefix>-<tree> and IMAGE_DIGEST=sha256:... to $IMAGE_ENV
#   (or $GITHUB_OUTPUT)
# Exit codes:
#   0  built and pushed, or found in the registry
#   1  neither pushed nor found, or found without the signature REUSE_SIGNED_BY asks
#      for (or a failing aws/docker/git command)
set -euo pipefail
# shellcheck source=SCRIPTDIR/tree-key.sh
. "$(dirname "${BASH_SOURCE[0]}")/tree-key.sh"  # the image key: tag
lookup() {
  aws ecr describe-images --repository-name "$ECR_REPOSITORY" --image-ids "imageTag=$tag" \
    --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true
}
digest="$(lookup)"
login() {
  aws ecr get-login-password | docker login --username AWS --password-stdin "$ECR_REGISTRY"
}
if [[ "$digest" == sha256:* ]]; then
  # cosign reads registry credentials only from the docker config file, unless
  # --k8s-keychain is given (sigstore/cosign v3.0.6 cmd/cosign/cli/options/registry.go):
  # the reuse check needs the login as much as the build does
  if [ -n "${REUSE_SIGNED_BY:-}" ]; then
    login >/dev/null
    if ! why="$(cosign verify --insecure-ignore-tlog=true --key "$REUSE_SIGNED_BY" \
      "$IMAGE_URI@$digest" 2>&1 >/dev/null)"; then
      echo "$ECR_REPOSITORY:$tag exists ($digest) without a signature by $REUSE_SIGNED_BY:" \
        "not reusing an image this tier did not sign (delete the tag once you know who" \
        "pushed it); cosign said: $why" >&2
      exit 1
    fi
  fi
  echo "$ECR_REPOSITORY:$tag exists ($digest): this source tree was built before; reusing it"
else
  login
  docker build --file "$DOCKERFILE" --tag "$IMAGE_URI:$tag" "$SERVICE_PATH"
  # tags are immutable: when a concurrent build of the same tree pushed first, ours
  # is refused and the lookup below finds theirs
  docker push "$IMAGE_URI:$tag" || echo "push refused; looking for $tag in the registry"
  digest="$(lookup)"
  if [[ "$digest" != sha256:* ]]; then
    echo "$IMAGE_URI:$tag was neither pushed nor found in $ECR_REPOSITORY" >&2
    exit 1
  fi
fi
# GitHub: the step's own $GITHUB_OUTPUT, read when the step runs (the runner evaluates a
# step's env before it creates that step's file: the github.output context in env names
# the previous step's); CodeBuild: IMAGE_ENV
printf 'IMAGE_TAG=%s\nIMAGE_DIGEST=%s\n' "$tag" "$digest" >> "${IMAGE_ENV:-$GITHUB_OUTPUT}"
