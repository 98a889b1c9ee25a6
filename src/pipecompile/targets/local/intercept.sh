#!/usr/bin/env bash
# intercept.sh: intercept a service of a remote environment with Telepresence.
#
# Inputs (environment):
#   SERVICE          the workload's name (set by intercept-<service>.sh, which sources
#                    this; run alone, it stops and says so)
#   WORKLOAD_KIND    deployment, or rollout for canary and blue-green
#   NAMESPACE        the environment's namespace
#   CONTEXT          the kubeconfig context kubeconfig.sh creates
#   SERVICE_PORT     the service's port in the cluster
#   LOCAL_PORT       the default local port (the first argument overrides it)
#   ENV_FILE         the env file to write, relative to this script's folder
# Outputs:
#   ENV_FILE: the remote pod's environment, for your local process; the intercept
#   (the cluster's traffic to the service reaches localhost:LOCAL_PORT)
# Exit codes:
#   0  intercepting (with a command: the command's own exit code)
#   1  telepresence or kubectl missing, no such workload, or a failing telepresence
#      command
#   2  the local port is not a number in 1-65535
#
# The open-source Telepresence CLI (specification 6.2).
#
# Usage: bash intercept-<service>.sh [LOCAL_PORT] [-- COMMAND...]
#   With a command, Telepresence runs it with the remote environment and ends the
#   intercept when it exits; without one, the intercept stays until
#   `telepresence leave <service>`.
# shellcheck disable=SC2153  # the inputs: set by intercept-<service>.sh, which sources this
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
