#!/usr/bin/env bash
# drift-check.sh: does the infrastructure still match the Terraform that created it?
#
# The scheduled drift check (issue 29, item 4): terraform plan -detailed-exitcode in the
# generated Terraform folder, with credentials that may only read (READ_ROLE_ARN on
# CodeBuild; the read-only OIDC role on GitHub Actions, already assumed). The plan takes
# no lock (-lock=false): a reader cannot write the lock, and a plan changes nothing.
# review-report.sh then records the outcome and tells the channel.
#
# Inputs (environment):
#   TF_DIR          the Terraform folder, relative to the checkout
#   BACKEND         local | s3 (terraform.backend): local state is not in CI
#   OUTCOME_FILE    where to write outcome=clean|drift|error
#   SUMMARY_FILE    where to write what drifted (the plan's summary)
#   READ_ROLE_ARN   optional: a role to assume for init and plan (CodeBuild)
#   VAR_FILE        optional: a tfvars file in TF_DIR to plan with: during the first
#                   apply phase by phase, the phase's <env>.tfvars (CodeBuild: the
#                   drift_var_file variable that file sets; GitHub Actions: the
#                   repository variable DRIFT_VAR_FILE); empty once every phase is
#                   applied. Without it the plan would create every environment not
#                   yet enabled and report it as drift every day.
#   GITHUB_OUTPUT   optional (GitHub Actions): outcome=... for later jobs
# Outputs:
#   OUTCOME_FILE, SUMMARY_FILE; reports/drift-plan.txt (the whole plan)
# Exit codes:
#   0  no drift
#   1  the check could not run (init, plan or credentials failed; local state)
#   2  drift: the plan would change something
set -euo pipefail
outcome=error
report="$PWD/reports/drift-plan.txt"
mkdir -p "$(dirname "$report")"
: > "$SUMMARY_FILE"
: > "$report"
finish() {
  echo "outcome=$outcome" > "$OUTCOME_FILE"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "outcome=$outcome" >> "$GITHUB_OUTPUT"; fi
}
trap finish EXIT
if [ "$BACKEND" != s3 ]; then
  echo "the Terraform state is $BACKEND (terraform.backend): a drift check needs the state" \
    "the applies write; set terraform.backend.type: s3" | tee "$SUMMARY_FILE" >&2
  exit 1
fi
# in a subshell whose status is tested, errexit is off: every step checks its own
plan() {
  if [ -n "${READ_ROLE_ARN:-}" ]; then
    # only init and plan run as the read-only role; the report keeps the job's own
    creds="$(aws sts assume-role --role-arn "$READ_ROLE_ARN" --role-session-name drift-check \
      --query Credentials --output json 2>>"$report")" || return 1
    AWS_ACCESS_KEY_ID="$(jq -r .AccessKeyId <<<"$creds")"
    AWS_SECRET_ACCESS_KEY="$(jq -r .SecretAccessKey <<<"$creds")"
    AWS_SESSION_TOKEN="$(jq -r .SessionToken <<<"$creds")"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  fi
  cd "$TF_DIR" || return 1
  terraform init -input=false -no-color >>"$report" 2>&1 || return 1
  local status=0
  local vars=()
  if [ -n "${VAR_FILE:-}" ]; then vars=("-var-file=$VAR_FILE"); fi
  terraform plan -detailed-exitcode -input=false -lock=false -no-color -out=drift.tfplan \
    "${vars[@]}" >>"$report" 2>&1 || status=$?
  if [ "$status" = 2 ]; then
    # what would change, one line each, and the plan's own count
    terraform show -json drift.tfplan | jq -r '.resource_changes[]
      | select(.change.actions != ["no-op"] and .change.actions != ["read"])
      | "\(.change.actions | join("/")) \(.address)"' || return 1
    grep -E '^Plan: ' "$report" || true
  fi
  return "$status"
}
status=0
(plan) > "$SUMMARY_FILE" || status=$?
case "$status" in
  0) outcome=clean; echo "no drift in $TF_DIR" ;;
  2) outcome=drift; echo "drift in $TF_DIR:"; cat "$SUMMARY_FILE"; exit 2 ;;
  *) tail -n 20 "$report" >> "$SUMMARY_FILE" 2>/dev/null || true
     echo "the drift check of $TF_DIR failed:" >&2; cat "$SUMMARY_FILE" >&2; exit 1 ;;
esac
