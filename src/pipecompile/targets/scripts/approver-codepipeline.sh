#!/usr/bin/env bash
# approver-codepipeline.sh: print who approved the pipeline's Approval stage (CodeBuild).
#
# The approval of this run, found by its execution id: get-pipeline-state shows the
# latest action execution, which in QUEUED mode can be the next run's approval.
#
# Inputs (environment):
#   PIPELINE_NAME           the pipeline this deploy runs in
#   PIPELINE_EXECUTION_ID   this run (#{codepipeline.PipelineExecutionId}); unset in a
#                           deploy build started by hand (explain --rollback's start-build)
#   ROLLBACK_REASON         optional: set by a manual rollback
# Outputs:
#   the approver on stdout (unknown when CodePipeline does not say; "none (manual
#   rollback)" for a manual rollback, which no pipeline execution approved)
# Exit codes:
#   0  always
set -uo pipefail
if [ -z "${PIPELINE_EXECUTION_ID:-}" ]; then
  # no pipeline run: a manual rollback has no approval to name (its start-build is the
  # authorization); anything else started without one is unknown
  if [ -n "${ROLLBACK_REASON:-}" ]; then echo "none (manual rollback)"; else echo unknown; fi
  exit 0
fi
approver="$(aws codepipeline list-action-executions --pipeline-name "$PIPELINE_NAME" \
  --filter "pipelineExecutionId=$PIPELINE_EXECUTION_ID" \
  --query "actionExecutionDetails[?stageName=='Approval'] | [0].updatedBy" \
  --output text 2>/dev/null)"
case "$approver" in ""|None) echo unknown ;; *) echo "$approver" ;; esac
