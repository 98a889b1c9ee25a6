#!/usr/bin/env bash
# wait-healthy.sh: wait until Argo CD reports the Application healthy at the new digest.
#
# A deploy is done when Argo CD reports the Application Synced and Healthy with the
# new digest among its live images: Degraded means Argo Rollouts aborted the rollout
# (the analysis failed) and the stable version serves again.
#
# Inputs (environment):
#   ARGOCD_SERVER       Argo CD's URL (a secret)
#   ARGOCD_AUTH_TOKEN   an Argo CD API token (a secret)
#   ARGOCD_APP          the Application's name
#   SERVICE             the service (for messages)
#   ENVIRONMENT         the environment (for messages)
#   IMAGE_DIGEST        the digest that must be live
#   WAIT_SECONDS        how long to wait
#   OUTCOME_FILE        a file the outcome is appended to
#   GITHUB_OUTPUT       optional (GitHub Actions): the step's outputs file
# Outputs:
#   outcome=succeeded|rolled-back|timed-out appended to $OUTCOME_FILE (and $GITHUB_OUTPUT)
# Exit codes:
#   0  succeeded
#   1  rolled back, or not healthy within WAIT_SECONDS
set -euo pipefail
deadline=$((SECONDS + WAIT_SECONDS))
outcome=timed-out
state="no answer yet"
while [ "$SECONDS" -lt "$deadline" ]; do
  app="$(curl -fsS -H "Authorization: Bearer $ARGOCD_AUTH_TOKEN" \
    "$ARGOCD_SERVER/api/v1/applications/$ARGOCD_APP?refresh=normal" || echo '{}')"
  sync="$(jq -r '.status.sync.status // "Unknown"' <<<"$app")"
  health="$(jq -r '.status.health.status // "Unknown"' <<<"$app")"
  live="$(jq -r --arg d "$IMAGE_DIGEST" \
    '[.status.summary.images[]? | select(endswith("@" + $d))] | length' <<<"$app")"
  state="sync $sync, health $health, new digest live: $live"
  echo "$ARGOCD_APP: $state"
  if [ "$live" -gt 0 ] && [ "$sync" = Synced ] && [ "$health" = Healthy ]; then
    outcome=succeeded
    break
  fi
  if [ "$live" -gt 0 ] && [ "$health" = Degraded ]; then
    outcome=rolled-back
    break
  fi
  sleep 20
done
echo "outcome=$outcome" >> "$OUTCOME_FILE"
if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "outcome=$outcome" >> "$GITHUB_OUTPUT"; fi
case "$outcome" in
  succeeded) echo "$SERVICE is healthy in $ENVIRONMENT at $IMAGE_DIGEST" ;;
  rolled-back)
    echo "the rollout of $SERVICE to $ENVIRONMENT was aborted and rolled back ($state)" >&2
    exit 1 ;;
  *)
    echo "$SERVICE was not healthy in $ENVIRONMENT within $WAIT_SECONDS s ($state)" >&2
    exit 1 ;;
esac
