#!/usr/bin/env bash
# rollback-notify.sh: tell the channel how a manual rollback on CodePipeline delivery ended.
#
# A deploy that a pipeline runs is announced by the generated EventBridge rules (the
# pipeline execution's state change, chatops.tf); a manual rollback is a start-build of
# the environment's deploy project (explain --rollback), which no execution reports. So
# the deploy buildspec's finally block runs this when ROLLBACK_REASON is set: one AWS
# Chatbot custom notification to the pipeline topic, with the same environment and
# status in metadata.additionalContext as a deploy's (the subscriptions' filter policies
# and the Slack channel see it as a deploy to that environment), and the reason.
# Its outcome is the deploy's own classification (OUTCOME_FILE, as audit-row.sh reads
# it): outside-sync-window says the sync window is closed, not a silent timeout.
#
# Inputs (environment):
#   TOPIC_ARN           the pipeline topic (AWS Chatbot forwards it to Slack)
#   NOTIFY_EVENTS       the statuses the topic hears (notifications: succeeded, failed)
#   SERVICE, ENVIRONMENT, IMAGE_DIGEST
#   ROLLBACK_REASON     why (the person starting the build gave it)
#   ACTOR               who started the build (CODEBUILD_INITIATOR)
#   OUTCOME_FILE        the outcome file the deploy steps append to (may be missing)
#   DEPLOY_STATUS       the outcome when OUTCOME_FILE has none
#   RUN                 the build's id
#   AWS_REGION          optional: the region (for the console link)
# Outputs:
#   one SNS message; a line on stdout
# Exit codes:
#   0  published (or its status is not one the topic hears)
#   1  the publish failed
set -euo pipefail
outcome=""
if [ -f "$OUTCOME_FILE" ]; then
  outcome="$(sed -n 's/^outcome=//p' "$OUTCOME_FILE" | tail -n 1)"
fi
outcome="${outcome:-${DEPLOY_STATUS:-failed}}"
case "$outcome" in
  succeeded) status=succeeded; what="succeeded: $SERVICE runs ${IMAGE_DIGEST:-?} again" ;;
  outside-sync-window)
    status=failed
    what="FAILED: sync window closed: Argo CD syncs $ENVIRONMENT only inside its window, so nothing was rolled back" ;;
  *) status=failed; what="FAILED ($outcome)" ;;
esac
case " ${NOTIFY_EVENTS:-succeeded failed} " in
  *" $status "*) ;;
  *) echo "rollback $status: not an event the topic hears ($NOTIFY_EVENTS)"; exit 0 ;;
esac
build="${RUN:-unknown}"
url="https://${AWS_REGION:-us-east-1}.console.aws.amazon.com/codesuite/codebuild/projects/${build%%:*}/build/${build//:/%3A}/"
message="$(jq -nc --arg e "$ENVIRONMENT" --arg s "$SERVICE" --arg status "$status" \
  --arg what "$what" --arg why "$ROLLBACK_REASON" --arg who "${ACTOR:-unknown}" \
  --arg o "$outcome" --arg u "$url" --arg b "$build" '{version: "1.0", source: "custom",
    content: {textType: "client-markdown",
      title: "\($e): manual rollback of \($s) \($what)",
      description: "Reason: \($why). Started by \($who). Build \($b): \($u)"},
    metadata: {eventType: "rollback", threadId: $b,
      additionalContext: {environment: $e, status: $status, service: $s,
        trigger: "manual", outcome: $o}}}')"
aws sns publish --topic-arn "$TOPIC_ARN" --message "$message" >/dev/null
echo "told the channel: $ENVIRONMENT: manual rollback of $SERVICE $what"
