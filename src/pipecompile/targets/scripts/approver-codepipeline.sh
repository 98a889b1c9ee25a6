#!/usr/bin/env bash
# approver-codepipeline.sh: print who approved the pipeline's Approval stage (CodeBuild).
#
# Inputs (environment):
#   PIPELINE_NAME   the pipeline this deploy runs in
# Outputs:
#   the approver on stdout (unknown when CodePipeline does not say)
# Exit codes:
#   0  always
set -uo pipefail
aws codepipeline get-pipeline-state --name "$PIPELINE_NAME" \
  --query "stageStates[?stageName=='Approval'].actionStates[0].latestExecution.lastUpdatedBy | [0]" \
  --output text 2>/dev/null || echo unknown
