#!/usr/bin/env bash
# verify-build.sh: before the signing session signs, find the image of this checkout's
# source tree in the tier's repository, taking nothing from the build session.
#
# The build session runs the branch's own commands (CI steps, the Dockerfile, as root),
# so nothing it reports is trusted or even read: CodePipeline pastes an exported
# variable into the next action's EnvironmentVariables JSON as plain text (a quote in
# the value adds variables: aws-cdk issues #8458, #31213).  The tag is the key
# build-once.sh computes for this checkout ("<TAG_PREFIX>-<tree>": both take it from
# tree-key.sh, the one computation), and the digest is the one the registry holds at
# that tag.  ECR tags are immutable, so it is the one
# the first push of this tree made (a release build reuses one only when the release
# key signed it).  Both are checked by pattern before they are written: they become
# the Sign action's exported variables, which the later actions read.
#
# Inputs (environment):
#   SERVICE_PATH     the service's folder in this checkout ('.' for the root)
#   IMAGE_EXCLUDES   optional: a JSON array of folders left out of the key (as the build's)
#   TAG_PREFIX       optional: src (dev tier, the default) or rel (release tier)
#   ECR_REPOSITORY   the tier's repository name in ECR
#   VERIFIED_IMAGE   the file to write
# Outputs:
#   VERIFIED_IMAGE: one line, "<tag> <digest>" (tag ^[A-Za-z0-9_.-]{1,128}$, digest
#   ^sha256:[0-9a-f]{64}$); a line naming the tag and digest found
# Exit codes:
#   0  the registry holds a sha256 digest at this tree's tag
#   1  it holds none there (or not a sha256 digest), or a failing aws/git command
set -euo pipefail
# shellcheck source=SCRIPTDIR/tree-key.sh
. "$(dirname "${BASH_SOURCE[0]}")/tree-key.sh"  # the image key: tag
if ! [[ "$tag" =~ ^[A-Za-z0-9_.-]{1,128}$ ]]; then
  echo "refusing to sign: '$tag' is not an image tag" >&2
  exit 1
fi
if ! found="$(aws ecr describe-images --repository-name "$ECR_REPOSITORY" \
  --image-ids "imageTag=$tag" --query 'imageDetails[0].imageDigest' --output text 2>&1)"; then
  echo "refusing to sign: $ECR_REPOSITORY:$tag cannot be read: $found" >&2
  exit 1
fi
if ! [[ "$found" =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "refusing to sign: $ECR_REPOSITORY:$tag is '$found', not a sha256 digest" >&2
  exit 1
fi
printf '%s %s\n' "$tag" "$found" > "$VERIFIED_IMAGE"
echo "$ECR_REPOSITORY:$tag is $found, the image of this source tree"
