#!/usr/bin/env bash
# review-report.sh: record a scheduled review in the audit table and tell the channel.
#
# The compliance jobs (issue 29, item 4) end here: one audit row per run, keyed
# stream=review/<review> (no deployment stream: the daily summary and the rollback
# queries never see it), deployment=<time>/<run>, and, on CodePipeline delivery, an
# AWS Chatbot custom notification to the pipeline topic (GitHub Actions posts to Slack
# from its own job, where the webhook lives).
#
# Inputs (environment):
#   REVIEW              drift | security
#   TITLE               the message's title ("ecommerce: Terraform drift check")
#   OUTCOME_FILE        the review's outcome=... line (missing: error)
#   SUMMARY_FILE        the review's findings, one per line (may be missing)
#   RUN                 optional: a link to the run (default CODEBUILD_BUILD_URL, CodeBuild's)
#   DEPLOYMENTS_TABLE   optional: the audit table (no row without one)
#   TOPIC_ARN           optional: the pipeline topic (no message without one)
#   POST_CLEAN          optional: "true" posts a clean outcome too (default: only others)
# Outputs:
#   one audit row; one SNS message unless the outcome is clean and POST_CLEAN is not true
# Exit codes:
#   0  recorded (and posted)
#   1  the put-item or the publish failed
set -euo pipefail
outcome=""
if [ -f "$OUTCOME_FILE" ]; then
  outcome="$(sed -n 's/^outcome=//p' "$OUTCOME_FILE" | tail -n 1)"
fi
outcome="${outcome:-error}"
summary=""
if [ -f "$SUMMARY_FILE" ]; then
  summary="$(head -c 3000 "$SUMMARY_FILE")"  # a DynamoDB item and a chat message stay small
fi
at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
run="${RUN:-${CODEBUILD_BUILD_URL:-unknown}}"
if [ -n "${DEPLOYMENTS_TABLE:-}" ]; then
  aws dynamodb put-item --table-name "$DEPLOYMENTS_TABLE" \
    --condition-expression 'attribute_not_exists(#k)' \
    --expression-attribute-names '{"#k":"deployment"}' --item "$(jq -nc \
    --arg review "$REVIEW" --arg at "$at" --arg o "$outcome" --arg r "$run" \
    --arg s "${summary:-none}" \
    '{stream: {S: ("review/" + $review)}, deployment: {S: ($at + "/" + $r)},
      review: {S: $review}, reviewed_at: {S: $at}, outcome: {S: $o}, run: {S: $r},
      summary: {S: $s}}')"
  echo "audit: review/$REVIEW $outcome"
fi
if [ -n "${TOPIC_ARN:-}" ] && { [ "$outcome" != clean ] || [ "${POST_CLEAN:-}" = true ]; }; then
  message="$(jq -nc --arg title "$TITLE: $outcome" --arg s "$summary" --arg r "$run" \
    --arg review "$REVIEW" --arg o "$outcome" '{version: "1.0", source: "custom",
      content: {textType: "client-markdown", title: $title,
        description: ((if $s == "" then "" else $s + "\n" end) + $r)},
      metadata: {eventType: ("review-" + $review),
        additionalContext: {status: ("review-" + $o), review: $review}}}')"
  aws sns publish --topic-arn "$TOPIC_ARN" --message "$message" >/dev/null
  echo "posted the $REVIEW review ($outcome) to the topic"
fi
