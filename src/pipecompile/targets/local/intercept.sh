# shellcheck disable=SC2153  # the inputs: set by intercept-<service>.sh, which sources this
# Intercept a service of a remote environment with the open-source Telepresence CLI
# (specification 6.2): the cluster's traffic to the service reaches your machine, and
# the remote pod's environment is written to an env file for your local process.
#
# Sourced by intercept-<service>.sh, which sets its inputs: SERVICE (the workload's
# name), WORKLOAD_KIND (deployment, or rollout for canary and blue-green), NAMESPACE,
# CONTEXT (the kubeconfig context kubeconfig.sh creates), SERVICE_PORT, LOCAL_PORT (the
# default), ENV_FILE (relative to this script's folder).
#
# Usage: bash intercept-<service>.sh [LOCAL_PORT] [-- COMMAND...]
#   With a command, Telepresence runs it with the remote environment and ends the
#   intercept when it exits; without one, the intercept stays until
#   `telepresence leave <service>`.
set -euo pipefail
: "${SERVICE:?run intercept-<service>.sh: it sets the values}"

if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  LOCAL_PORT="$1"
  shift
fi
case "$LOCAL_PORT" in
  '' | *[!0-9]*)
    echo "intercept: the local port must be a number, got '$LOCAL_PORT'" >&2
    exit 2
    ;;
esac
if [ "$LOCAL_PORT" -lt 1 ] || [ "$LOCAL_PORT" -gt 65535 ]; then
  echo "intercept: the local port must be 1-65535, got $LOCAL_PORT" >&2
  exit 2
fi
if [ $# -gt 0 ]; then
  shift  # the "--" before the command
fi

for tool in telepresence kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "intercept: $tool is not installed (see: pipecompile explain --local)" >&2
    exit 1
  fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_file="$here/$ENV_FILE"

# The workload must exist with the kind the pipeline deploys; a Rollout can only be
# intercepted when the traffic manager was installed with Argo Rollouts support.
if ! kubectl --context "$CONTEXT" --namespace "$NAMESPACE" get "$WORKLOAD_KIND" "$SERVICE" \
  >/dev/null; then
  echo "intercept: no $WORKLOAD_KIND '$SERVICE' in namespace $NAMESPACE of $CONTEXT" \
    "(run kubeconfig.sh first, and deploy the service there)" >&2
  exit 1
fi
if [ "$WORKLOAD_KIND" = rollout ]; then
  echo "intercept: $SERVICE is an Argo Rollout; the traffic manager needs" \
    "workloads.argoRollouts.enabled=true (telepresence helm install" \
    "--set workloads.argoRollouts.enabled=true)" >&2
fi

telepresence connect --context "$CONTEXT" --namespace "$NAMESPACE"
if [ $# -gt 0 ]; then
  exec telepresence intercept "$SERVICE" --port "$LOCAL_PORT:$SERVICE_PORT" \
    --env-file "$env_file" -- "$@"
fi
telepresence intercept "$SERVICE" --port "$LOCAL_PORT:$SERVICE_PORT" --env-file "$env_file"
echo "intercepting $SERVICE: start it on localhost:$LOCAL_PORT with the environment in" \
  "$env_file; end with: telepresence leave $SERVICE"
