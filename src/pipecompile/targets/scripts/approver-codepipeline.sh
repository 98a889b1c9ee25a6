#!/usr/bin/env bash
# approver-codepipeline.sh: print who approved the pipeline's Approval stage (CodeBuild).
#
# The approval of this run, found by its execution id: get-pipeline-state shows the
# latest action execution, which in QUEUED mode can be the next run's approval.
#
# Inputs (environment):
#   PIPELINE_NAME           the pipeline this deploy runs in
#   PIPELINE_EXECUTION_ID   this run (#{codepipeline.PipelineExecutionId})
# Outputs:
#   the approver on stdout (unknown when CodePipeline does not say)
# Exit codes:
#   0  always
set -uo pipefail
approver="$(aws codepipeline list-action-executions --pipeline-name "$PIPELINE_NAME" \
  --filter "pipelineExecutionId=$PIPELINE_EXECUTION_ID" \
  --query "actionExecutionDetails[?stageName=='Approval'] | [0].updatedBy" \
  --output text 2>/dev/null)"
case "$approver" in ""|None) echo unknown ;; *) echo "$approver" ;; esac
