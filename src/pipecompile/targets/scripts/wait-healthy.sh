#!/usr/bin/env bash
# wait-healthy.sh: wait until Argo CD reports the Application healthy at the new digest,
# and say truthfully what happened otherwise.
#
# Outcomes (the audit's names):
#   succeeded              Synced and Healthy with the new digest live
#   rolled-back            Argo Rollouts aborted the rollout (Degraded, and the live Rollout's
#                          status.abort, the abort in the health message, or the new digest
#                          gone): the stable version serves
#   failed                 Degraded with the new digest live (a Deployment past its progress
#                          deadline stays on the new version: nothing rolled back), a failed
#                          sync operation, or an API that cannot be used (401, 403, HTML)
#   waiting-for-promotion  PROMOTION=manual, the new digest live, and the Rollout paused
#                          for promotion (BlueGreenPause) with its pre-promotion analysis
#                          Successful: a person promotes it (kubectl argo rollouts
#                          promote); not a failure. A Rollout paused because its analysis
#                          was inconclusive is not waiting for promotion: the wait goes on
#   timed-out              none of these within WAIT_SECONDS
#
# Argo CD's API (assets/swagger.json): GET /api/v1/applications/{name} answers a
# v1alpha1Application (status.sync.status, status.health.{status,message},
# status.summary.images, status.operationState.phase); a bad token is HTTP 401; an
# application the token cannot see is 403; a path that is not the API (a wrong
# ARGOCD_SERVER, an SSO page in front) answers HTML.  Those fail at once: waiting
# would only hide them.  GET /api/v1/applications/{name}/resource?namespace=&
# resourceName=&group=&version=&kind= answers the live object as JSON text in
# "manifest" (applicationApplicationResourceResponse): the Rollout named SERVICE in the
# Application's destination namespace.
#
# When a blue-green Rollout is ready for promotion (argo-rollouts v1.9.0): the
# controller adds the pause condition BlueGreenPause only once pre-promotion analysis
# is Successful (rollout/bluegreen.go reconcileBlueGreenPause, "not ready for pause:
# prePromotionAnalysis incomplete"; rollout/pause.go completedPrePromotionAnalysis);
# an inconclusive run pauses it with InconclusiveAnalysisRun instead (types.go
# PauseReasonInconclusiveAnalysis). Argo CD shows both as Suspended (its Rollout health
# check maps phase Paused to Suspended), so the pause reason and the analysis status are
# read from the Rollout itself: status.pauseConditions[].reason and
# status.blueGreen.prePromotionAnalysisRunStatus.status.
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
#   PROMOTION           optional: manual (blue-green without auto-promotion) or auto
#   POLL_SECONDS        optional: between two questions (default 20)
#   GITHUB_OUTPUT       optional (GitHub Actions): the step's outputs file
# Outputs:
#   outcome=<outcome> appended to $OUTCOME_FILE (and $GITHUB_OUTPUT)
# Exit codes:
#   0  succeeded, or waiting-for-promotion
#   1  any other outcome
set -euo pipefail
deadline=$((SECONDS + WAIT_SECONDS))
outcome=timed-out
state="no answer yet"
body="$(mktemp)"
live_rollout="$(mktemp)"
unreachable=0
# read_rollout: the live Rollout SERVICE into $live_rollout; fails when there is none
read_rollout() {
  local ns code
  ns="$(jq -r '.spec.destination.namespace // ""' "$body")"
  code="$(curl -sS -o "$live_rollout" -w '%{http_code}' -G \
    -H "Authorization: Bearer $ARGOCD_AUTH_TOKEN" \
    --data-urlencode "namespace=$ns" --data-urlencode "resourceName=$SERVICE" \
    --data-urlencode group=argoproj.io --data-urlencode version=v1alpha1 \
    --data-urlencode kind=Rollout \
    "$ARGOCD_SERVER/api/v1/applications/$ARGOCD_APP/resource")" && [ "$code" = 200 ] \
    && jq -e '.manifest | fromjson | .kind == "Rollout"' "$live_rollout" >/dev/null 2>&1
}
# promotion_state: why the Rollout SERVICE is (or is not) waiting for a person to promote
# it; prints "ready" when it is paused for promotion with its pre-promotion analysis done
promotion_state() {
  if ! read_rollout; then
    echo "the Rollout $SERVICE cannot be read through Argo CD"
    return
  fi
  jq -r '.manifest | fromjson
    | [.status.pauseConditions[]?.reason] as $reasons
    | (.status.blueGreen.prePromotionAnalysisRunStatus.status // "not started") as $pre
    | if ($reasons | index("InconclusiveAnalysisRun")) then
        "paused: its analysis was inconclusive (a person decides: promote or abort)"
      elif ($reasons | index("BlueGreenPause")) == null then
        "not paused for promotion (\($reasons | join(",") | if . == "" then "running" else . end))"
      elif .spec.strategy.blueGreen.prePromotionAnalysis != null and $pre != "Successful" then
        "pre-promotion analysis \($pre)"
      else "ready" end' "$live_rollout"
}
finish() {
  echo "outcome=$outcome" >> "$OUTCOME_FILE"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "outcome=$outcome" >> "$GITHUB_OUTPUT"; fi
}
while :; do
  if ! answer="$(curl -sS -o "$body" -w '%{http_code} %{content_type}' \
    -H "Authorization: Bearer $ARGOCD_AUTH_TOKEN" \
    "$ARGOCD_SERVER/api/v1/applications/$ARGOCD_APP?refresh=normal")"; then
    unreachable=$((unreachable + 1))
    state="$ARGOCD_SERVER unreachable"
    if [ "$unreachable" -ge 3 ]; then
      outcome=failed
      echo "cannot reach Argo CD at $ARGOCD_SERVER (3 attempts): check ARGOCD_SERVER" >&2
      break
    fi
  else
    unreachable=0
    code="${answer%% *}"
    kind="${answer#* }"
    case "$code" in
      200)
        if [[ "$kind" != application/json* ]] || ! jq -e . "$body" >/dev/null 2>&1; then
          outcome=failed
          echo "$ARGOCD_SERVER answered $kind, not Argo CD's API: a wrong ARGOCD_SERVER, or" \
            "a sign-in page in front of it (use the API server's address)" >&2
          break
        fi ;;
      401)
        outcome=failed
        echo "Argo CD refused the token (401): check ARGOCD_AUTH_TOKEN ($(jq -r '.message // empty' "$body" 2>/dev/null))" >&2
        break ;;
      403|404)
        outcome=failed
        echo "Argo CD does not show application $ARGOCD_APP to this token ($code): check the" \
          "application's name and the token's project role" >&2
        break ;;
      *)
        state="Argo CD answered $code" ;;  # 5xx: the server restarts; ask again
    esac
    if [ "$code" = 200 ]; then
      sync="$(jq -r '.status.sync.status // "Unknown"' "$body")"
      health="$(jq -r '.status.health.status // "Unknown"' "$body")"
      message="$(jq -r '.status.health.message // ""' "$body")"
      operation="$(jq -r '.status.operationState.phase // ""' "$body")"
      live="$(jq -r --arg d "$IMAGE_DIGEST" \
        '[.status.summary.images[]? | select(endswith("@" + $d))] | length' "$body")"
      state="sync $sync, health $health${message:+ ($message)}, new digest live: $live"
      echo "$ARGOCD_APP: $state"
      if [ "$live" -gt 0 ] && [ "$sync" = Synced ] && [ "$health" = Healthy ]; then
        outcome=succeeded
        break
      fi
      if [ "$health" = Degraded ]; then
        # Argo CD 3 no longer fills the application's health message: the abort is read
        # from the Rollout itself (status.abort, set by the controller when analysis or
        # the progress deadline aborts it: argo-rollouts v1.9.0 types.go RolloutStatus)
        if [[ "$message" == *[Aa]bort* ]] || { [ "$live" -eq 0 ] && [ "$sync" = Synced ]; } \
          || { read_rollout && jq -e '.manifest | fromjson | .status.abort == true' \
            "$live_rollout" >/dev/null; }; then
          outcome=rolled-back
          break
        fi
        if [ "$live" -gt 0 ]; then
          outcome=failed
          break
        fi
      fi
      if [ "$operation" = Failed ] || [ "$operation" = Error ]; then
        outcome=failed
        state="$state; sync operation $operation: $(jq -r '.status.operationState.message // ""' "$body")"
        break
      fi
      if [ "${PROMOTION:-auto}" = manual ] && [ "$live" -gt 0 ] && [ "$health" = Suspended ]; then
        promotion="$(promotion_state)"
        if [ "$promotion" = ready ]; then
          outcome=waiting-for-promotion
          break
        fi
        state="$state; $promotion"
        echo "$ARGOCD_APP: $promotion"
      fi
    fi
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    break
  fi
  sleep "${POLL_SECONDS:-20}"
done
finish
case "$outcome" in
  succeeded) echo "$SERVICE is healthy in $ENVIRONMENT at $IMAGE_DIGEST" ;;
  waiting-for-promotion)
    echo "$SERVICE runs $IMAGE_DIGEST as the preview in $ENVIRONMENT, waiting for a person to" \
      "promote it (kubectl argo rollouts promote); $state" ;;
  rolled-back)
    echo "the rollout of $SERVICE to $ENVIRONMENT was aborted and rolled back ($state)" >&2
    exit 1 ;;
  failed)
    echo "the deploy of $SERVICE to $ENVIRONMENT failed ($state)" >&2
    exit 1 ;;
  *)
    echo "$SERVICE was not healthy in $ENVIRONMENT within $WAIT_SECONDS s ($state)" >&2
    exit 1 ;;
esac
