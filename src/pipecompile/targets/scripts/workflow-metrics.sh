#!/usr/bin/env bash
# workflow-metrics.sh: a GitHub Actions delivery run's figures, as CloudWatch metrics.
#
# Pipeline monitoring on GitHub Actions delivery (issue 29, item 2): the metrics the
# CodePipeline delivery's metric filters make, in the same namespace and dimensions, so
# one dashboard and one failure-rate alarm read either. Each environment the run targets
# is one execution of the pipeline <project>-<service>-<environment>: Started, then
# Succeeded when its deploy job succeeded, else Failed (a build that failed skips the
# deploy: the execution failed), each as a project total and per Pipeline; a cancelled
# run counts as neither, as a stopped execution. Duration per Pipeline (the run's start
# to the deploy job's end: the last of its called jobs) and StageDuration per Pipeline
# and Stage (each job of the run, a called workflow's by its own), in seconds, from the
# run's jobs (GitHub's REST API); StageFailed per Pipeline for each failed job.
#
# Inputs (environment):
#   NAMESPACE          the CloudWatch namespace (<project>/pipelines)
#   DEPLOYS            JSON list of {pipeline, job, targeted, result}: each deploy job's
#                      pipeline name, job name, whether the run targets its environment
#                      ("true") and needs.<job>.result
#   CANCELLED          "true" when a job of the run was cancelled (nothing is counted)
#   GITHUB_TOKEN       a token that may read this run's jobs (actions: read)
#   GITHUB_API_URL     the API root (GitHub sets it)
#   GITHUB_REPOSITORY  owner/name (GitHub sets it)
#   GITHUB_RUN_ID      this run (GitHub sets it)
#   GITHUB_RUN_ATTEMPT this attempt (GitHub sets it)
#   NOW                optional: an ISO 8601 UTC time instead of the clock (tests)
# Outputs:
#   the metric data, one put-metric-data call (at most 1000 values)
# Exit codes:
#   0  put (or no deploy job ran: nothing to put)
#   1  the GitHub API or the put failed
set -euo pipefail
if [ "$CANCELLED" = true ]; then
  echo "the run was cancelled: no execution to count"
  exit 0
fi
api="$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
umask 077
headers="$(mktemp)"
trap 'rm -f "$headers"' EXIT
printf 'Authorization: Bearer %s\nAccept: application/vnd.github+json\n' "$GITHUB_TOKEN" \
  > "$headers"
run="$(curl -fsS -H @"$headers" "$api/attempts/$GITHUB_RUN_ATTEMPT")"
jobs="$(curl -fsS -H @"$headers" "$api/attempts/$GITHUB_RUN_ATTEMPT/jobs?per_page=100")"
now="${NOW:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
data="$(jq -nc --argjson run "$run" --argjson jobs "$jobs" --argjson deploys "$DEPLOYS" \
  --arg now "$now" '
  def t: fromdateiso8601;
  def metric($name; $dims; $value; $unit):
    {MetricName: $name, Dimensions: ($dims | to_entries | map({Name: .key, Value: .value})),
     Value: $value, Unit: $unit, Timestamp: $now};
  # a job that calls a reusable workflow is listed as its called jobs, each named
  # "<caller job> / <called job>" (GitHub docs, "Reusing workflows")
  def of($caller): .name == $caller or (.name | startswith($caller + " / "));
  ($run.run_started_at | t) as $start
  | [$jobs.jobs[] | select(.status == "completed" and .conclusion != "skipped")] as $done
  | [$deploys[].job] as $deploy_jobs
  | [$deploys[] | select(.targeted == "true") | . as $d
     # the stages of this pipeline: the shared jobs of the run and the called jobs of
     # its own deploy job
     | [$done[] | select(of($d.job)
                          or (. as $j | any($deploy_jobs[]; . as $c | $j | of($c)) | not))]
       as $stages
     | ($done | map(select(of($d.job))) | max_by(.completed_at)) as $job
     | (if .result == "success" then "Succeeded" else "Failed" end) as $m
     | metric("Started"; {}; 1; "Count"), metric("Started"; {Pipeline: .pipeline}; 1; "Count"),
       metric($m; {}; 1; "Count"), metric($m; {Pipeline: .pipeline}; 1; "Count"),
       (if $job then metric("Duration"; {Pipeline: .pipeline};
          (($job.completed_at | t) - $start); "Seconds") else empty end),
       ($stages[]
        | metric("StageDuration"; {Pipeline: $d.pipeline, Stage: .name};
            ((.completed_at | t) - (.started_at | t)); "Seconds"),
          (if .conclusion == "failure"
           then metric("StageFailed"; {Pipeline: $d.pipeline}; 1; "Count") else empty end))
    ]')"
count="$(jq length <<<"$data")"
if [ "$count" = 0 ]; then
  echo "no deploy job ran: no metrics"
  exit 0
fi
aws cloudwatch put-metric-data --namespace "$NAMESPACE" --metric-data "$data"
echo "put $count value(s) in $NAMESPACE"
