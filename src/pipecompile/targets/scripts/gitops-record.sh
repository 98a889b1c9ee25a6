#!/usr/bin/env bash
# gitops-record.sh: write a deployment into the GitOps repository in one commit: the
# chart and this service's values (copied from CHART_SOURCE and VALUES_SOURCE of this
# checkout, when set) and image-<env>.yaml (repository, tag, digest), all in GITOPS_DIR.
#
# Inputs (environment):
#   GITOPS_AUTH         ssh (reads GITOPS_DEPLOY_KEY) or https (reads GITOPS_TOKEN)
#   GITOPS_DEPLOY_KEY   the deploy key (a secret; GITOPS_AUTH=ssh)
#   GITOPS_TOKEN        a token that may push (a secret; GITOPS_AUTH=https)
#   GITOPS_REPOSITORY   the GitOps repository's URL
#   GITOPS_REVISION     its branch, or HEAD for the default branch
#   GITOPS_DIR          this service x environment's folder in it
#   CHART_SOURCE        optional: the chart's folder in this checkout
#   VALUES_SOURCE       the service's values folder in this checkout (with CHART_SOURCE)
#   SERVICE             the service
#   ENVIRONMENT         the environment
#   IMAGE_URI           registry/repository, without tag
#   IMAGE_TAG           the image's tag
#   IMAGE_DIGEST        the digest to deploy
#   HOME                where the SSH key is written (GITOPS_AUTH=ssh)
#   OUTCOME_FILE        optional: the deploy's outcome file (wait-healthy.sh, audit-row.sh)
# Outputs:
#   a commit in GITOPS_REPOSITORY (none when it records this digest already); the line
#   recorded=true appended to OUTCOME_FILE once GitOps holds the digest: audit-row.sh
#   records it, and the rows that recorded their digest count as live whatever the
#   wait then saw (cancelled, timed-out, waiting-for-promotion: rollback-resolve.sh)
# Exit codes:
#   0  recorded, or already recorded
#   1  the chart or values are missing, the push failed 5 times, or the chart or values
#      hold a symbolic link or anything but regular files and folders (the branch under
#      deploy chooses them: a values file linked to the deploy key, /proc/self/environ or
#      any file of this machine would otherwise be committed to the GitOps repository),
#      or IMAGE_TAG, IMAGE_DIGEST or IMAGE_URI is outside its format (an ECR tag, a
#      sha256 digest, registry/repository): they come from the build's variables, which a
#      feature branch's buildspec sets, and land in the YAML of image-<env>.yaml
set -euo pipefail
# GitOps holds the digest now: Argo CD syncs it whatever the deploy's wait sees after
recorded() {
  if [ -n "${OUTCOME_FILE:-}" ]; then echo "recorded=true" >> "$OUTCOME_FILE"; fi
}
# refuses the value of variable $1 unless all of it matches the extended regex $2
only_format() {
  local value="${!1}"
  if [[ "$value" == *$'\n'* ]] || ! grep -Eqx -- "$2" <<< "$value"; then
    echo "refusing $1: '$value' is not $3" >&2
    exit 1
  fi
}
# before anything is written: each lands between double quotes in a YAML file
only_format IMAGE_TAG '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}' "an image tag (ECR: 1-128 of A-Z a-z 0-9 _ . -)"
only_format IMAGE_DIGEST 'sha256:[0-9a-f]{64}' "a sha256 digest"
only_format IMAGE_URI '[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+' "registry/repository"
# refuses a link in any component of the checkout-relative path $1, then anything in
# the tree at $1 that is not a regular file or a folder (find does not follow links)
only_plain_files() {
  local path="$PWD" part
  local -a parts
  IFS=/ read -r -a parts <<< "$1"
  for part in "${parts[@]}"; do
    case "$part" in
      "" | .) continue ;;
      ..) echo "refusing to deploy from '$1': it leaves the checkout" >&2; exit 1 ;;
    esac
    path="$path/$part"
    if [ -L "$path" ]; then
      echo "refusing to deploy $1: $path is a symbolic link" >&2
      exit 1
    fi
  done
  if [ ! -e "$path" ]; then
    echo "refusing to deploy: $1 is missing from this checkout" >&2
    exit 1
  fi
  local odd
  odd="$(find "$path" ! -type f ! -type d -print -quit)"
  if [ -n "$odd" ]; then
    echo "refusing to deploy $1: $odd is not a regular file (links are never copied)" >&2
    exit 1
  fi
}
chart=""
if [ -n "${CHART_SOURCE:-}" ]; then
  # before any credential is on this machine: the checkout is the branch's
  only_plain_files "$CHART_SOURCE"
  only_plain_files "$VALUES_SOURCE/values-$ENVIRONMENT.yaml"
  chart="$PWD/$CHART_SOURCE"  # the generated chart and this service's values, in this checkout
  values="$PWD/$VALUES_SOURCE/values-$ENVIRONMENT.yaml"
  # (each its own command: under set -e a failed test before && does not stop the script)
  for need in "$chart/Chart.yaml" "$values"; do
    if [ ! -f "$need" ]; then
      echo "refusing to deploy: $need is missing from this checkout" >&2
      exit 1
    fi
  done
fi
if [ "$GITOPS_AUTH" = https ]; then
  auth="$(printf 'x-access-token:%s' "$GITOPS_TOKEN" | base64 | tr -d '\n')"
  git config --global "http.extraheader" "Authorization: Basic $auth"
else
  mkdir -p "$HOME/.ssh"
  chmod 700 "$HOME/.ssh"
  printf '%s\n' "$GITOPS_DEPLOY_KEY" > "$HOME/.ssh/gitops_deploy_key"
  chmod 600 "$HOME/.ssh/gitops_deploy_key"
  export GIT_SSH_COMMAND="ssh -i $HOME/.ssh/gitops_deploy_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new"
fi
workdir="$(mktemp -d)"
if [ "$GITOPS_REVISION" = "HEAD" ]; then
  git clone --depth 1 "$GITOPS_REPOSITORY" "$workdir"
else
  git clone --depth 1 --branch "$GITOPS_REVISION" "$GITOPS_REPOSITORY" "$workdir"
fi
cd "$workdir"
if [ -n "$chart" ]; then  # the chart and values this deploy was approved with
  rm -rf "$GITOPS_DIR"
  mkdir -p "$GITOPS_DIR"
  cp -R -P "$chart/." "$GITOPS_DIR/"  # -P: a link stays a link (none passed the check)
  cp -P "$values" "$GITOPS_DIR/"
fi
file="$GITOPS_DIR/image-$ENVIRONMENT.yaml"
mkdir -p "$GITOPS_DIR"
printf '# Written by the deploy pipeline, not by pipecompile.\nimage:\n' > "$file"
printf '  repository: "%s"\n  tag: "%s"\n  digest: "%s"\n' \
  "$IMAGE_URI" "$IMAGE_TAG" "$IMAGE_DIGEST" >> "$file"
git add -A "$GITOPS_DIR"
if git diff --cached --quiet; then
  echo "$SERVICE in $ENVIRONMENT already records $IMAGE_DIGEST"
  recorded
  exit 0
fi
# the clone's own identity: the commit and a lost race's `git pull --rebase` (which
# rewrites the commit, so needs a committer) both use it; neither GitHub-hosted runners
# nor the CodeBuild image configure one
git config user.name "pipecompile deploy"
git config user.email "deploy@pipecompile.invalid"
git commit -q -m "Deploy $SERVICE $IMAGE_TAG ($IMAGE_DIGEST) to $ENVIRONMENT"
branch="$(git rev-parse --abbrev-ref HEAD)"
for attempt in 1 2 3 4 5; do
  if git push -q origin "HEAD:$branch"; then
    echo "recorded $SERVICE $IMAGE_DIGEST for $ENVIRONMENT in $file"
    recorded
    exit 0
  fi
  sleep $((attempt * 3))
  git pull -q --rebase origin "$branch"
done
echo "could not push the new image digest after 5 attempts" >&2
exit 1
