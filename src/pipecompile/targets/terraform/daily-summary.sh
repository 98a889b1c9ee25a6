#!/usr/bin/env bash
# The daily deployment summary (issue 29, item 1): the last 24 hours of the audit
# table, posted to the pipeline topic as one AWS Chatbot custom notification (the
# Slack channel shows it). Run by the <project>-daily-summary CodeBuild project on
# an EventBridge schedule.
#
# Inputs (environment): DEPLOYMENTS_TABLE, TOPIC_ARN, SERVICES (space-separated),
# PROJECT; optional NOW (an ISO 8601 UTC time, for tests) instead of the clock.
set -euo pipefail
now="${NOW:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
since="$(date -u -d "$now - 24 hours" +%Y-%m-%dT%H:%M:%SZ)"
rows="[]"
for service in $SERVICES; do
  values="$(jq -nc --arg s "$service" --arg t "$since" '{":s": {S: $s}, ":t": {S: $t}}')"
  # the table's key is (service, deployed_at): one query per service, every page
  page="$(aws dynamodb query --table-name "$DEPLOYMENTS_TABLE" \
    --key-condition-expression 'service = :s AND deployed_at >= :t' \
    --expression-attribute-values "$values" --output json)"
  rows="$(jq -c --argjson page "$page" '. + [$page.Items[]? | {
      service: .service.S, environment: (.environment.S // "?"),
      outcome: (.outcome.S // "?"), tag: (.image_tag.S // "none"), at: .deployed_at.S}]' \
    <<<"$rows")"
done
message="$(jq -c --arg project "$PROJECT" --arg since "$since" '
  length as $n
  | {version: "1.0", source: "custom",
     content: {textType: "client-markdown",
       title: "\($project): \($n) deployment(s) since \($since)",
       description: (if $n == 0 then "No deployments."
         else (sort_by(.at) | map("\(.at) \(.service) -> \(.environment): \(.outcome) (\(.tag))")
           | join("\n")) end)},
     metadata: {eventType: "daily-summary", additionalContext: {status: "summary"}}}' \
  <<<"$rows")"
aws sns publish --topic-arn "$TOPIC_ARN" --message "$message" >/dev/null
echo "posted the summary of $(jq length <<<"$rows") deployment(s) since $since"
