#!/usr/bin/env bash
# daily-summary.sh: post the last day's deployments from the audit table to the channel.
#
# The daily deployment summary (issue 29, item 1): the last 24 hours of the audit
# table, posted to the pipeline topic as one AWS Chatbot custom notification (the
# Slack channel shows it). Run by the <project>-daily-summary CodeBuild project on
# an EventBridge schedule (CodePipeline delivery), or by daily-summary.yml (GitHub
# delivery: no TOPIC_ARN; the Slack message is its output, which the workflow's
# notifications job posts through the incoming webhook). The table is keyed as audit-row.sh writes it: partition
# stream=<environment>/<service>, sort deployment=<deployed_at>/<run>, so a day is one
# range query per stream.
#
# Inputs (environment):
#   DEPLOYMENTS_TABLE   the audit table
#   TOPIC_ARN           the pipeline topic (AWS Chatbot forwards it to Slack); empty:
#                       write the Slack message instead (SLACK_OUTPUT)
#   SLACK_OUTPUT        optional: without TOPIC_ARN, the file to append the line
#                       payload=<the Slack message as JSON> to (default GITHUB_OUTPUT)
#   SERVICES            the services (space-separated)
#   ENVIRONMENTS        the environments (space-separated)
#   PROJECT             the project (for the title)
#   NOW                 optional: an ISO 8601 UTC time instead of the clock (tests)
# Outputs:
#   one SNS message (Chatbot custom notification), or the payload line; a line on stdout
# Exit codes:
#   0  posted
#   1  a query or the publish failed (nothing posted)
set -euo pipefail
now="${NOW:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
since="$(date -u -d "$now - 24 hours" +%Y-%m-%dT%H:%M:%SZ)"
rows="[]"
for environment in $ENVIRONMENTS; do
  for service in $SERVICES; do
    values="$(jq -nc --arg p "$environment/$service" --arg t "$since" \
      '{":p": {S: $p}, ":t": {S: $t}}')"
    # the CLI follows every page itself; names through placeholders (reserved words)
    page="$(aws dynamodb query --table-name "$DEPLOYMENTS_TABLE" \
      --key-condition-expression '#p = :p AND #d >= :t' \
      --expression-attribute-names '{"#p":"stream","#d":"deployment"}' \
      --expression-attribute-values "$values" --output json)"
    rows="$(jq -c --argjson page "$page" '. + [$page.Items[]? | {
        service: .service.S, environment: (.environment.S // "?"),
        outcome: (.outcome.S // "?"), tag: (.image_tag.S // "none"), at: .deployed_at.S}]' \
      <<<"$rows")"
  done
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
if [ -n "${TOPIC_ARN:-}" ]; then
  aws sns publish --topic-arn "$TOPIC_ARN" --message "$message" >/dev/null
else
  out="${SLACK_OUTPUT:-${GITHUB_OUTPUT:?neither TOPIC_ARN, SLACK_OUTPUT nor GITHUB_OUTPUT is set}}"
  # an incoming webhook's message: the title in bold, then one line per deployment
  jq -c '{text: "*\(.content.title)*\n\(.content.description)"}' <<<"$message" \
    | sed 's/^/payload=/' >>"$out"
fi
echo "posted the summary of $(jq length <<<"$rows") deployment(s) since $since"
