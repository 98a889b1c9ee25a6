#!/usr/bin/env bash
# verify-build.sh: before the signing session signs, check that the digest the build
# reported is the image of this checkout's source tree, in the tier's repository.
#
# The build session runs the branch's own commands (CI steps, the Dockerfile), so
# nothing it reports is trusted: the tag must be the key build-once.sh computes for this
# checkout ("<TAG_PREFIX>-<tree>", the same tree: keep the two computations alike;
# tests/targets/test_delivery.py runs both), and the registry must hold IMAGE_DIGEST at
# that tag.  ECR tags are immutable, so the digest at the tag is the one the first push
# of this tree made (a release build reuses one only when the release key signed it).
#
# Inputs (environment):
#   SERVICE_PATH     the service's folder in this checkout ('.' for the root)
#   IMAGE_EXCLUDES   optional: a JSON array of folders left out of the key (as the build's)
#   TAG_PREFIX       optional: src (dev tier, the default) or rel (release tier)
#   ECR_REPOSITORY   the tier's repository name in ECR
#   IMAGE_TAG        the tag the build reported
#   IMAGE_DIGEST     the digest the build reported (sha256:...)
# Outputs:
#   none (a line naming the tag and digest that were checked)
# Exit codes:
#   0  IMAGE_TAG is this tree's tag and the registry holds IMAGE_DIGEST at it
#   1  it is another tree's tag, the registry holds another digest or none there, or a
#      failing aws/git command
set -euo pipefail
case "$IMAGE_DIGEST" in
  sha256:*) ;;
  *) echo "refusing to sign '$IMAGE_DIGEST': not a sha256 digest" >&2; exit 1 ;;
esac
excludes=()
if [ -n "${IMAGE_EXCLUDES:-}" ]; then
  mapfile -t excludes < <(jq -r '.[]' <<<"$IMAGE_EXCLUDES")
fi
if [ "${#excludes[@]}" -gt 0 ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  export GIT_INDEX_FILE="$scratch/index"
  git read-tree HEAD
  git rm -r -q --cached --ignore-unmatch -- "${excludes[@]/#/:(literal)}"
  if [ "$SERVICE_PATH" = . ]; then
    tree="$(git write-tree)"
  else
    tree="$(git write-tree --prefix="$SERVICE_PATH/")"
  fi
  unset GIT_INDEX_FILE
elif [ "$SERVICE_PATH" = . ]; then
  tree="$(git rev-parse 'HEAD^{tree}')"
else
  tree="$(git rev-parse "HEAD:$SERVICE_PATH")"
fi
tag="${TAG_PREFIX:-src}-$tree"
if [ "$IMAGE_TAG" != "$tag" ]; then
  echo "refusing to sign $IMAGE_DIGEST: the build reported tag '$IMAGE_TAG', but this" \
    "source tree's tag is $tag" >&2
  exit 1
fi
if ! found="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageTag=$tag" --query 'imageDetails[0].imageDigest' --output text 2>&1)"; then
  echo "refusing to sign $IMAGE_DIGEST: $ECR_REPOSITORY:$tag cannot be read: $found" >&2
  exit 1
fi
if [ "$found" != "$IMAGE_DIGEST" ]; then
  echo "refusing to sign $IMAGE_DIGEST: $ECR_REPOSITORY:$tag is $found" >&2
  exit 1
fi
echo "$ECR_REPOSITORY:$tag is $IMAGE_DIGEST, the image of this source tree"
