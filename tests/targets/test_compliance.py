"""The compliance jobs (issue 29, item 4): the scheduled drift check and the monthly
security review, as generated for both orchestrators, and their scripts run as files
against the real tools: the AWS CLI against moto in server mode (ECR scans, the audit
table, the topic), terraform with an S3 backend on moto, zizmor on real workflows."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from pipecompile.targets.common import script_body, script_path, script_text
from pipecompile.targets.compliance import TERRAFORM_SHA256, TERRAFORM_VERSION
from tests.conftest import ROOT, hcl_norm
from tests.harness.reusable import expand
from tests.harness.world import World, world
from tests.iam_eval import Account, github_subject
from tests.rehearsal.test_spec import GHA, REF, SAMPLES, TF, ir_of

SHARED = SAMPLES / "shared-account"  # terraform.backend: s3
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def tf_blocks(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    doc = hcl_norm(hcl2.loads(path.read_text()))
    for kind in ("resource", "data"):
        for block in doc.get(kind, []):
            for type_, named in block.items():
                for label, body in named.items():
                    out[f"{type_}.{label}"] = body
    return out


def buildspec(project: dict[str, Any]) -> dict[str, Any]:
    text = json.loads('"' + project["source"][0]["buildspec"] + '"')
    spec: dict[str, Any] = yaml.safe_load(text)
    return spec


def required_inputs(name: str) -> set[str]:
    """The inputs a script's header lists that are not optional."""
    header = script_text(name).removesuffix(script_body(name))
    section = header.split("# Inputs (environment):\n")[1].split("# Outputs:")[0]
    out = set()
    for line in section.splitlines():
        m = re.match(r"#   ([A-Z][A-Z0-9_]*)\s+(.*)", line)
        if m and not m.group(2).startswith("optional"):
            out.add(m.group(1))
    return out


def scripts_in(command: str) -> list[str]:
    """The packaged scripts a buildspec command or run: step holds (by their bodies)."""
    names = (
        "install-terraform.sh",
        "drift-check.sh",
        "security-review.sh",
        "config-review.sh",
        "review-report.sh",
    )
    return [name for name in names if script_body(name).strip() in command]


# -- what is generated ------------------------------------------------------------------------


def test_codepipeline_delivery_runs_both_reviews_as_scheduled_codebuild_projects() -> None:
    res = tf_blocks(TF / "reviews.tf")
    drift = res["aws_codebuild_project.drift_check"]
    assert drift["source"][0]["type"] == "GITHUB"  # the default branch, through the connection
    assert drift["source"][0]["auth"][0]["type"] == "CODECONNECTIONS"
    assert drift["source_version"] == "main"
    spec = buildspec(drift)
    commands = spec["phases"]["build"]["commands"]
    assert [scripts_in(c) for c in commands] == [["install-terraform.sh"], ["drift-check.sh"]]
    assert [scripts_in(c) for c in spec["phases"]["build"]["finally"]] == [["review-report.sh"]]
    given = set(spec["env"]["variables"]) | {
        v["name"] for v in drift["environment"][0]["environment_variable"]
    }
    for name in ("install-terraform.sh", "drift-check.sh", "review-report.sh"):
        assert required_inputs(name) <= given, name
    assert spec["env"]["variables"]["TF_DIR"] == "samples/ecommerce/infrastructure/terraform/cicd"
    assert spec["env"]["variables"]["TERRAFORM_SHA256"] == TERRAFORM_SHA256
    # the reference keeps its state locally: the daily schedule exists, switched off
    rule = res["aws_cloudwatch_event_rule.drift_check"]
    assert (rule["schedule_expression"], rule["state"]) == ("cron(0 5 * * ? *)", "DISABLED")
    shared = tf_blocks(SHARED / "infrastructure/terraform/cicd/reviews.tf")
    assert "state" not in shared["aws_cloudwatch_event_rule.drift_check"]  # S3 state: on

    review = res["aws_codebuild_project.security_review"]
    spec = buildspec(review)
    commands = spec["phases"]["build"]["commands"]
    assert commands[0] == "pip install --disable-pip-version-check -q zizmor==1.32.0"
    assert scripts_in(commands[1]) == ["security-review.sh"]
    variables = spec["env"]["variables"]
    given = set(variables) | {v["name"] for v in review["environment"][0]["environment_variable"]}
    assert required_inputs("security-review.sh") | required_inputs("review-report.sh") <= given
    ir = ir_of(REF)
    # production deploys the release tier's image, development the development tier's
    assert "production/order-service=ecommerce/order-service-release" in variables["IMAGES"]
    assert "development/order-service=ecommerce/order-service " in variables["IMAGES"] + " "
    assert len(variables["IMAGES"].split()) == sum(len(s.deployments) for s in ir.services)
    assert variables["FAIL_SEVERITIES"] == "CRITICAL HIGH"  # security.image_scan.fail_on
    assert variables["WORKFLOWS_DIR"] == "samples/ecommerce/.github/workflows"
    rule = res["aws_cloudwatch_event_rule.security_review"]
    assert rule["schedule_expression"] == "cron(0 7 1 * ? *)" and "state" not in rule


def test_codepipeline_delivery_runs_the_configuration_review_and_reports_it() -> None:
    res = tf_blocks(TF / "reviews.tf")
    project = res["aws_codebuild_project.configuration_review"]
    assert project["source"][0]["type"] == "GITHUB" and project["source_version"] == "main"
    spec = buildspec(project)
    commands = spec["phases"]["build"]["commands"]
    assert commands[0].startswith("pip install --disable-pip-version-check -q pipecompile==")
    assert scripts_in(commands[1]) == ["config-review.sh"]
    assert [scripts_in(c) for c in spec["phases"]["build"]["finally"]] == [["review-report.sh"]]
    given = set(spec["env"]["variables"]) | {
        v["name"] for v in project["environment"][0]["environment_variable"]
    }
    assert required_inputs("config-review.sh") | required_inputs("review-report.sh") <= given
    # both reports: the audit table and the topic (the channel)
    assert {"DEPLOYMENTS_TABLE", "TOPIC_ARN"} <= given
    assert spec["env"]["variables"]["REVIEW"] == "configuration"
    assert spec["env"]["variables"]["PIPELINE_FILE"] == "samples/ecommerce/pipeline.yaml"
    rule = res["aws_cloudwatch_event_rule.configuration_review"]
    assert rule["schedule_expression"] == "cron(0 6 1 * ? *)" and "state" not in rule
    ir = ir_of(REF)
    acct = Account(REF / ir.output("terraform"), ir.aws.account_id)
    table = acct.arn("aws_dynamodb_table.deployments")
    own = {"dynamodb:LeadingKeys": ["review/configuration"]}
    assert acct.can("configuration_review", "dynamodb:PutItem", table, **own)
    other = {"dynamodb:LeadingKeys": ["production/order-service"]}
    assert not acct.can("configuration_review", "dynamodb:PutItem", table, **other)
    assert acct.can("configuration_review", "sns:Publish", acct.arn("aws_sns_topic.events"))


def test_the_configuration_review_script_finds_a_hand_edit(tmp_path: Path) -> None:
    import shutil

    repo = tmp_path / "repo"  # the sample where it was built (its headers name the path)
    sample = repo / "samples/minimal"
    shutil.copytree(ROOT / "samples/minimal", sample)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)  # the checkout's root
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}",
           "PIPELINE_FILE": "samples/minimal/pipeline.yaml",
           "OUTCOME_FILE": str(tmp_path / "o"), "SUMMARY_FILE": str(tmp_path / "s")}  # fmt: skip
    script = ["bash", str(script_path("config-review.sh"))]
    res = subprocess.run(script, cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "o").read_text() == "outcome=clean\n"
    edited = next((sample / ".github/workflows").glob("*.yml"))
    edited.write_text(edited.read_text() + "# a hand edit\n")
    res = subprocess.run(script, cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 1
    assert (tmp_path / "o").read_text() == "outcome=findings\n"
    summary = (tmp_path / "s").read_text()
    assert "pipecompile check failed:" in summary and edited.name in summary
    check = subprocess.run(["shellcheck", str(script_path("config-review.sh"))])
    assert check.returncode == 0


def test_the_drift_role_reads_configuration_and_the_state_only() -> None:
    for sample in (REF, SHARED):
        acct = Account(sample / ir_of(sample).output("terraform"), ir_of(sample).aws.account_id)
        res = tf_blocks(sample / ir_of(sample).output("terraform") / "reviews.tf")
        attach = res["aws_iam_role_policy_attachment.drift_read"]
        assert attach["policy_arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
        allowed = [st for st in acct.roles["drift_read"].policy if st.effect == "Allow"]
        # its inline policy grants nothing but the state; everything else is a deny
        assert {a for st in allowed for a in st.actions} <= {"s3:GetObject", "s3:ListBucket"}
        a, r = ir_of(sample).aws.account_id, ir_of(sample).aws.region
        table = f"arn:aws:dynamodb:{r}:{a}:table/any-table"
        for action, resource in (
            ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{r}:{a}:secret:any"),
            ("dynamodb:Query", table),
            ("dynamodb:Scan", table),
            ("dynamodb:GetItem", table),
            ("s3:GetObject", acct.arn("aws_s3_bucket.artifacts") + "/any/artifact.zip"),
            ("ecr:BatchGetImage", f"arn:aws:ecr:{r}:{a}:repository/any"),
            ("logs:GetLogEvents", f"arn:aws:logs:{r}:{a}:log-group:any"),
            ("codepipeline:PutApprovalResult", "*"),
        ):
            assert acct.decision("drift_read", action, resource) == "Deny", action
        # only the drift check's project may assume it
        project_role = ("AWS", acct.arn("aws_iam_role.drift_check"))
        assert acct.may_assume("drift_read", project_role)
        assert not acct.may_assume("drift_read", ("Service", "codebuild.amazonaws.com"))
    acct = Account(SHARED / "infrastructure/terraform/cicd", "210987654321")
    state = "arn:aws:s3:::example-terraform-state/ledger/cicd.tfstate"
    assert acct.can("drift_read", "s3:GetObject", state)
    assert not acct.can("drift_read", "s3:PutObject", state)  # plans take no lock


def test_with_a_dynamodb_lock_table_the_drift_role_reads_only_its_digest_entry(
    tmp_path: Path,
) -> None:
    # the S3 backend GetItems the lock table's digest entry (<bucket>/<key>-md5) when it
    # reads the state, also under -lock=false (hashicorp/terraform v1.9
    # internal/backend/remote-state/s3/client.go: Get -> getMD5 -> GetItem)
    from tests.rehearsal.test_spec import rendered

    text = (SHARED / "pipeline.yaml").read_text()
    text = text.replace(
        "    key: ledger/cicd.tfstate\n",
        "    key: ledger/cicd.tfstate\n    lock: dynamodb\n    dynamodb_table: tf-locks\n",
    )
    ir, files = rendered(text)
    assert ir.backend.lock_table == "tf-locks"
    folder = tmp_path / "tf"
    folder.mkdir()
    for path, body in files.items():
        if path.startswith(ir.output("terraform") + "/") and path.endswith(".tf"):
            (folder / Path(path).name).write_text(body)
    acct = Account(folder, ir.aws.account_id)
    a, r = ir.aws.account_id, ir.aws.region
    lock = f"arn:aws:dynamodb:{r}:{a}:table/tf-locks"
    assert acct.decision("drift_read", "dynamodb:GetItem", lock) == "Allow"
    # every other table's items stay denied, and the lock table is only read
    for action, resource in (
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{r}:{a}:table/ledger-deployments"),
        ("dynamodb:GetItem", f"arn:aws:dynamodb:{r}:{a}:table/tf-locks-other"),
        ("dynamodb:Scan", lock),
        ("dynamodb:Query", lock),
    ):
        assert acct.decision("drift_read", action, resource) == "Deny", (action, resource)
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem"):
        assert not acct.can("drift_read", action, lock)


def test_the_review_projects_write_only_their_own_audit_stream() -> None:
    acct = Account(TF, "123456789012")
    table = acct.arn("aws_dynamodb_table.deployments")
    for role, stream in (("drift_check", "review/drift"), ("security_review", "review/security")):
        keys = {"dynamodb:LeadingKeys": [stream]}
        assert acct.can(role, "dynamodb:PutItem", table, **keys)
        other = {"dynamodb:LeadingKeys": ["production/order-service"]}
        assert not acct.can(role, "dynamodb:PutItem", table, **other)  # not a deployment row
        assert not acct.can(role, "dynamodb:DeleteItem", table, **keys)
        assert acct.can(role, "sns:Publish", acct.arn("aws_sns_topic.events"))
    repo = acct.arn("aws_ecr_repository.order-service-release")
    assert acct.can("security_review", "ecr:StartImageScan", repo)
    assert not acct.can("security_review", "ecr:PutImage", repo)
    assert not acct.can("drift_check", "ecr:StartImageScan", repo)


def test_github_delivery_runs_both_reviews_as_scheduled_workflows() -> None:
    folder = GHA / ".github/workflows"
    # as GitHub runs them: the called compliance.yml with each caller's inputs (the other
    # review's steps skipped)
    drift = expand(folder / "drift.yml")
    # storefront keeps its state locally: the drift check runs by hand only (and says why)
    assert drift["on"] == {"workflow_dispatch": {}}
    job = drift["jobs"]["drift"]
    assert job["environment"] == "compliance"
    roles = [
        s["with"]["role-to-assume"] for s in job["steps"] if "role-to-assume" in s.get("with", {})
    ]
    assert roles == [
        "arn:aws:iam::345678901234:role/storefront-github-drift",  # plans
        "arn:aws:iam::345678901234:role/storefront-github-review",  # writes the audit row
    ]
    runs = [(scripts_in(s.get("run", "")), s.get("env", {})) for s in job["steps"]]
    for names, env in runs:
        for name in names:
            assert required_inputs(name) <= set(env), name
    assert [n for names, _ in runs for n in names] == [
        "install-terraform.sh",
        "drift-check.sh",
        "review-report.sh",
    ]
    notify = drift["jobs"]["notify"]
    assert notify["if"] == "${{ always() && needs.drift.outputs.outcome != 'clean' }}"
    assert notify["environment"] == "notifications"

    review = expand(folder / "security-review.yml")
    assert review["on"]["schedule"] == [{"cron": "0 7 1 * *"}]
    steps = review["jobs"]["review"]["steps"]
    assert review["jobs"]["review"]["environment"] == "compliance"
    assert [n for s in steps for n in scripts_in(s.get("run", ""))] == [
        "security-review.sh",
        "review-report.sh",
    ]
    assert {
        s["with"]["role-to-assume"] for s in steps if "role-to-assume" in s.get("with", {})
    } == {"arn:aws:iam::345678901234:role/storefront-github-review"}
    scan = next(s for s in steps if "security-review.sh" in scripts_in(s.get("run", "")))
    assert required_inputs("security-review.sh") <= set(scan["env"])
    assert scan["env"]["WORKFLOWS_DIR"] == "samples/storefront/.github/workflows"
    # the roles trust compliance.yml's jobs in the compliance environment on main only
    acct = Account(GHA / "infrastructure/terraform", "345678901234")
    sub = "token.actions.githubusercontent.com:sub"
    aud = {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    oidc = (
        "Federated",
        "arn:aws:iam::345678901234:oidc-provider/token.actions.githubusercontent.com",
    )
    repo = "example/storefront"
    for role in ("github_drift", "github_review"):
        for s, may in (
            (github_subject(repo, "compliance.yml", "main", "compliance"), True),
            (github_subject(repo, "compliance.yml", "main"), False),
            (github_subject(repo, "compliance.yml", "feature/x", "compliance"), False),
            (github_subject(repo, "drift.yml", "main", "compliance"), False),
            (github_subject(repo, "compliance.yml", "main", "compliance", template=False), False),
        ):
            assert acct.may_assume(role, oidc, **{sub: s, **aud}) == may, (role, s)
    with_s3 = (GHA / "pipeline.yaml").read_text() + (
        "terraform:\n  backend: {type: s3, bucket: example-state}\n"
    )
    from pipecompile.compiler import compile_bytes
    from pipecompile.targets.github_actions.compliance import drift_workflow

    ir = compile_bytes("pipeline.yaml", with_s3.encode())
    assert drift_workflow(ir)["on"]["schedule"] == [{"cron": "0 5 * * *"}]


# -- the scripts, as files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    with world() as wd:
        bin_dir = wd.base / "tools"
        bin_dir.mkdir()
        (bin_dir / "zizmor").symlink_to(BIN / "zizmor")
        wd.env["PATH"] = f"{bin_dir}:{wd.env['PATH']}"
        yield wd


def run(w: World, name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script_path(name))],
        cwd=cwd,
        env={**w.env, "HOME": str(cwd), **env},
        capture_output=True,
        text=True,
        check=False,
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A releases server on loopback holding a terraform zip: (its URL, the zip's sha256)."""
    root = tmp_path / "releases"
    folder = root / "terraform" / TERRAFORM_VERSION
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("terraform")
        info.external_attr = 0o755 << 16
        z.writestr(info, f"#!/bin/sh\necho 'Terraform v{TERRAFORM_VERSION}'\n")
        z.writestr("LICENSE.txt", "MPL\n")
    data = buf.getvalue()
    (folder / f"terraform_{TERRAFORM_VERSION}_linux_amd64.zip").write_bytes(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", hashlib.sha256(data).hexdigest()
    finally:
        server.shutdown()
        thread.join()


def test_install_terraform_installs_only_what_its_checksum_names(
    w: World, tmp_path: Path, releases: tuple[str, str]
) -> None:
    url, sha = releases
    path_file = tmp_path / "github_path"
    path_file.write_text("")
    common = {"TERRAFORM_VERSION": TERRAFORM_VERSION, "RELEASES_URL": url}
    bad = run(w, "install-terraform.sh", tmp_path, **common, TERRAFORM_SHA256="0" * 64,
              BIN_DIR=str(tmp_path / "bad"))  # fmt: skip
    assert bad.returncode == 1 and "FAILED" in bad.stdout + bad.stderr
    assert not (tmp_path / "bad" / "terraform").exists()
    ok = run(w, "install-terraform.sh", tmp_path, **common, TERRAFORM_SHA256=sha,
             BIN_DIR=str(tmp_path / "bin"), GITHUB_PATH=str(path_file))  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert f"Terraform v{TERRAFORM_VERSION}" in ok.stdout
    assert os.access(tmp_path / "bin" / "terraform", os.X_OK)
    assert path_file.read_text() == f"{tmp_path / 'bin'}\n"


BACKEND = """\
terraform {
  backend "s3" {
    bucket                      = "state"
    key                         = "cicd.tfstate"
    region                      = "eu-central-1"
    endpoints                   = { s3 = "%(endpoint)s" }
    use_path_style              = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
  }
}

resource "terraform_data" "pipeline" {
  input = "%(value)s"
}
"""


@pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform binary")
def test_the_drift_check_plans_with_the_phase_tfvars(w: World, tmp_path: Path) -> None:
    """During the first apply phase by phase the state holds what the phase's
    <env>.tfvars enabled: planned with the variables' defaults (every environment) the
    check reports the environments not yet enabled as drift every day; planned with
    VAR_FILE, the phase's file, it is clean."""
    # a bucket of its own: the module's moto is shared with the other drift tests
    w.client("s3").create_bucket(
        Bucket="phase-state", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    tf = tmp_path / "infra"
    tf.mkdir()
    endpoint = w.env["AWS_ENDPOINT_URL"]
    config = BACKEND.replace('"%(value)s"', "var.environments").replace(
        '"state"', '"phase-state"'
    ) % {"endpoint": endpoint}
    config += 'variable "environments" {\n  default = ["development", "production"]\n}\n'
    (tf / "main.tf").write_text(config)
    (tf / "development.tfvars").write_text('environments = ["development"]\n')
    env = {**w.env, "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": "/dev/null"}
    for args in (
        ["init", "-input=false"],
        ["apply", "-auto-approve", "-input=false", "-var-file=development.tfvars"],
    ):
        subprocess.run(["terraform", *args], cwd=tf, env=env, check=True, capture_output=True)
    shutil.rmtree(tf / ".terraform")
    (tf / "terraform.tfstate").unlink(missing_ok=True)
    files = {
        "TF_DIR": "infra",
        "BACKEND": "s3",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
        "TF_CLI_CONFIG_FILE": "/dev/null",
    }
    every = run(w, "drift-check.sh", tmp_path, **files)
    assert every.returncode == 2, every.stderr  # the defaults: production "drifted"
    shutil.rmtree(tf / ".terraform")
    phase = run(w, "drift-check.sh", tmp_path, **files, VAR_FILE="development.tfvars")
    assert phase.returncode == 0, phase.stderr + (tmp_path / "summary").read_text()
    assert (tmp_path / "outcome").read_text() == "outcome=clean\n"


@pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform binary")
def test_the_drift_check_plans_against_the_remote_state(w: World, tmp_path: Path) -> None:
    w.client("s3").create_bucket(
        Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    tf = tmp_path / "infra"
    tf.mkdir()
    endpoint = w.env["AWS_ENDPOINT_URL"]
    (tf / "main.tf").write_text(BACKEND % {"endpoint": endpoint, "value": "v1"})
    env = {**w.env, "HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": "/dev/null"}
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run(["terraform", *args], cwd=tf, env=env, check=True, capture_output=True)
    shutil.rmtree(tf / ".terraform")  # the job starts from a fresh checkout
    (tf / "terraform.tfstate").unlink(missing_ok=True)
    files = {
        "TF_DIR": "infra",
        "BACKEND": "s3",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
        "TF_CLI_CONFIG_FILE": "/dev/null",
        # CodeBuild: init and plan as the read-only role (sts:AssumeRole, real CLI)
        "READ_ROLE_ARN": "arn:aws:iam::123456789012:role/ecommerce-drift-read",
    }
    clean = run(w, "drift-check.sh", tmp_path, **files)
    assert clean.returncode == 0, clean.stderr
    assert (tmp_path / "outcome").read_text() == "outcome=clean\n"
    # someone changed what the state records (here: the configuration moved on)
    (tf / "main.tf").write_text(BACKEND % {"endpoint": endpoint, "value": "v2"})
    shutil.rmtree(tf / ".terraform")
    github_output = tmp_path / "github_output"
    drift = run(w, "drift-check.sh", tmp_path, **files, GITHUB_OUTPUT=str(github_output))
    assert drift.returncode == 2, drift.stderr
    assert (tmp_path / "outcome").read_text() == "outcome=drift\n"
    assert github_output.read_text() == "outcome=drift\n"
    assert (tmp_path / "summary").read_text().splitlines() == [
        "update terraform_data.pipeline",
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ]
    assert "terraform_data.pipeline" in (tmp_path / "reports/drift-plan.txt").read_text()
    # no state where the plan looks: an error, with terraform's own reason
    shutil.rmtree(tf / ".terraform")
    (tf / "main.tf").write_text(
        BACKEND.replace('"state"', '"no-such-bucket"') % {"endpoint": endpoint, "value": "v2"}
    )
    broken = run(w, "drift-check.sh", tmp_path, **files)
    assert broken.returncode == 1
    assert (tmp_path / "outcome").read_text() == "outcome=error\n"
    assert "no-such-bucket" in (tmp_path / "summary").read_text()


def test_the_drift_check_refuses_local_state(w: World, tmp_path: Path) -> None:
    res = run(w, "drift-check.sh", tmp_path, TF_DIR=".", BACKEND="local",
              OUTCOME_FILE=str(tmp_path / "o"), SUMMARY_FILE=str(tmp_path / "s"))  # fmt: skip
    assert res.returncode == 1
    assert (tmp_path / "o").read_text() == "outcome=error\n"
    assert "set terraform.backend.type: s3" in (tmp_path / "s").read_text()


def _table(w: World, name: str) -> None:
    """The audit table as audit.tf declares it (keys read from the generated file)."""
    table = tf_blocks(TF / "audit.tf")["aws_dynamodb_table.deployments"]
    w.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": table["hash_key"], "AttributeType": "S"},
            {"AttributeName": table["range_key"], "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": table["hash_key"], "KeyType": "HASH"},
            {"AttributeName": table["range_key"], "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _queue_on_topic(w: World, topic: str) -> tuple[str, str]:
    sns, sqs = w.client("sns"), w.client("sqs")
    arn = sns.create_topic(Name=topic)["TopicArn"]
    url = sqs.create_queue(QueueName=topic + "-q")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn["Attributes"]["QueueArn"])
    return arn, url


def _messages(w: World, url: str) -> list[dict[str, Any]]:
    got = w.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(json.loads(m["Body"])["Message"]) for m in got.get("Messages", [])]


def test_the_review_report_writes_its_own_stream_and_tells_the_topic(
    w: World, tmp_path: Path
) -> None:
    _table(w, "report-deployments")
    topic, queue = _queue_on_topic(w, "report-events")
    (tmp_path / "outcome").write_text("outcome=drift\n")
    (tmp_path / "summary").write_text("update aws_iam_role.deploy_production[0]\n")
    env = {
        "REVIEW": "drift",
        "TITLE": "ecommerce: Terraform drift check",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
        "DEPLOYMENTS_TABLE": "report-deployments",
        "TOPIC_ARN": topic,
        "CODEBUILD_BUILD_URL": "https://console.aws.amazon.com/codesuite/codebuild/b/1",
    }
    res = run(w, "review-report.sh", tmp_path, **env)
    assert res.returncode == 0, res.stderr
    rows = w.client("dynamodb").scan(TableName="report-deployments")["Items"]
    assert [(r["stream"]["S"], r["outcome"]["S"], r["run"]["S"]) for r in rows] == [
        ("review/drift", "drift", env["CODEBUILD_BUILD_URL"])
    ]
    (message,) = _messages(w, queue)
    assert (message["version"], message["source"]) == ("1.0", "custom")  # Chatbot's format
    assert message["content"]["title"] == "ecommerce: Terraform drift check: drift"
    assert "deploy_production[0]" in message["content"]["description"]
    assert message["metadata"]["additionalContext"]["status"] == "review-drift"
    # the next day's clean drift check is recorded, not posted (daily would be noise)
    (tmp_path / "outcome").write_text("outcome=clean\n")
    env["CODEBUILD_BUILD_URL"] += "2"  # every run its own row (the key holds the run)
    assert run(w, "review-report.sh", tmp_path, **env).returncode == 0
    assert _messages(w, queue) == []
    assert len(w.client("dynamodb").scan(TableName="report-deployments")["Items"]) == 2
    # the review died before writing its outcome: an error, posted
    (tmp_path / "outcome").unlink()
    env["CODEBUILD_BUILD_URL"] += "3"
    assert run(w, "review-report.sh", tmp_path, **env).returncode == 0
    assert [m["content"]["title"] for m in _messages(w, queue)] == [
        "ecommerce: Terraform drift check: error"
    ]


def _image(w: World, repo: str, layer: str) -> str:
    ecr = w.client("ecr")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": 2, "digest": "sha256:" + hashlib.sha256(layer.encode()).hexdigest()},
            # moto derives the digest from the layers' digests
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": 2, "digest": "sha256:" + hashlib.sha256(repo.encode()
                        + layer.encode()).hexdigest()}],
        }
    )  # fmt: skip
    out = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag=layer)
    return str(out["image"]["imageId"]["imageDigest"])


def _row(stream: str, at: str, outcome: str, digest: str) -> dict[str, Any]:
    return {
        "stream": {"S": stream},
        "deployment": {"S": f"{at}/run"},
        "outcome": {"S": outcome},
        "image_digest": {"S": digest},
    }


def test_the_security_review_rescans_what_each_environment_runs(w: World, tmp_path: Path) -> None:
    ecr, ddb = w.client("ecr"), w.client("dynamodb")
    for repo in ("shop/api", "shop/api-release"):
        ecr.create_repository(repositoryName=repo)
    live, newer_failed, older = (_image(w, "shop/api-release", t) for t in ("b", "c", "a"))
    dev = _image(w, "shop/api", "d")
    _table(w, "review-deployments")
    for row in (
        _row("production/api", "2026-11-01T10:00:00Z", "succeeded", older),
        _row("production/api", "2026-11-20T10:00:00Z", "succeeded", live),
        _row("production/api", "2026-11-21T10:00:00Z", "failed", newer_failed),
        _row("development/api", "2026-11-21T09:00:00Z", "succeeded", dev),
    ):
        ddb.put_item(TableName="review-deployments", Item=row)
    workflows = tmp_path / "checkout/.github/workflows"
    shutil.copytree(GHA / ".github/workflows", workflows)  # real zizmor on real workflows
    env = {
        "DEPLOYMENTS_TABLE": "review-deployments",
        "IMAGES": "development/api=shop/api production/api=shop/api-release staging/api=shop/api",
        "FAIL_SEVERITIES": "CRITICAL HIGH",
        "SCAN_TYPE": "basic",
        "SCAN_TIMEOUT_SECONDS": "60",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
        "WORKFLOWS_DIR": str(workflows),
    }
    res = run(w, "security-review.sh", tmp_path, **env)
    assert res.returncode == 1, res.stderr
    assert (tmp_path / "outcome").read_text() == "outcome=findings\n"
    summary = (tmp_path / "summary").read_text().splitlines()
    # moto's scan of any image reports HIGH CVE-9999-9999: listed for the digests that run
    assert summary == [
        f"development/api shop/api@{dev}: 1 at or above CRITICAL, HIGH: HIGH CVE-9999-9999",
        f"production/api shop/api-release@{live}: 1 at or above CRITICAL, HIGH: HIGH CVE-9999-9999",
    ]
    assert "staging/api: nothing deployed yet" in res.stdout
    assert "workflows: no zizmor finding" in res.stdout
    listed = json.loads((tmp_path / "reports/security-review.json").read_text())
    assert {f["image"] for f in listed} == {f"shop/api@{dev}", f"shop/api-release@{live}"}

    # the digests that run were re-scanned, the others not (moto refuses a second scan
    # of the same image in a day: the review takes that day's result)
    def scanned(digest: str) -> bool:
        try:
            ecr.describe_image_scan_findings(
                repositoryName="shop/api-release", imageId={"imageDigest": digest}
            )
        except ecr.exceptions.ScanNotFoundException:
            return False
        return True

    assert [scanned(d) for d in (live, newer_failed, older)] == [True, False, False]
    again = run(w, "security-review.sh", tmp_path, **{**env, "FAIL_SEVERITIES": "CRITICAL"})
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "outcome").read_text() == "outcome=clean\n"
    # a workflow with findings: the review lists them
    (workflows / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: echo "${{ github.event.head_commit.message }}"\n'
    )
    bad = run(w, "security-review.sh", tmp_path, **{**env, "FAIL_SEVERITIES": "CRITICAL"})
    assert bad.returncode == 1
    assert any(
        line.startswith("workflows: ") and "template-injection" in line
        for line in (tmp_path / "summary").read_text().splitlines()
    )


def test_the_security_review_rescans_the_digest_a_manual_rollback_restored(
    w: World, tmp_path: Path
) -> None:
    """After a manual rollback the live digest is the rollback row's (outcome rolled-back,
    trigger manual), not the newest succeeded deploy's; an automatic rollback (no
    trigger) restores nothing the table names.  (Its own table and repository: the
    module's moto is shared.)"""
    ecr, ddb = w.client("ecr"), w.client("dynamodb")
    ecr.create_repository(repositoryName="shop/rollback-release")
    older, bad, aborted = (_image(w, "shop/rollback-release", t) for t in ("ra", "rb", "rc"))
    _table(w, "rollback-deployments")
    manual = {**_row("production/api", "2026-11-21T10:00:00Z", "rolled-back", older),
              "trigger": {"S": "manual"}}  # fmt: skip
    for row in (
        _row("production/api", "2026-11-01T10:00:00Z", "succeeded", older),
        _row("production/api", "2026-11-20T10:00:00Z", "succeeded", bad),
        manual,
        _row("production/api", "2026-11-22T10:00:00Z", "rolled-back", aborted),
    ):
        ddb.put_item(TableName="rollback-deployments", Item=row)
    env = {
        "DEPLOYMENTS_TABLE": "rollback-deployments",
        "IMAGES": "production/api=shop/rollback-release",
        "FAIL_SEVERITIES": "CRITICAL HIGH",
        "SCAN_TYPE": "basic",
        "SCAN_TIMEOUT_SECONDS": "60",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
    }
    res = run(w, "security-review.sh", tmp_path, **env)
    assert res.returncode == 1, res.stderr
    assert (tmp_path / "summary").read_text().splitlines() == [
        f"production/api shop/rollback-release@{older}: 1 at or above CRITICAL, HIGH: "
        + "HIGH CVE-9999-9999"
    ]


def test_the_security_review_rescans_a_recorded_digest_a_deploy_never_saw_healthy(
    w: World, tmp_path: Path
) -> None:
    """A deploy that recorded its digest in GitOps (recorded, gitops-record.sh) and then
    ended waiting for a person's promotion runs that digest once promoted: the review scans
    it (rollback-resolve.sh's rule); a later recorded deploy that failed does not count."""
    ecr, ddb = w.client("ecr"), w.client("dynamodb")
    ecr.create_repository(repositoryName="shop/recorded-release")
    older, waiting, failed = (_image(w, "shop/recorded-release", t) for t in ("wa", "wb", "wc"))
    _table(w, "recorded-deployments")
    recorded = {"recorded": {"BOOL": True}}
    for row in (
        _row("production/api", "2026-11-01T10:00:00Z", "succeeded", older),
        {**_row("production/api", "2026-11-20T10:00:00Z", "waiting-for-promotion", waiting),
         **recorded},
        {**_row("production/api", "2026-11-22T10:00:00Z", "failed", failed), **recorded},
    ):  # fmt: skip
        ddb.put_item(TableName="recorded-deployments", Item=row)
    env = {
        "DEPLOYMENTS_TABLE": "recorded-deployments",
        "IMAGES": "production/api=shop/recorded-release",
        "FAIL_SEVERITIES": "CRITICAL HIGH",
        "SCAN_TYPE": "basic",
        "SCAN_TIMEOUT_SECONDS": "60",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
    }
    res = run(w, "security-review.sh", tmp_path, **env)
    assert res.returncode == 1, res.stderr
    assert (tmp_path / "summary").read_text().splitlines() == [
        f"production/api shop/recorded-release@{waiting}: 1 at or above CRITICAL, HIGH: "
        + "HIGH CVE-9999-9999"
    ]


def test_the_security_review_reads_inspector_findings_with_enhanced_scanning(
    w: World, tmp_path: Path
) -> None:
    import requests

    ecr, ddb = w.client("ecr"), w.client("dynamodb")
    ecr.create_repository(repositoryName="ledger/api")
    digest = _image(w, "ledger/api", "e")
    stale = _image(w, "ledger/api", "f")
    _table(w, "enhanced-deployments")
    ddb.put_item(
        TableName="enhanced-deployments",
        Item=_row("production/api", "2026-11-20T10:00:00Z", "succeeded", digest),
    )
    ddb.put_item(
        TableName="enhanced-deployments",
        Item=_row("staging/api", "2026-11-20T10:00:00Z", "succeeded", stale),
    )
    for d in (digest, stale):  # Inspector scanned both on push
        ecr.start_image_scan(repositoryName="ledger/api", imageId={"imageDigest": d})
    found = {
        "repositoryName": "ledger/api",
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "ACTIVE"},
        "imageScanFindings": {
            "enhancedFindings": [
                {"severity": "CRITICAL", "title": "openssl", "packageVulnerabilityDetails":
                 {"vulnerabilityId": "CVE-2026-0001"}},
                {"severity": "LOW", "title": "zlib", "packageVulnerabilityDetails":
                 {"vulnerabilityId": "CVE-2026-0002"}},
            ]
        },
    }  # fmt: skip
    expired = {
        "repositoryName": "ledger/api",
        "imageId": {"imageDigest": stale},
        "imageScanStatus": {"status": "SCAN_ELIGIBILITY_EXPIRED"},
        "imageScanFindings": {},
    }
    for result in (found, found, expired, expired):  # one per look (status, then findings)
        requests.post(
            w.env["AWS_ENDPOINT_URL"] + "/moto-api/static/ecr/scan-finding-results",
            json={"results": [result], "region": "eu-central-1"},
            timeout=10,
        )
    env = {
        "DEPLOYMENTS_TABLE": "enhanced-deployments",
        "IMAGES": "staging/api=ledger/api production/api=ledger/api",
        "FAIL_SEVERITIES": "CRITICAL",
        "SCAN_TYPE": "enhanced",  # no StartImageScan: Inspector rescans on its own
        "SCAN_TIMEOUT_SECONDS": "60",
        "OUTCOME_FILE": str(tmp_path / "outcome"),
        "SUMMARY_FILE": str(tmp_path / "summary"),
    }
    res = run(w, "security-review.sh", tmp_path, **env)
    assert res.returncode == 1
    assert (tmp_path / "outcome").read_text() == "outcome=error\n"  # one image unscanned
    assert (tmp_path / "summary").read_text().splitlines() == [
        f"staging/api ledger/api@{stale}: no scan result (SCAN_ELIGIBILITY_EXPIRED)",
        f"production/api ledger/api@{digest}: 1 at or above CRITICAL: CRITICAL CVE-2026-0001",
    ]
