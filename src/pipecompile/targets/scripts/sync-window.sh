#!/usr/bin/env bash
# sync-window.sh: refuse to record a deploy that Argo CD would sync outside anyone's watch.
#
# An environment with a sync window syncs on its own only inside it.  Recorded outside,
# the new digest would wait in GitOps and be rolled out when the window opens, with no
# deploy watching it (the health wait would time out first).  So before anything is
# recorded: a closed window ends the deploy as outside-sync-window; re-run it inside.
#
# Argo CD's API (assets/swagger.json): GET /api/v1/applications/{name}/syncwindows
# answers applicationApplicationSyncWindowsResponse {assignedWindows, activeWindows,
# canSync}; automated syncs are blocked while a deny window is active, or while the
# application has allow windows and none of them is active (docs: user-guide/sync_windows).
#
# Inputs (environment):
#   ARGOCD_SERVER, ARGOCD_AUTH_TOKEN, ARGOCD_APP, ENVIRONMENT
#   OUTCOME_FILE        a file the outcome is appended to when the window is closed
#   GITHUB_OUTPUT       optional (GitHub Actions): the step's outputs file
# Outputs:
#   outcome=outside-sync-window and reason=sync window closed appended to $OUTCOME_FILE
#   (and the outcome to $GITHUB_OUTPUT) when closed
# Exit codes:
#   0  the window is open (or the application has none)
#   1  closed, or the API could not be asked (the message says which)
set -euo pipefail
body="$(mktemp)"
answer="$(curl -sS -o "$body" -w '%{http_code} %{content_type}' \
  -H "Authorization: Bearer $ARGOCD_AUTH_TOKEN" \
  "$ARGOCD_SERVER/api/v1/applications/$ARGOCD_APP/syncwindows")"
if [ "${answer%% *}" != 200 ] || [[ "${answer#* }" != application/json* ]]; then
  echo "cannot read the sync windows of $ARGOCD_APP from $ARGOCD_SERVER ($answer)" >&2
  exit 1
fi
blocked="$(jq -r '
  ([.activeWindows[]? | select(.kind == "deny")] | length > 0)
  or (([.assignedWindows[]? | select(.kind == "allow")] | length > 0)
      and ([.activeWindows[]? | select(.kind == "allow")] | length == 0))' "$body")"
if [ "$blocked" = true ]; then
  echo "outcome=outside-sync-window" >> "$OUTCOME_FILE"
  # the audit row's reason (audit-row.sh), a manual rollback's too
  echo "reason=sync window closed" >> "$OUTCOME_FILE"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "outcome=outside-sync-window" >> "$GITHUB_OUTPUT"; fi
  echo "$ENVIRONMENT's sync window is closed: Argo CD would roll this out unwatched when it" \
    "opens; nothing was recorded. Re-run this deploy inside the window" \
    "($(jq -c '[.assignedWindows[]? | {kind, schedule, duration}]' "$body"))" >&2
  exit 1
fi
echo "$ARGOCD_APP: the sync window is open"
