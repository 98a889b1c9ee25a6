#!/usr/bin/env bash
# commit-status.sh: report a CodePipeline execution's state back to its commit.
#
# CodePipeline state reported back to the commit (issue 29, item 3): a GitHub commit
# status "codepipeline/<pipeline>" for the commit an execution runs. Run by the
# <project>-commit-status CodeBuild project, which an EventBridge rule starts on every
# execution state change of the project's pipelines.
#
# Inputs (environment):
#   PIPELINE            the pipeline
#   EXECUTION_ID        the execution
#   STATE               the event's detail.state
#   REPOSITORY          owner/name on GitHub
#   TOKEN_SECRET        Secrets Manager: a GitHub token allowed to write commit statuses
#   AWS_REGION          the region (for the console link)
#   GITHUB_API          optional: the API root (default https://api.github.com)
# Outputs:
#   one commit status (context codepipeline/<pipeline>) on the execution's commit
# Exit codes:
#   0  reported, or the execution has no commit revision (nothing to report)
#   1  an AWS call or the GitHub API call failed
set -euo pipefail
case "$STATE" in
  STARTED | RESUMED) status=pending ;;
  SUCCEEDED) status=success ;;
  FAILED) status=failure ;;
  *) status=error ;;  # STOPPED, SUPERSEDED, CANCELED: this execution did not finish
esac
sha="$(aws codepipeline get-pipeline-execution --pipeline-name "$PIPELINE" \
  --pipeline-execution-id "$EXECUTION_ID" \
  --query 'pipelineExecution.artifactRevisions[0].revisionId' --output text)"
if ! [[ "$sha" =~ ^[0-9a-f]{40}$ ]]; then
  echo "execution $EXECUTION_ID of $PIPELINE has no commit revision ($sha): nothing to report" >&2
  exit 0
fi
umask 077
headers="$(mktemp)"
trap 'rm -f "$headers"' EXIT
# the token goes to curl in a file, never on a command line
printf 'Authorization: Bearer %s\n' \
  "$(aws secretsmanager get-secret-value --secret-id "$TOKEN_SECRET" \
    --query SecretString --output text)" > "$headers"
url="https://$AWS_REGION.console.aws.amazon.com/codesuite/codepipeline/pipelines/$PIPELINE/executions/$EXECUTION_ID/timeline"
body="$(jq -nc --arg s "$status" --arg u "$url" --arg c "codepipeline/$PIPELINE" \
  --arg d "$PIPELINE: ${STATE,,}" '{state: $s, target_url: $u, context: $c, description: $d}')"
curl -fsS -X POST -H @"$headers" -H "Accept: application/vnd.github+json" \
  -H "X-GitHub-Api-Version: 2022-11-28" --data "$body" \
  "${GITHUB_API:-https://api.github.com}/repos/$REPOSITORY/statuses/$sha" > /dev/null
echo "commit $sha: codepipeline/$PIPELINE is $status"
