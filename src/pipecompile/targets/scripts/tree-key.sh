#!/usr/bin/env bash
# tree-key.sh: the image key of this checkout's service folder, "<TAG_PREFIX>-<tree>".
#
# Inputs (environment):
#   SERVICE_PATH     the service's folder in this checkout ('.' for the root)
#   IMAGE_EXCLUDES   optional: a JSON array of folders (relative to the checkout) inside
#                    SERVICE_PATH left out of the key (jq must be installed then)
#   TAG_PREFIX       optional: src (dev tier, the default) or rel (release tier)
# Outputs:
#   the shell variable tag: "<TAG_PREFIX>-<tree hash>" (also excludes, scratch, tree)
# Exit codes:
#   none of its own: a file other scripts source, never run alone; a failing git or jq
#   command ends the script that sources it (set -e)
#
# The one computation of the key.  build-once.sh tags the image with it and
# verify-build.sh looks the image up by it, in different sessions (the build's and the
# signing's), so both source this file, and pipecompile inlines this file's body in
# their place wherever it renders them (common.script_body): a buildspec Terraform holds
# (sign.yml) or one the branch supplies (build.yml) cannot read a file of ours at run
# time, but both hold this same text.
# shellcheck disable=SC2034  # its outputs: read by the script that sources it
set -euo pipefail
excludes=()
if [ -n "${IMAGE_EXCLUDES:-}" ]; then
  mapfile -t excludes < <(jq -r '.[]' <<<"$IMAGE_EXCLUDES")
fi
if [ "${#excludes[@]}" -gt 0 ]; then
  # git ls-tree knows no exclude pathspec: the key is the tree a scratch index writes
  # once the excluded folders are removed from it (HEAD's tree, not the work tree)
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
tag="${TAG_PREFIX:-src}-$tree"  # rel- for release-tier builds: never a dev build's image
