#!/usr/bin/env bash
# wait-healthy.sh: wait until Argo CD reports the Application healthy at the new digest,
# and say truthfully what happened otherwise.
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
#   PROMOTION_WAIT_SECONDS  optional, with PROMOTION=manual: how long a person may take
#                       to promote a preview that passed its analysis (default 0);
#                       WAIT_SECONDS includes it
#   POLL_SECONDS        optional: between two questions (default 20)
#   GITHUB_OUTPUT       optional (GitHub Actions): the step's outputs file
# Outputs:
#   outcome=<outcome> appended to $OUTCOME_FILE (and $GITHUB_OUTPUT)
# Exit codes:
#   0  succeeded, or waiting-for-promotion
#   1  any other outcome (paused-inconclusive too: the release is not judged)
#
# Outcomes (the audit's names):
#   succeeded              Synced and Healthy with the new digest live
#   rolled-back            Argo Rollouts aborted the rollout of the new version (the live
#                          Rollout's pod template carries IMAGE_DIGEST, the controller has
#                          observed it, and status.abort is set): the stable version serves
#   failed                 Degraded at the new pod template without an abort: a Deployment
#                          past its progress deadline or whose pods admission rejects (no
#                          new pod at all: Argo CD builds summary.images from Pods only), a
#                          Rollout with an invalid spec; nothing rolled back. Also a failed
#                          sync operation, or an API that cannot be used (401, 403, HTML)
#   waiting-for-promotion  PROMOTION=manual, the new digest live, and the Rollout paused
#                          for promotion (BlueGreenPause) with its pre-promotion analysis
#                          Successful for PROMOTION_WAIT_SECONDS without a person
#                          promoting it (kubectl argo rollouts promote); not a failure.
#                          Promoted in time, the wait goes on: the post-promotion
#                          analysis runs (Argo CD shows Progressing: the controller's
#                          phase until the new ReplicaSet is stable), then succeeded, or
#                          rolled-back when that analysis aborts it
#   paused-inconclusive    the Rollout of the new version paused because its analysis was
#                          inconclusive (pause reason InconclusiveAnalysisRun), whatever the
#                          strategy: nothing judged it; a person promotes or aborts it (the
#                          commands are printed)
#   timed-out              none of these within WAIT_SECONDS
#
# The status Argo CD shows can be the previous release's: GET ?refresh=normal answers
# before auto-sync applies the new commit (argo-cd v3.5.1 server/application/
# application.go Get waits for the refreshed comparison only; the controller starts the
# auto-sync operation after it),
# and a Rollout that the previous release aborted keeps status.abort until the controller
# sees a new pod template (argo-rollouts v1.9.0 rollout/sync.go resetRolloutStatus,
# called from rollout/canary.go and rollout/bluegreen.go on a new ReplicaSet; types.go
# RolloutStatus.ObservedGeneration is a string the controller writes once it has
# reconciled that generation, as argo-cd's resource_customizations/argoproj.io/Rollout/
# health.lua isGenerationObserved reads it). So Degraded and Suspended are judged only
# on a live workload whose pod template carries IMAGE_DIGEST and whose controller has
# observed that generation (status.observedGeneration == metadata.generation, for a
# Deployment too); before that the wait goes on.
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
set -euo pipefail
deadline=$((SECONDS + WAIT_SECONDS))
outcome=timed-out
state="no answer yet"
body="$(mktemp)"
live_file="$(mktemp)"
namespace=""
unreachable=0
ready_at=""  # when the preview was first seen ready for promotion
# read_live KIND GROUP VERSION: the live object SERVICE of that kind into $live_file; fails
# when the application manages none
read_live() {
  local code
  code="$(curl -sS -o "$live_file" -w '%{http_code}' -G \
    -H "Authorization: Bearer $ARGOCD_AUTH_TOKEN" \
    --data-urlencode "namespace=$namespace" --data-urlencode "resourceName=$SERVICE" \
    --data-urlencode "group=$2" --data-urlencode "version=$3" \
    --data-urlencode "kind=$1" \
    "$ARGOCD_SERVER/api/v1/applications/$ARGOCD_APP/resource")" && [ "$code" = 200 ] \
    && jq -e --arg k "$1" '.manifest | fromjson | .kind == $k' "$live_file" >/dev/null 2>&1
}
# workload_state: where the live workload SERVICE (a Rollout, else a Deployment) stands:
#   none          the application shows neither
#   not-applied   its pod template does not carry IMAGE_DIGEST yet, or its controller has
#                 not observed that generation: its status is the previous release's
#   aborted       a Rollout of the new version that the controller aborted
#   inconclusive  a Rollout of the new version paused: its analysis was inconclusive
#   current       the new version, observed, neither aborted nor inconclusive
workload_state() {
  if ! read_live Rollout argoproj.io v1alpha1 && ! read_live Deployment apps v1; then
    echo none
    return
  fi
  jq -r --arg d "$IMAGE_DIGEST" '.manifest | fromjson
    | if ([.spec.template.spec.containers[]?.image | select(endswith("@" + $d))]
          | length) == 0
        or ((.status.observedGeneration // "") | tostring)
          != ((.metadata.generation // "") | tostring) then "not-applied"
      elif .kind != "Rollout" then "current"
      elif .status.abort == true then "aborted"
      elif [.status.pauseConditions[]?.reason] | index("InconclusiveAnalysisRun") then
        "inconclusive"
      else "current" end' "$live_file"
}
# promotion_state: why the Rollout read into $live is (or is not) waiting for a person to
# promote it; prints "ready" when it is paused for promotion with its pre-promotion
# analysis done
promotion_state() {
  jq -r '.manifest | fromjson
    | [.status.pauseConditions[]?.reason] as $reasons
    | (.status.blueGreen.prePromotionAnalysisRunStatus.status // "not started") as $pre
    | if .kind != "Rollout" then "not a Rollout"
      elif ($reasons | index("BlueGreenPause")) == null then
        "not paused for promotion (\($reasons | join(",") | if . == "" then "running" else . end))"
      elif .spec.strategy.blueGreen.prePromotionAnalysis != null and $pre != "Successful" then
        "pre-promotion analysis \($pre)"
      else "ready" end' "$live_file"
}
finish() {
  echo "outcome=$outcome" >> "$OUTCOME_FILE"
  # the audit row's reason (audit-row.sh): why the rollout was rolled back or failed
  case "$outcome" in
    rolled-back) echo "reason=automatic: the rollout was aborted ($state)" >> "$OUTCOME_FILE" ;;
    succeeded | waiting-for-promotion) ;;
    *) echo "reason=$state" >> "$OUTCOME_FILE" ;;
  esac
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
      namespace="$(jq -r '.spec.destination.namespace // ""' "$body")"
      live="$(jq -r --arg d "$IMAGE_DIGEST" \
        '[.status.summary.images[]? | select(endswith("@" + $d))] | length' "$body")"
      state="sync $sync, health $health${message:+ ($message)}, new digest live: $live"
      echo "$ARGOCD_APP: $state"
      if [ "$live" -gt 0 ] && [ "$sync" = Synced ] && [ "$health" = Healthy ]; then
        outcome=succeeded
        break
      fi
      if [ "$operation" = Failed ] || [ "$operation" = Error ]; then
        outcome=failed
        state="$state; sync operation $operation: $(jq -r '.status.operationState.message // ""' "$body")"
        break
      fi
      if [ "$health" = Degraded ] || [ "$health" = Suspended ]; then
        workload="$(workload_state)"
        case "$workload/$health" in
          aborted/Degraded)
            outcome=rolled-back
            break ;;
          current/Degraded)
            outcome=failed
            break ;;
          none/Degraded)
            # nothing to read the abort from: new pods that are not healthy failed
            if [ "$live" -gt 0 ]; then
              outcome=failed
              break
            fi
            state="$state; no Rollout or Deployment $SERVICE to read" ;;
          inconclusive/*)
            outcome=paused-inconclusive
            break ;;
          current/Suspended)
            if [ "${PROMOTION:-auto}" = manual ] && [ "$live" -gt 0 ]; then
              promotion="$(promotion_state)"
              if [ "$promotion" = ready ]; then
                ready_at="${ready_at:-$SECONDS}"
                if [ $((SECONDS - ready_at)) -ge "${PROMOTION_WAIT_SECONDS:-0}" ]; then
                  outcome=waiting-for-promotion
                  break
                fi
                promotion="waiting for promotion ($((SECONDS - ready_at)) of ${PROMOTION_WAIT_SECONDS:-0} s)"
              fi
              state="$state; $promotion"
              echo "$ARGOCD_APP: $promotion"
            fi ;;
          not-applied/*)
            state="$state; the live $SERVICE does not run $IMAGE_DIGEST yet (the previous release's status)"
            echo "$ARGOCD_APP: the live $SERVICE does not run $IMAGE_DIGEST yet" ;;
          *)
            if [ "${PROMOTION:-auto}" = manual ]; then
              state="$state; the Rollout $SERVICE cannot be read through Argo CD"
            fi ;;
        esac
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
  succeeded)
    echo "$SERVICE is healthy in $ENVIRONMENT at $IMAGE_DIGEST${ready_at:+ (promoted; its post-promotion analysis passed)}" ;;
  waiting-for-promotion)
    echo "$SERVICE runs $IMAGE_DIGEST as the preview in $ENVIRONMENT, waiting for a person to" \
      "promote it (kubectl argo rollouts promote); $state" ;;
  paused-inconclusive)
    echo "the analysis of $SERVICE in $ENVIRONMENT was inconclusive: the Rollout is paused" \
      "at $IMAGE_DIGEST and nothing judged it. Decide: promote it (kubectl argo rollouts" \
      "promote $SERVICE -n $namespace, or argocd app actions run $ARGOCD_APP resume --kind" \
      "Rollout --resource-name $SERVICE) or roll it back (kubectl argo rollouts abort" \
      "$SERVICE -n $namespace, or argocd app actions run $ARGOCD_APP abort --kind Rollout" \
      "--resource-name $SERVICE); $state" >&2
    exit 1 ;;
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
