# One kubeconfig context per environment, named <project>-<environment>, for kubectl,
# Telepresence and OpenLens (specification 6.3). Each context's user authenticates
# with `aws eks get-token` (written by `aws eks update-kubeconfig`) and defaults to
# the environment's namespace.
#
# Inputs, set above by pipecompile: REGION, and CONTEXTS: one line per environment,
# "<context> <EKS cluster> <namespace>", in promotion order.
#
# Usage: bash kubeconfig.sh   (writes to $KUBECONFIG, else ~/.kube/config, as the
# AWS CLI and kubectl do; needs AWS credentials allowed eks:DescribeCluster)
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
