#!/usr/bin/env bash
# config-review.sh: the monthly pipeline configuration review of the default branch.
#
# The pipeline configuration review (specification 9.2, issue 29 item 4): the default
# branch still generates exactly what is committed (pipecompile check: no hand edit of a
# generated file), and pipecompile lint passes, the workflows audited with zizmor's
# auditor persona. review-report.sh records the outcome and tells the channel (the
# CodePipeline delivery's CodeBuild project; GitHub delivery runs review.yml).
#
# Inputs (environment):
#   PIPELINE_FILE   the pipeline file, relative to the checkout
#   OUTCOME_FILE    where to write outcome=clean|findings
#   SUMMARY_FILE    where to write what failed (the commands' last lines)
# Outputs:
#   OUTCOME_FILE, SUMMARY_FILE; the commands' whole output on stdout
# Exit codes:
#   0  check and lint passed
#   1  either found something (both run; the summary lists what)
set -uo pipefail
: > "$SUMMARY_FILE"
outcome=clean
out="$(mktemp)"
run() {
  local what="$1"
  shift
  if "$@" >"$out" 2>&1; then
    cat "$out"
    echo "$what: passed"
  else
    cat "$out"
    outcome=findings
    { echo "$what failed:"; tail -n 20 "$out"; } >> "$SUMMARY_FILE"
  fi
}
run "pipecompile check" pipecompile check --diff -f "$PIPELINE_FILE"
run "pipecompile lint" pipecompile lint --zizmor-persona auditor -f "$PIPELINE_FILE"
rm -f "$out"
echo "outcome=$outcome" > "$OUTCOME_FILE"
if [ "$outcome" = clean ]; then
  echo "the generated files match $PIPELINE_FILE; lint passed" >> "$SUMMARY_FILE"
fi
[ "$outcome" = clean ]
