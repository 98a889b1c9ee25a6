#!/usr/bin/env bash
# kubeconfig.sh: one kubeconfig context per environment, named <project>-<environment>.
#
# Inputs (environment):
#   REGION           the AWS region of the clusters (set above by pipecompile)
#   CONTEXTS         one line per environment, "<context> <EKS cluster> <namespace>",
#                    in promotion order (set above by pipecompile)
#   KUBECONFIG       optional: the file to write (else ~/.kube/config, as the AWS CLI
#                    and kubectl do)
# Outputs:
#   a context per environment in the kubeconfig; a line naming each
# Exit codes:
#   0  every context written
#   1  aws or kubectl missing, or a failing aws/kubectl command (the AWS credentials
#      need eks:DescribeCluster)
#
# For kubectl, Telepresence and OpenLens (specification 6.3).  Each context's user
# authenticates with `aws eks get-token` (written by `aws eks update-kubeconfig`) and
# defaults to the environment's namespace.
#
# Usage: bash kubeconfig.sh
set -euo pipefail

for tool in aws kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "kubeconfig: $tool is not installed (see: pipecompile explain --local)" >&2
    exit 1
  fi
done

while read -r context cluster namespace; do
  aws eks update-kubeconfig --region "$REGION" --name "$cluster" \
    --alias "$context" --user-alias "$context"
  kubectl config set-context "$context" --namespace "$namespace" >/dev/null
  echo "context $context: cluster $cluster, namespace $namespace"
done <<<"$CONTEXTS"
