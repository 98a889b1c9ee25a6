#!/usr/bin/env bash
# failure-alert.sh: alert the people who caused a failed run, in the channel.
#
# Direct developer alerts (issue 29, item 1): the pusher and the commit's author, as
# GitHub logins, mapped to Slack member IDs (notifications.slack.users; on CodePipeline
# delivery the Terraform variable slack_user_ids) and mentioned, so Slack notifies each
# of them; a login without a mapping is named in plain text. On GitHub Actions the run
# names them (AUTHORS) and the message goes out through the webhook (the mention is this
# script's output); on CodePipeline the failed execution's commit is looked up on GitHub
# and an AWS Chatbot custom notification goes to the topic, in the thread of the
# execution's failure notification.
#
# Inputs (environment):
#   SLACK_USER_IDS   JSON object: GitHub login -> Slack member ID (may be {})
#   AUTHORS          optional: the GitHub logins, space-separated (GitHub Actions)
#   PIPELINE         optional (CodePipeline): the failed pipeline
#   EXECUTION_ID     optional (CodePipeline): its execution; its commit names the people
#   REPOSITORY       optional (CodePipeline): owner/name on GitHub
#   TOKEN_SECRET     optional (CodePipeline): Secrets Manager, a GitHub token that may
#                    read the repository's commits
#   TOPIC_ARN        optional (CodePipeline): the pipeline topic AWS Chatbot reads
#   AWS_REGION       optional (CodePipeline): the region (for the console link)
#   GITHUB_API       optional: the API root (default https://api.github.com)
#   GITHUB_OUTPUT    optional (GitHub Actions): mention=... for the Slack step
# Outputs:
#   the mention line on stdout (and in GITHUB_OUTPUT); on CodePipeline one SNS message
# Exit codes:
#   0  alerted (or nobody to name: the channel still has the failure message)
#   1  an AWS call or the GitHub API failed
set -euo pipefail
logins="${AUTHORS:-}"
sha=""
if [ -n "${EXECUTION_ID:-}" ]; then
  sha="$(aws codepipeline get-pipeline-execution --pipeline-name "$PIPELINE" \
    --pipeline-execution-id "$EXECUTION_ID" \
    --query 'pipelineExecution.artifactRevisions[0].revisionId' --output text)"
  if [[ "$sha" =~ ^[0-9a-f]{40}$ ]]; then
    umask 077
    headers="$(mktemp)"
    trap 'rm -f "$headers"' EXIT
    printf 'Accept: application/vnd.github+json\n' > "$headers"
    if [ -n "${TOKEN_SECRET:-}" ]; then  # the token reaches curl in a file, never argv
      printf 'Authorization: Bearer %s\n' \
        "$(aws secretsmanager get-secret-value --secret-id "$TOKEN_SECRET" \
          --query SecretString --output text)" >> "$headers"
    fi
    # the author and the committer (a merge in the web UI is committed by web-flow)
    logins="$logins $(curl -fsS -H @"$headers" \
      "${GITHUB_API:-https://api.github.com}/repos/$REPOSITORY/commits/$sha" \
      | jq -r '[.author.login, .committer.login] | map(select(. != null and . != "web-flow"))
        | join(" ")')"
  fi
fi
# logins as GitHub spells them (bots lose their [bot]); each person once, in order
mention="$(jq -rn --arg logins "$logins" --argjson users "$SLACK_USER_IDS" '
  [$logins | splits(" +") | sub("\\[bot\\]$"; "") | select(test("^[A-Za-z0-9-]{1,39}$"))]
  | reduce .[] as $l ([]; if index($l) then . else . + [$l] end)
  | map(if $users[.] then "<@\($users[.])>" else . end) | join(" ")')"
echo "mention=$mention"
if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "mention=$mention" >> "$GITHUB_OUTPUT"; fi
if [ -n "${TOPIC_ARN:-}" ]; then
  url="https://${AWS_REGION:-us-east-1}.console.aws.amazon.com/codesuite/codepipeline/pipelines/$PIPELINE/executions/$EXECUTION_ID/timeline"
  message="$(jq -nc --arg p "$PIPELINE" --arg e "$EXECUTION_ID" --arg m "$mention" \
    --arg sha "${sha:-unknown}" --arg u "$url" '{version: "1.0", source: "custom",
      content: {textType: "client-markdown", title: "\($p) FAILED",
        description: ((if $m == "" then "" else "\($m): your change failed. " end)
          + "Commit \($sha), execution \($e): \($u)")},
      metadata: {eventType: "failure-alert", threadId: $e,
        additionalContext: {status: "failure-alert", pipeline: $p, execution: $e}}}')"
  aws sns publish --topic-arn "$TOPIC_ARN" --message "$message" >/dev/null
  echo "alerted ${mention:-nobody named} about $PIPELINE"
fi
