"""Delivery that delivers (issue 15), on the reference (delivered by CodePipeline) and
on storefront (delivered by GitHub Actions): one deliverer, CI before the build,
build once and promote by digest, signing that the pinned cosign accepts, path
isolation, idempotent re-runs, DAST that gates promotion, truthful outcomes.

The shared scripts run for real, against stub aws, docker, cosign and curl commands
and a local GitOps repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.insight.explain import checklist, explain_event
from pipecompile.ir import IR
from pipecompile.targets.common import glob_to_regex, script_path
from tests.conftest import ROOT, git, hcl_norm, scratch_gitops
from tests.harness.reusable import expand
from tests.iam_eval import github_subject

SAMPLES = ROOT / "samples"
REF = SAMPLES / "ecommerce"  # delivery: codepipeline (the default)
GHA = SAMPLES / "storefront"  # delivery: github-actions


def ir_of(sample: Path) -> IR:
    return compile_bytes("pipeline.yaml", (sample / "pipeline.yaml").read_bytes())


def doc(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def tf(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        return dict(hcl_norm(hcl2.load(fh)))


def pipelines(sample: Path) -> dict[str, Any]:
    out = {}
    for block in tf(sample / "infrastructure/terraform/cicd/codepipeline.tf")["resource"]:
        for body in block.get("aws_codepipeline", {}).values():
            out[body["name"]] = body
    return out


def stages(pipeline: dict[str, Any]) -> list[str]:
    return [s["name"] for s in pipeline["stage"]]


def delivery(svc: str) -> dict[str, Any]:
    """storefront's deliver-<svc>.yml as GitHub runs it: the reusable workflows it calls
    (route.yml, build.yml, deploy.yml, zap.yml, notify.yml) expanded with its inputs."""
    return expand(GHA / f".github/workflows/deliver-{svc}.yml")


def project_variables(sample: Path, label: str) -> dict[str, tuple[str, str]]:
    """A CodeBuild project's environment variables (Terraform): name -> (value, type)."""
    for block in tf(sample / "infrastructure/terraform/cicd/codebuild.tf")["resource"]:
        body = block.get("aws_codebuild_project", {}).get(label)
        if body:
            rows = body["environment"][0].get("environment_variable", [])
            return {r["name"]: (r["value"], r.get("type", "PLAINTEXT")) for r in rows}
    raise KeyError(label)


# -- 1. exactly one deliverer -------------------------------------------------------------


@pytest.mark.parametrize("sample", [REF, GHA])
def test_explain_names_exactly_one_deliverer_per_service_and_environment(sample: Path) -> None:
    ir = ir_of(sample)
    for env in ir.environments:
        ref = env.includes[0].replace("*", "x")
        lines = [line for line in explain_event(ir, "push", ref) if "delivered by" in line]
        assert len(lines) == len(ir.services), lines
        for line in lines:
            assert line.count("delivered by") == 1
            other = "deliver-" if ir.delivery == "codepipeline" else "CodePipeline"
            assert other not in line


def test_the_reference_is_delivered_by_codepipeline_only() -> None:
    assert not list((REF / ".github/workflows").glob("deliver-*.yml"))
    assert len(pipelines(REF)) == 2 * 4
    for path in (REF / ".github/workflows").glob("ci-*.yml"):
        on = doc(path)["on"]
        assert set(on) == {"push", "pull_request"}  # CI only: nothing deploys from here


def test_storefront_is_delivered_by_github_actions_only() -> None:
    tf_dir = GHA / "infrastructure/terraform"
    assert sorted(p.name for p in tf_dir.glob("*.tf")) == [
        "argo_rollouts.tf",  # CloudWatch rollback analysis: the controller's role
        "audit.tf",
        "clusters.tf",  # the OIDC issuer that role trusts
        "ecr.tf",
        "iam.tf",
        "kms.tf",
        "monitoring.tf",  # the deliver workflows' metrics (issue 29)
        "notifications.tf",
        "outputs.tf",
        "phases.tf",  # the first apply phase by phase (issue 29)
        "reviews.tf",  # the compliance jobs' roles (issue 29)
        "variables.tf",
        "versions.tf",
    ]
    text = "".join(p.read_text() for p in tf_dir.glob("*.tf"))
    assert "aws_codepipeline" not in text and "aws_codebuild_project" not in text
    assert "aws_dynamodb_table" in text and "aws_iam_openid_connect_provider" in text


# -- 2. CI gates delivery -----------------------------------------------------------------


def test_github_builds_only_after_the_called_ci_passed() -> None:
    for svc in ("web", "payments"):
        wf = doc(GHA / f".github/workflows/deliver-{svc}.yml")
        assert wf["jobs"]["ci"]["uses"] == f"$/.github/workflows/ci-{svc}.yml"
        assert "ci" in wf["jobs"]["build"]["needs"]
        ci = doc(GHA / f".github/workflows/ci-{svc}.yml")
        assert set(ci["on"]) == {"pull_request", "workflow_call"}
        assert set(ci["on"]["workflow_call"]["secrets"]) == set(wf["jobs"]["ci"]["secrets"])
        # ci-<svc>.yml calls ci.yml, passing on every secret it was given, by name
        call = ci["jobs"]["validate"]
        assert call["uses"] == "$/.github/workflows/ci.yml"
        assert call["secrets"] == {
            n: f"${{{{ secrets.{n} }}}}" for n in wf["jobs"]["ci"]["secrets"]
        }
        names = [
            s["name"]
            for s in expand(GHA / f".github/workflows/ci-{svc}.yml")["jobs"]["validate"]["steps"]
        ]
        assert "SonarQube analysis" in names
        assert any(n.startswith("OWASP dependency check") for n in names)


def test_codebuild_runs_ci_sonarqube_and_dependency_check_before_it_builds() -> None:
    ir = ir_of(REF)
    spec = doc(REF / "ci/codebuild/build.yml")  # every service's
    for svc in ir.services:
        assert project_variables(REF, f"build-{svc.name}")["SERVICE"] == (svc.name, "PLAINTEXT")
        pre = spec["phases"]["pre_build"]
        assert pre["on-failure"] == "ABORT"
        commands = "\n".join(pre["commands"])
        for step in ir.steps:
            assert step.run in pre["commands"]
        assert "sonar.qualitygate.wait=true" in commands and "api/issues/search" in commands
        assert "--failOnCVSS" in commands
        assert "docker build" not in commands  # nothing is built before CI passed
        assert "docker build" in "\n".join(spec["phases"]["build"]["commands"])
        # each tier's project names its own SonarQube secret; the shared buildspec none
        assert "SONAR_TOKEN" not in spec["env"]["secrets-manager"]
        assert project_variables(REF, f"build-{svc.name}")["SONAR_TOKEN"] == (
            "ecommerce/sonarqube:token",
            "SECRETS_MANAGER",
        )


def test_every_build_project_role_may_read_the_secrets_its_build_reads() -> None:
    """CodeBuild reads the buildspec's secrets-manager entries and the project's
    SECRETS_MANAGER variables with the project's service role (CodeBuild User Guide,
    build-spec-ref.md "secrets-manager"): the release role was denied the dev tier's
    SonarQube secret the shared build.yml named (found by the rehearsal's IAM check)."""
    from tests.iam_eval import Account

    acct = Account(REF / "infrastructure/terraform/cicd", "123456789012")
    spec = doc(REF / "ci/codebuild/build.yml")
    names = {s.name for s in ir_of(REF).services}
    checked = 0
    for block in tf(REF / "infrastructure/terraform/cicd/codebuild.tf")["resource"]:
        for label, body in block.get("aws_codebuild_project", {}).items():
            if label.removeprefix("build-").removesuffix("-release") not in names:
                continue
            role = re.fullmatch(r"\$\{aws_iam_role\.(\w+)\.arn\}", body["service_role"])[1]  # type: ignore[index]
            refs = list(spec["env"]["secrets-manager"].values()) + [
                value for value, kind in project_variables(REF, label).values()
                if kind == "SECRETS_MANAGER"
            ]  # fmt: skip
            for ref in refs:
                name = ref.split(":", 1)[0]
                arn = f"arn:aws:secretsmanager:{acct.region}:123456789012:secret:{name}-AbCdEf"
                assert acct.can(role, "secretsmanager:GetSecretValue", arn), (label, ref)
                checked += 1
    assert checked >= 8


def test_the_dependency_check_passes_each_option_as_its_own_argument() -> None:
    # the pinned Dependency-Check_Action put `others` into one argument (its action.yml
    # lists '${{ inputs.others }}' as a single args entry); the container is run instead
    for path in [REF / ".github/workflows/ci.yml", GHA / ".github/workflows/ci.yml"]:
        text = path.read_text()
        assert "Dependency-Check_Action" not in text
        assert '--failOnCVSS "$FAIL_CVSS"' in text


# -- 3 and 6. build once, promote by digest; re-runs reuse -----------------------------------

FAKE = """#!/usr/bin/env bash
# a stub of aws, docker, cosign and curl: the registry is a folder of tag -> digest files
name="$(basename "$0")"
echo "$name $*" >> "$CALLS"
reg="$REGISTRY"
tag_of() { sed -n 's/.*imageTag=\\([^ ]*\\).*/\\1/p' <<<"$*"; }
case "$name $*" in
  "aws ecr describe-images"*)
    t="$(tag_of "$*")"
    if [ -f "$reg/$t" ]; then cat "$reg/$t"; else echo "ImageNotFound" >&2; exit 254; fi ;;
  "aws ecr get-login-password"*) echo secret ;;
  "aws ecr batch-get-image"*) echo '{"manifest": 1}' ;;
  "aws ecr put-image"*)
    t="$(sed -n 's/.*--image-tag \\([^ ]*\\).*/\\1/p' <<<"$*")"
    [ -f "$reg/$t" ] && exit 254
    echo "$FAKE_DIGEST" > "$reg/$t" ;;
  "aws dynamodb put-item --table-name $PROMOTIONS_TABLE "*|"aws dynamodb get-item"*)
    # the promotions table: one file per (gate, digest) key, written once
    key="$(sed -n 's/.*"gate":{"S":"\\([^"]*\\)"}.*"digest":{"S":"\\([^"]*\\)"}.*/\\1-\\2/p' \
      <<<"$*")"
    item="$reg/pass-${key//\\//_}"
    if [ "$2" = get-item ]; then [ -f "$item" ] && cat "$item"; exit 0; fi
    if [ -f "$item" ]; then echo "ConditionalCheckFailedException" >&2; exit 254; fi
    sed -n 's/.*"digest":{"S":"\\([^"]*\\)"}.*/\\1/p' <<<"$*" > "$item" ;;
  "aws dynamodb put-item"*) ;;
  "aws "*) echo "unexpected: $*" >&2; exit 2 ;;
  "docker login"*|"docker build"*) cat >/dev/null 2>&1 || true ;;
  "docker push"*)
    t="${2##*:}"
    if [ -n "${FAKE_RACE:-}" ]; then echo "$FAKE_DIGEST" > "$reg/$t"; exit 1; fi
    echo "$FAKE_DIGEST" > "$reg/$t" ;;
  "docker run"*)
    mkdir -p reports
    printf '%s' "$FAKE_ZAP" > reports/zap-report.json ;;
  "cosign attest"*|"cosign verify-attestation"*)
    # one attestation per (predicate type, key); cosign v3 refers it to the digest
    key="$(sed -n 's/.*--key \\([^ ]*\\).*/\\1/p' <<<"$*")"
    type="$(sed -n 's/.*--type \\([^ ]*\\).*/\\1/p' <<<"$*")"
    mark="$reg/att-$type-${key//\\//_}"
    case "$1" in verify-attestation) [ -f "$mark" ] || exit 1 ;; *) touch "$mark" ;; esac ;;
  "cosign verify"*|"cosign sign"*)
    key="$(sed -n 's/.*--key \\([^ ]*\\).*/\\1/p' <<<"$*")"
    mark="$reg/signed-${key//\\//_}"
    case "$1" in verify) [ -f "$mark" ] || exit 1 ;; *) touch "$mark" ;; esac ;;
  "curl "*)  # the Argo CD API: the body to -o's file, "code type" for -w
    out="$(sed -n 's/.* -o \\([^ ]*\\) .*/\\1/p' <<<"$*")"
    if [ -n "$out" ]; then printf '%s' "$FAKE_APP" > "$out"; echo "200 application/json"
    else printf '%s' "$FAKE_APP"; fi ;;
  *) echo "unexpected: $name $*" >&2; exit 2 ;;
esac
"""

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Any]:
    """A repository with two services, stub tools on PATH, an empty registry."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("aws", "docker", "cosign", "curl"):
        (bin_dir / tool).write_text(FAKE)
        (bin_dir / tool).chmod(0o755)
    repo = tmp_path / "repo"
    (repo / "services/payments").mkdir(parents=True)
    (repo / "app.py").write_text("web\n")
    (repo / "services/payments/app.py").write_text("payments\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    registry = tmp_path / "registry"
    registry.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "REGISTRY": str(registry),
        "FAKE_DIGEST": DIGEST,
        "ECR_REGISTRY": "1.dkr.ecr.eu-central-1.amazonaws.com",
        "ECR_REPOSITORY": "storefront/payments",
        "IMAGE_URI": "1.dkr.ecr.eu-central-1.amazonaws.com/storefront/payments",
        "SERVICE_PATH": "services/payments",
        "DOCKERFILE": "services/payments/Dockerfile",
        "IMAGE_ENV": str(tmp_path / "image.env"),
        "HOME": str(tmp_path),
    }
    return {"repo": repo, "env": env, "tmp": tmp_path, "registry": registry}


def run(script: str, box: dict[str, Any], **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the packaged script ``script`` as a file, in the sandbox's repository."""
    (box["tmp"] / "calls").write_text("")
    return subprocess.run(
        ["bash", str(script_path(script))],
        cwd=box["repo"],
        env={**box["env"], **extra},
        capture_output=True,
        text=True,
        check=False,
    )


def calls(box: dict[str, Any]) -> list[str]:
    return (box["tmp"] / "calls").read_text().splitlines()


def image_env(box: dict[str, Any]) -> dict[str, str]:
    lines = (box["tmp"] / "image.env").read_text().split()
    (box["tmp"] / "image.env").write_text("")
    return dict(line.split("=", 1) for line in lines[-2:])


def test_an_image_is_built_once_per_source_tree_and_reused(sandbox: dict[str, Any]) -> None:
    first = run("build-once.sh", sandbox)
    assert first.returncode == 0, first.stderr
    assert any(c.startswith("docker build") for c in calls(sandbox))
    built = image_env(sandbox)
    tree = git(sandbox["repo"], "rev-parse", "HEAD:services/payments")
    assert built == {"IMAGE_TAG": f"src-{tree}", "IMAGE_DIGEST": DIGEST}

    # a re-run, or main after merging the release branch: same tree, same digest
    (sandbox["repo"] / "app.py").write_text("web changed\n")  # another service's files
    git(sandbox["repo"], "commit", "-q", "-am", "two")
    again = run("build-once.sh", sandbox)
    assert again.returncode == 0, again.stderr
    assert "reusing it" in again.stdout
    assert not any(c.startswith("docker") for c in calls(sandbox))
    assert image_env(sandbox) == built

    # a change in the service's own folder is a new image
    (sandbox["repo"] / "services/payments/app.py").write_text("payments 2\n")
    git(sandbox["repo"], "commit", "-q", "-am", "three")
    third = run("build-once.sh", sandbox)
    assert any(c.startswith("docker build") for c in calls(sandbox)), third.stderr
    assert image_env(sandbox)["IMAGE_TAG"] != built["IMAGE_TAG"]


def _verified(box: dict[str, Any], **extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """verify-build.sh run as the sign project runs it: its "<tag> <digest>" file."""
    out = box["tmp"] / "verified-image"
    out.unlink(missing_ok=True)
    res = run("verify-build.sh", box, VERIFIED_IMAGE=str(out), **extra)
    return res, out.read_text() if out.exists() else ""


def test_the_signing_session_finds_the_image_of_its_source_tree_itself(
    sandbox: dict[str, Any],
) -> None:
    """verify-build.sh (the sign projects, issue 28) reads nothing the build session
    reported (CodePipeline pastes an exported value into the next action's JSON as text):
    the tag is the key build-once.sh computes for the same checkout, the digest the one
    the registry holds at that tag.  Was: it checked the build's IMAGE_TAG and IMAGE_DIGEST;
    now it is given neither, and a hostile value in the environment changes nothing."""
    assert run("build-once.sh", sandbox).returncode == 0
    built = image_env(sandbox)
    hostile = {"IMAGE_TAG": 'x"},{"name":"BASH_ENV"', "IMAGE_DIGEST": "sha256:" + "cd" * 32}
    ok, found = _verified(sandbox, **hostile)
    assert ok.returncode == 0, ok.stderr
    assert found == f"{built['IMAGE_TAG']} {DIGEST}\n"
    assert f"storefront/payments:{built['IMAGE_TAG']} is {DIGEST}" in ok.stdout
    assert [c.split(" --", 1)[0] for c in calls(sandbox)] == ["aws ecr describe-images"]
    # the other tier's prefix is another key, which the registry does not hold
    res, found = _verified(sandbox, TAG_PREFIX="rel")
    assert res.returncode == 1 and "cannot be read: ImageNotFound" in res.stderr
    assert found == ""
    # a new commit of the service: the old image is not this tree's
    (sandbox["repo"] / "services/payments/app.py").write_text("payments 2\n")
    git(sandbox["repo"], "commit", "-q", "-am", "two")
    res, found = _verified(sandbox)
    assert res.returncode == 1 and "cannot be read: ImageNotFound" in res.stderr
    # a registry answer that is not a digest is never written (nor exported)
    tree = git(sandbox["repo"], "rev-parse", "HEAD:services/payments")
    (sandbox["registry"] / f"src-{tree}").write_text('latest"}\n')
    res, found = _verified(sandbox)
    assert res.returncode == 1 and "not a sha256 digest" in res.stderr and found == ""


def test_the_signing_session_keys_the_tree_as_the_build_does(sandbox: dict[str, Any]) -> None:
    """The root service less an excluded folder: both scripts compute the same key."""
    keyed = {"SERVICE_PATH": ".", "DOCKERFILE": "Dockerfile"}
    keyed["IMAGE_EXCLUDES"] = json.dumps(["services/payments"])
    assert run("build-once.sh", sandbox, **keyed).returncode == 0
    built = image_env(sandbox)
    assert built["IMAGE_TAG"] != "src-" + git(sandbox["repo"], "rev-parse", "HEAD^{tree}")
    res, found = _verified(sandbox, **keyed)
    assert res.returncode == 0, res.stderr
    assert found == f"{built['IMAGE_TAG']} {DIGEST}\n"
    # without the exclusion it is the whole tree's key: another one, never pushed
    res, found = _verified(sandbox, **{**keyed, "IMAGE_EXCLUDES": "[]"})
    assert res.returncode == 1 and "cannot be read" in res.stderr and found == ""


def test_a_concurrent_build_of_the_same_tree_is_not_a_failure(sandbox: dict[str, Any]) -> None:
    # the immutable tag was pushed by someone else between our lookup and our push
    res = run("build-once.sh", sandbox, FAKE_RACE="1")
    assert res.returncode == 0, res.stderr
    assert image_env(sandbox)["IMAGE_DIGEST"] == DIGEST


def test_the_root_service_is_keyed_by_the_whole_tree(sandbox: dict[str, Any]) -> None:
    res = run("build-once.sh", sandbox, SERVICE_PATH=".", DOCKERFILE="Dockerfile")
    assert res.returncode == 0, res.stderr
    root_tree = git(sandbox["repo"], "rev-parse", "HEAD^{tree}")
    assert image_env(sandbox)["IMAGE_TAG"] == f"src-{root_tree}"


def _generated_excludes(sample: str) -> str:
    """IMAGE_EXCLUDES of the sample's root service, as its deliverer passes it: the
    deliver workflow's build input (GitHub) or the build project's variable (Terraform)."""
    if sample == "storefront":
        deliver = ROOT / "samples/storefront/.github/workflows/deliver-web.yml"
        value = yaml.safe_load(deliver.read_text())["jobs"]["build"]["with"]["image_excludes"]
        return str(value)
    tf = (ROOT / "samples/ecommerce/infrastructure/terraform/cicd/codebuild.tf").read_text()
    project = tf.split('resource "aws_codebuild_project" "build-product-service"')[1]
    found = re.search(r'name  = "IMAGE_EXCLUDES"\n\s*value = (".*")\n', project)
    assert found, "no IMAGE_EXCLUDES in the build project"
    return str(json.loads(found.group(1)))


@pytest.mark.parametrize(
    ("sample", "values", "other"),
    [
        ("storefront", "deploy/apps/web/values-staging.yaml", "services/payments/app.py"),
        (
            "ecommerce",
            "kubernetes/apps/product-service/values-staging.yaml",
            "services/order/app.py",
        ),
    ],
)
def test_the_root_service_keeps_its_image_when_only_its_deploy_values_change(
    sandbox: dict[str, Any], sample: str, values: str, other: str
) -> None:
    # issue 26: web's (product-service's) tag was the whole tree, so a values-only or
    # workflow-only change rebuilt it and asked for a fresh staging pass
    repo = sandbox["repo"]
    excludes = _generated_excludes(sample)
    assert json.loads(excludes), excludes
    for rel in (values, ".github/workflows/deliver.yml", "pipeline.yaml", other):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("one\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "layout")
    root = {"SERVICE_PATH": ".", "DOCKERFILE": "Dockerfile", "IMAGE_EXCLUDES": excludes}
    assert run("build-once.sh", sandbox, **root).returncode == 0
    built = image_env(sandbox)
    for rel in (values, ".github/workflows/deliver.yml", "pipeline.yaml", other):
        (repo / rel).write_text("two\n")
        git(repo, "commit", "-q", "-am", f"change {rel}")
        again = run("build-once.sh", sandbox, **root)
        assert again.returncode == 0 and "reusing it" in again.stdout, (rel, again.stderr)
        assert image_env(sandbox) == built, rel
    (repo / "app.py").write_text("web 2\n")  # the service's own source
    git(repo, "commit", "-q", "-am", "web")
    third = run("build-once.sh", sandbox, **root)
    assert any(c.startswith("docker build") for c in calls(sandbox)), third.stderr
    assert image_env(sandbox)["IMAGE_TAG"] != built["IMAGE_TAG"]
    assert git(repo, "status", "--porcelain") == ""  # the scratch index left no trace


def test_gitops_records_the_digest(sandbox: dict[str, Any]) -> None:
    gitops = scratch_gitops(sandbox["tmp"])
    extra = {
        "GITOPS_REPOSITORY": f"file://{gitops}",
        "GITOPS_REVISION": "HEAD",
        "GITOPS_DIR": "apps/payments/staging",
        "CHART_SOURCE": "",
        "SERVICE": "payments",
        "ENVIRONMENT": "staging",
        "IMAGE_TAG": "src-abc",
        "IMAGE_DIGEST": DIGEST,
        "GITOPS_AUTH": "ssh",
        "GITOPS_DEPLOY_KEY": "not a key",
    }
    script = "gitops-record.sh"
    assert run(script, sandbox, **extra).returncode == 0
    recorded = yaml.safe_load(git(gitops, "show", "HEAD:apps/payments/staging/image-staging.yaml"))
    assert recorded == {
        "image": {"repository": sandbox["env"]["IMAGE_URI"], "tag": "src-abc", "digest": DIGEST}
    }
    again = run(script, sandbox, **extra)  # a re-run changes nothing
    assert again.returncode == 0 and "already records" in again.stdout


# -- 4. signing that the pinned cosign accepts ----------------------------------------------


def test_both_orchestrators_run_the_pinned_cosign_with_valid_flags() -> None:
    ir = ir_of(REF)
    assert ir.pins.cosign_version == "v3.0.6"
    sign = "cosign sign --yes --use-signing-config=false --tlog-upload=false"
    # the sign projects sign (issue 28); the release build only verifies (its reuse check)
    assert sign in (REF / "ci/codebuild/sign.yml").read_text()
    assert "cosign sign" not in (REF / "ci/codebuild/build.yml").read_text()
    for name in ("build.yml", "sign.yml"):
        spec = doc(REF / "ci/codebuild" / name)
        assert spec["env"]["variables"]["COSIGN_VERSION"] == "v3.0.6"
        assert spec["env"]["variables"]["COSIGN_SHA256"] == ir.pins.cosign_sha256
        assert any("sha256sum -c" in c for c in spec["phases"]["install"]["commands"])
    # the deploy installs it in the phase whose finally writes the audit row: a failed
    # install phase skips the build phase, its finally included (no row at all)
    deploy = doc(REF / "ci/codebuild/deploy.yml")
    assert "install" not in deploy["phases"]
    commands = deploy["phases"]["build"]["commands"]
    (install,) = [i for i, c in enumerate(commands) if "sha256sum -c" in c]
    # after the exports the finally block's facts read: a failed install still names them
    for fact in ("export ACTOR=", "PIPELINE_NAME="):
        assert any(fact in c for c in commands[:install]), fact
    assert any("put-item" in c for c in deploy["phases"]["build"]["finally"])
    deliver = delivery("web")
    steps = [s for job in deliver["jobs"].values() for s in job.get("steps", [])]
    installs = [s for s in steps if s["name"] == "Install cosign"]
    assert installs and all(s["with"]["cosign-release"] == "v3.0.6" for s in installs)
    assert any(sign in s.get("run", "") for s in steps)
    for path in [*REF.rglob("*.yml"), *GHA.rglob("*.yml")]:
        for line in path.read_text().splitlines():
            if "cosign sign " in line:
                assert "--use-signing-config=false" in line, (path, line)


@pytest.mark.parametrize(
    ("sample", "roles"),
    [
        (
            REF / "infrastructure/terraform/cicd/iam.tf",
            ["codebuild_sign", "codebuild_sign_release"],
        ),
        (GHA / "infrastructure/terraform/iam.tf", ["github_build"]),
    ],
)
def test_signing_roles_may_call_everything_the_kms_client_calls(
    sample: Path, roles: list[str]
) -> None:
    docs = {k: v for b in tf(sample)["data"] for k, v in b["aws_iam_policy_document"].items()}
    for role in roles:
        sign = [s for s in docs[role]["statement"] if s["sid"] == "SignImages"]
        assert sign and {"kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"} <= set(
            sign[0]["actions"]
        )


def test_signing_is_skipped_when_the_digest_is_signed_already(sandbox: dict[str, Any]) -> None:
    extra = {"SIGNING_KEY": "awskms:///alias/k", "IMAGE_DIGEST": DIGEST}
    assert run("sign-once.sh", sandbox, **extra).returncode == 0
    assert any(c.startswith("cosign sign") for c in calls(sandbox))
    assert run("sign-once.sh", sandbox, **extra).returncode == 0  # a re-run
    assert not any(c.startswith("cosign sign") for c in calls(sandbox))


# -- 5. path isolation ----------------------------------------------------------------------


def triggers(patterns: list[str], changed: list[str]) -> bool:
    """GitHub's paths filter: patterns in order, a later '!' removes what matched."""
    for path in changed:
        hit = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            if re.fullmatch(glob_to_regex(pattern.removeprefix("!")), path):
                hit = not negated
        if hit:
            return True
    return False


@pytest.mark.parametrize("svc", ["web", "payments"])
def test_a_change_to_a_workflow_a_caller_runs_starts_it_and_none_is_listed_twice(
    svc: str,
) -> None:
    """Each workflow deliver-<svc>.yml runs (itself, ci-<svc>.yml and what they call)
    passes its paths filter; one an earlier pattern matches ('**') is not listed again."""
    folder = GHA / ".github/workflows"
    patterns = doc(folder / f"deliver-{svc}.yml")["on"]["push"]["paths"]
    called = {f"deliver-{svc}.yml", f"ci-{svc}.yml"}
    for name in sorted(called):
        called |= {
            m.split("/")[-1] for m in re.findall(r"uses: '\$/(\S+)'", (folder / name).read_text())
        }
    called |= {
        m.split("/")[-1]
        for m in re.findall(r"uses: '\$/(\S+)'", (folder / "deploy.yml").read_text())
    }
    assert {"ci.yml", "route.yml", "build.yml", "deploy.yml", "zap.yml"} <= called
    for name in called:
        assert triggers(patterns, [f".github/workflows/{name}"]), name
    for i, pattern in enumerate(patterns):
        if pattern.startswith(".github/"):
            assert not triggers(patterns[:i], [pattern]), pattern


def test_a_change_inside_another_service_never_starts_a_service() -> None:
    web = doc(GHA / ".github/workflows/deliver-web.yml")["on"]["push"]["paths"]
    payments = doc(GHA / ".github/workflows/deliver-payments.yml")["on"]["push"]["paths"]
    assert not triggers(web, ["services/payments/app.py"])
    assert triggers(payments, ["services/payments/app.py"])
    assert triggers(web, ["app.py"]) and not triggers(payments, ["app.py"])
    # CodePipeline: the root service excludes the other services' folders
    ref = pipelines(REF)
    for env in ("development", "production"):
        push = ref[f"ecommerce-product-service-{env}"]["trigger"][0]["git_configuration"][0]
        paths = push["push"][0]["file_paths"][0]
        # not for a change only in the other service's folder
        assert paths == {"includes": ["**"], "excludes": ["services/order/**"]}
        order = ref[f"ecommerce-order-service-{env}"]["trigger"][0]["git_configuration"][0]
        assert order["push"][0]["file_paths"][0] == {
            "includes": [
                "services/order/**",
                "kubernetes/apps/order-service/**",
                "kubernetes/apps/_chart/**",
            ]
        }


def test_codebuild_gets_a_git_clone_to_key_images_by_tree() -> None:
    for p in pipelines(REF).values():
        source = p["stage"][0]["action"][0]["configuration"]
        assert source["OutputArtifactFormat"] == "CODEBUILD_CLONE_REF"


# -- 7. DAST gates promotion ----------------------------------------------------------------


def test_dast_runs_after_every_deploy_to_its_environment_and_gates_the_next() -> None:
    for svc in ("web", "payments"):
        jobs = delivery(svc)["jobs"]
        staging = [s["name"] for s in jobs["deploy-staging"]["steps"]]
        assert any(n.startswith("Wait until Argo CD") for n in staging)
        # the scan is a job of its own after the deploy job succeeded (zap.yml: ZAP holds
        # no token; the mark runs in the DAST's own environment and role, none of the
        # deploy's secrets: tests/trust/test_trust_attacks.py)
        assert not any(n.startswith("OWASP ZAP") for n in staging)
        zap = jobs["deploy-staging/dast"]
        assert zap["needs"] == "deploy" and "if" not in zap  # the default: success()
        assert zap["steps"][0]["name"].startswith("OWASP ZAP")
        assert zap["permissions"] == {} and "environment" not in zap
        mark = jobs["deploy-staging/dast/mark"]
        assert mark["needs"] == "scan" and mark["environment"] == "staging-dast"
        assert not any(j.startswith(("deploy-production/", "deploy-development/")) for j in jobs)
        production = [s["name"] for s in jobs["deploy-production"]["steps"]]
        gate = production.index("Promote only what passed DAST in staging")
        assert gate < next(i for i, n in enumerate(production) if n.startswith("Record"))
        assert not any(n.startswith("Promote") for n in staging)
    for name, p in pipelines(REF).items():
        assert (stages(p)[-1] == "Dast") == name.endswith("-staging"), name
    production = "\n".join(doc(REF / "ci/codebuild/deploy.yml")["phases"]["build"]["commands"])
    assert production.index("has not passed DAST") < production.index("git clone")
    # the one deploy buildspec runs the gate where the environment's project turns it on
    assert project_variables(REF, "deploy-production")["RUN_PROMOTION_GATE"] == (
        "true",
        "PLAINTEXT",
    )
    assert "RUN_PROMOTION_GATE" not in project_variables(REF, "deploy-staging")


ALERT = '{{"site": [{{"alerts": [{{"riskcode": "{risk}", "riskdesc": "r", "name": "n"}}]}}]}}'


@pytest.mark.parametrize(("risk", "passes"), [("1", True), ("2", False), ("3", False)])
def test_zap_alerts_at_or_above_the_threshold_block_promotion(
    sandbox: dict[str, Any], risk: str, passes: bool
) -> None:
    extra = {
        "DAST_ENVIRONMENT": "staging",
        "PROMOTIONS_TABLE": "storefront-promotions",
        "DAST_URL": "https://staging.example.com",
        "ZAP_IMAGE": "zap",
        "ZAP_MIN_RISK": "2",  # storefront: fail_on medium
        "FAKE_ZAP": ALERT.format(risk=risk),
        "IMAGE_TAG": "src-abc",
        "IMAGE_DIGEST": DIGEST,
    }
    res = run("dast-scan.sh", sandbox, **extra)
    assert (res.returncode == 0) == passes, res.stderr
    if passes:  # the next step of the DAST: the mark the gate looks for
        mark = run("dast-mark.sh", sandbox, **extra)
        assert mark.returncode == 0, mark.stderr
    gate = run("promotion-gate.sh", sandbox, **extra)
    assert (gate.returncode == 0) == passes, gate.stderr
    if not passes:
        assert "has not passed DAST in staging" in gate.stderr


# -- 8. truthful outcomes -------------------------------------------------------------------


def app(health: str, image: str = DIGEST) -> str:
    return json.dumps(
        {
            "status": {
                "sync": {"status": "Synced"},
                "health": {"status": health},
                "summary": {"images": [f"repo@{image}"]},
            }
        }
    )


@pytest.mark.parametrize(
    ("health", "seconds", "code", "outcome"),
    [
        ("Healthy", "60", 0, "succeeded"),
        # Degraded at the new digest: a Deployment past its deadline, nothing rolled back
        # (an aborted rollout: tests/rehearsal/test_rehearsal.py)
        ("Degraded", "60", 1, "failed"),
        ("Progressing", "0", 1, "timed-out"),
    ],
)
def test_a_deploy_succeeds_only_when_the_rollout_is_healthy(
    sandbox: dict[str, Any], health: str, seconds: str, code: int, outcome: str
) -> None:
    out = sandbox["tmp"] / "outcome"
    extra = {
        "ARGOCD_SERVER": "https://argocd",
        "ARGOCD_AUTH_TOKEN": "t",
        "ARGOCD_APP": "payments-staging",
        "SERVICE": "payments",
        "ENVIRONMENT": "staging",
        "IMAGE_DIGEST": DIGEST,
        "WAIT_SECONDS": seconds,
        "OUTCOME_FILE": str(out),
        "FAKE_APP": app(health),
    }
    res = run("wait-healthy.sh", sandbox, **extra)
    assert res.returncode == code, res.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == f"outcome={outcome}"
    # why it did not succeed (the audit row's reason); nothing more when it did
    reason = [line.removeprefix("reason=") for line in lines[1:]]
    assert reason == ([] if outcome == "succeeded" else [reason[0]]) and lines[1:2] != ["reason="]
    # the audit row: commit, digest, environment, approver, outcome
    audit = run(
        "audit-row.sh",
        sandbox,
        **extra,
        DEPLOYMENTS_TABLE="t",
        COMMIT="c0ffee",
        IMAGE_TAG="src-abc",
        APPROVER="alice",
        RUN="run-1",
    )
    assert audit.returncode == 0, audit.stderr
    put = next(c for c in calls(sandbox) if c.startswith("aws dynamodb put-item"))
    # never replaces a row (issue 28): the key is environment/service and time/run
    assert "--condition-expression attribute_not_exists(#k)" in put
    assert '--expression-attribute-names {"#k":"deployment"}' in put
    item = json.loads(put.split("--item ", 1)[1])
    at = item["deployed_at"]["S"]
    assert item["stream"]["S"] == "staging/payments"
    assert item["deployment"]["S"] == f"{at}/run-1"
    assert item["issues"] == {"L": []}  # no checkout here: no commit message to read
    skip = ("deployed_at", "stream", "deployment", "issues")
    assert {k: v["S"] for k, v in item.items() if k not in skip} == {
        "service": "payments",
        "environment": "staging",
        "commit": "c0ffee",
        "image_digest": DIGEST,
        "image_tag": "src-abc",
        "approver": "alice",
        "outcome": outcome,
        "run": "run-1",
        **({"reason": reason[0]} if reason else {}),
    }


def test_both_deliverers_write_the_audit_row_whatever_happened() -> None:
    build = doc(REF / "ci/codebuild/deploy.yml")["phases"]["build"]  # every environment's
    assert any("put-item" in c for c in build["finally"])  # runs on failure too
    jobs = delivery("web")["jobs"]
    for env in ("development", "staging", "production"):
        audit = next(
            s for s in jobs[f"deploy-{env}"]["steps"] if s["name"] == "Write the audit row"
        )
        assert audit["if"] == "always()"
    approver = next(
        s for s in jobs["deploy-production"]["steps"] if s["name"] == "Look up who approved"
    )
    assert "/approvals" in approver["run"]
    assert jobs["deploy-production"]["permissions"]["actions"] == "read"


def test_slack_says_succeeded_only_without_failures_or_cancellations() -> None:
    steps = delivery("web")["jobs"]["notify"]["steps"]
    notify = [s for s in steps if "with" in s]  # the Slack steps (not who to mention)
    by_text = {json.loads(s["with"]["payload"])["text"].split(" (")[0]: s["if"] for s in notify}
    succeeded = next(c for t, c in by_text.items() if "succeeded" in t)
    assert "!contains(needs.*.result, 'cancelled')" in succeeded
    assert any("CANCELLED" in t for t in by_text)
    deploy = delivery("web")["jobs"]["deploy-staging"]["steps"]
    aborted = next(s for s in deploy if s.get("if", "").startswith("failure() && steps.wait"))
    assert "ABORTED and rolled back" in json.loads(aborted["with"]["payload"])["text"]


def test_explain_gives_sns_a_path_to_slack() -> None:
    assert any("AWS Chatbot" in line for line in checklist(ir_of(REF)))


# -- issue 17: least privilege --------------------------------------------------------------


def policy_docs(path: Path) -> dict[str, Any]:
    return {k: v for b in tf(path)["data"] for k, v in b.get("aws_iam_policy_document", {}).items()}


def test_each_github_environment_has_its_own_role_and_nothing_else_assumes_it() -> None:
    ir = ir_of(GHA)
    docs = policy_docs(GHA / "infrastructure/terraform/iam.tf")

    def subjects(doc_label: str) -> list[str]:
        """The subjects a trust policy admits (StringLike; tests/trust/test_trust_branches.py
        plays a branch ref against them)."""
        return [
            v
            for st in docs[doc_label]["statement"]
            for c in st["condition"]
            if c["variable"].endswith(":sub") and c["test"] == "StringLike"
            for v in c["values"]
        ]

    # two build roles: a feature branch's build can never use the release role or key
    # each trusts build.yml's jobs in its GitHub environment on its tier's branches, never
    # a branch ref alone (hotfixes follow the release's)
    def build(branches: tuple[str, ...], environment: str) -> list[str]:
        return sorted(
            github_subject(ir.repository, "build.yml", b, environment, called_at="*")
            for b in branches
        )

    dev = tuple(b for b in ir.deploy_branches if b not in ir.release_branches)
    assert sorted(subjects("github_build_assume")) == build(dev, "build")
    assert sorted(subjects("github_release_assume")) == build(ir.release_branches, "build-release")
    signers = {
        label: st["resources"]
        for label, body in docs.items()
        for st in body["statement"]
        if "kms:Sign" in st.get("actions", [])
    }
    assert signers == {
        "github_build": ["${aws_kms_key.signing.arn}"],
        "github_release": ["${aws_kms_key.release.arn}"],
    }
    for env in ir.environments:
        label = "github_deploy_" + env.name
        assert sorted(subjects(f"{label}_assume")) == sorted(  # never a branch ref alone
            github_subject(ir.repository, "deploy.yml", b, env.name, called_at="*")
            for b in env.includes
        )
        actions = {a for st in docs[label]["statement"] for a in st["actions"]}
        assert "kms:Sign" not in actions and "ecr:UploadLayerPart" not in actions
    jobs = delivery("web")["jobs"]
    roles = {
        job_id: step["with"]["role-to-assume"]
        for job_id, job in jobs.items()
        for step in job.get("steps", [])
        if step["name"] == "Configure AWS credentials (OIDC)"
    }
    # build.yml's inputs.release, which the caller sets from the route's output
    assert roles["build"] == (
        "${{ (needs.route.outputs.release == 'true') && "
        f"'{ir.aws.github_release_role_arn}' || '{ir.aws.github_build_role_arn}' }}}}"
    )
    for env in ir.environments:
        assert roles[f"deploy-{env.name}"] == env.github_role_arn
        assert jobs[f"deploy-{env.name}"]["environment"] == env.name
    assert len(set(roles.values())) == len(roles)  # build and every deploy differ


def test_codebuild_builds_and_deploys_with_different_roles_and_own_secrets() -> None:
    ir = ir_of(REF)
    tf_dir = REF / "infrastructure/terraform/cicd"
    projects = {
        name: body
        for b in tf(tf_dir / "codebuild.tf")["resource"]
        for name, body in b.get("aws_codebuild_project", {}).items()
    }
    for svc in ir.services:
        assert projects[f"build-{svc.name}"]["service_role"] == "${aws_iam_role.codebuild.arn}"
    docs = policy_docs(tf_dir / "iam.tf")
    build_actions = {a for st in docs["codebuild"]["statement"] for a in st["actions"]}
    assert "dynamodb:PutItem" not in build_actions  # the build never writes the audit
    for st in docs["codebuild"]["statement"]:
        assert "gitops" not in json.dumps(st["resources"]) and "argocd" not in json.dumps(
            st["resources"]
        )
    for env in ir.environments:
        label = "deploy_" + env.name
        # the environment's own, counted (phases.tf): their one instance
        assert projects[f"deploy-{env.name}"]["service_role"] == f"${{aws_iam_role.{label}[0].arn}}"
        secrets = next(s for s in docs[label]["statement"] if s["sid"] == "Secrets")
        assert secrets["resources"] == [
            f"${{aws_secretsmanager_secret.gitops_{label}[0].arn}}",
            f"${{aws_secretsmanager_secret.argocd_{label}[0].arn}}",
        ]
        # the one deploy buildspec reads them from its environment's project (Terraform)
        variables = project_variables(REF, f"deploy-{env.name}").values()
        assert {v for v, kind in variables if kind == "SECRETS_MANAGER"} == {
            env.gitops_secret_name,
            f"{env.argocd_secret_name}:server",
            f"{env.argocd_secret_name}:token",
        }
    assert "secrets-manager" not in doc(REF / "ci/codebuild/deploy.yml")["env"]


def test_each_environment_has_its_own_argo_cd_project_and_sync_policy() -> None:
    ir = ir_of(GHA)
    for env in ir.environments:
        project = doc(GHA / f"deploy/argocd/project-{env.name}.yaml")
        assert project["spec"]["destinations"] == [
            {"server": env.cluster, "namespace": env.namespace}
        ]
        app = doc(GHA / f"deploy/argocd/web-{env.name}.yaml")
        assert app["spec"]["project"] == project["metadata"]["name"]
    windows = doc(GHA / "deploy/argocd/project-production.yaml")["spec"]["syncWindows"]
    assert windows == [
        {
            "kind": "allow",
            "schedule": "0 8 * * 1-5",
            "duration": "10h",
            "applications": ["*"],
            "manualSync": True,
        }
    ]
    production = doc(GHA / "deploy/argocd/web-production.yaml")["spec"]["syncPolicy"]
    assert production["automated"] == {"prune": True, "selfHeal": True}  # inside the window
    # sync: manual leaves every sync to a person
    original = (GHA / "pipeline.yaml").read_text()
    text = original.replace("    sync_window:\n", "    sync: manual\n    sync_window:\n")
    assert text != original
    from pipecompile.targets import argocd

    manual = compile_bytes("pipeline.yaml", text.encode())
    rendered = yaml.safe_load(argocd.render(manual)["web-production.yaml"])
    assert "automated" not in rendered["spec"]["syncPolicy"]
    staging = yaml.safe_load(argocd.render(manual)["web-staging.yaml"])
    assert "automated" in staging["spec"]["syncPolicy"]


def test_a_trigger_codepipeline_cannot_hold_is_a_located_error() -> None:
    text = (REF / "pipeline.yaml").read_text()
    extra = "".join(f"  svc-{i}:\n    path: services/svc-{i}\n" for i in range(8))
    text = text.replace("\nnotifications:", extra + "\nnotifications:", 1)
    from pipecompile.errors import PipelineError

    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.encode())
    (error,) = info.value.diagnostics
    assert error.path == ("services", "product-service", "path")  # located at the service
    line = text.split("\n").index("  product-service:") + 1
    assert (error.line, error.column) == (line + 1, 5)  # no path key: its first key
    assert "9 excluded paths in its trigger" in error.message
    assert "give product-service its own folder" in error.message


def test_approval_environments_deploy_only_release_tier_images() -> None:
    ir = ir_of(GHA)
    release = f"awskms:///{ir.aws.release_key_alias}"
    dev = f"awskms:///{ir.aws.signing_key_alias}"
    jobs = delivery("web")["jobs"]
    for env in ir.environments:
        verify = next(
            s for s in jobs[f"deploy-{env.name}"]["steps"] if s["name"].startswith("Verify")
        )
        expected = release if env.approval else f"{release} {dev}"
        assert verify["env"]["SIGNING_KEYS"] == expected
    build = jobs["build"]["steps"]
    image = next(s for s in build if s.get("id") == "image")
    assert (
        image["env"]["TAG_PREFIX"]
        == "${{ (needs.route.outputs.release == 'true') && 'rel' || 'src' }}"
    )
    # CodePipeline: approval environments build with the release project and tier
    for name, p in pipelines(REF).items():
        build_action = next(s for s in p["stage"] if s["name"] == "Build")["action"][0]
        config = build_action["configuration"]
        approval = name.endswith(("-staging", "-production"))
        assert config["ProjectName"].endswith("-release.name}") == approval, name
        assert ('"TAG_PREFIX", value = "rel"' in config.get("EnvironmentVariables", "")) == approval
    docs = policy_docs(REF / "infrastructure/terraform/cicd/iam.tf")
    production = next(
        s for s in docs["deploy_production"]["statement"] if s["sid"] == "VerifySignatures"
    )
    assert production["resources"] == ["${aws_kms_key.release.arn}"]
    testing = next(s for s in docs["deploy_testing"]["statement"] if s["sid"] == "VerifySignatures")
    assert testing["resources"] == ["${aws_kms_key.release.arn}", "${aws_kms_key.signing.arn}"]


def test_a_release_build_never_reuses_a_dev_builds_image(sandbox: dict[str, Any]) -> None:
    assert run("build-once.sh", sandbox).returncode == 0  # dev tier: src-<tree>
    dev = image_env(sandbox)
    res = run("build-once.sh", sandbox, TAG_PREFIX="rel")
    assert res.returncode == 0, res.stderr
    assert any(c.startswith("docker build") for c in calls(sandbox))  # built again
    release = image_env(sandbox)
    assert release["IMAGE_TAG"] == "rel-" + dev["IMAGE_TAG"].removeprefix("src-")


def test_verification_accepts_only_the_listed_keys(sandbox: dict[str, Any]) -> None:
    release, dev = "awskms:///alias/release", "awskms:///alias/dev"
    sign = {"IMAGE_DIGEST": DIGEST}
    assert run("sign-once.sh", sandbox, **sign, SIGNING_KEY=dev).returncode == 0  # a dev build
    approval = run("verify-signature.sh", sandbox, **sign, SIGNING_KEYS=release)
    assert approval.returncode == 1 and "no signature this environment accepts" in approval.stderr
    other = run("verify-signature.sh", sandbox, **sign, SIGNING_KEYS=f"{release} {dev}")
    assert other.returncode == 0 and f"verified with {dev}" in other.stdout
    assert run("sign-once.sh", sandbox, **sign, SIGNING_KEY=release).returncode == 0
    assert run("verify-signature.sh", sandbox, **sign, SIGNING_KEYS=release).returncode == 0


def test_a_release_build_reuses_only_a_release_signed_image(sandbox: dict[str, Any]) -> None:
    """Issue 28: a rel-<tree> tag that someone else pushed first (tag squatting) is never
    reused and signed; only an image the release key signed is."""
    release = "awskms:///alias/release"
    tree = git(sandbox["repo"], "rev-parse", "HEAD:services/payments")
    (sandbox["registry"] / f"rel-{tree}").write_text(DIGEST + "\n")  # the squatter's
    res = run("build-once.sh", sandbox, TAG_PREFIX="rel", REUSE_SIGNED_BY=release)
    assert res.returncode == 1
    assert f"without a signature by {release}" in res.stderr
    made = calls(sandbox)
    assert not any(c.startswith(("docker build", "docker push", "cosign sign")) for c in made)
    # cosign reads registry credentials only from the docker config (cosign v3.0.6
    # cmd/cosign/cli/options/registry.go): the reuse check logs in before it verifies
    login = next(i for i, c in enumerate(made) if c.startswith("docker login"))
    assert login < next(i for i, c in enumerate(made) if c.startswith("cosign verify"))
    signed = run("sign-once.sh", sandbox, IMAGE_DIGEST=DIGEST, SIGNING_KEY=release)
    assert signed.returncode == 0
    res = run("build-once.sh", sandbox, TAG_PREFIX="rel", REUSE_SIGNED_BY=release)
    assert res.returncode == 0 and "reusing it" in res.stdout, res.stderr


def test_a_deploy_needs_an_sbom_and_a_provenance_signed_by_an_accepted_key(
    sandbox: dict[str, Any],
) -> None:
    """Issue 28, item 7: the build attests an SBOM and a provenance with its tier key; a
    deploy verifies both with the keys its environment accepts."""
    release, dev = "awskms:///alias/release", "awskms:///alias/dev"
    box = {
        "IMAGE_DIGEST": DIGEST,
        "SYFT_IMAGE": "anchore/syft:v1.51.0",
        "BUILDER_ID": "arn:aws:codebuild:eu-central-1:1:build/storefront-payments-build",
        "BUILD_INVOCATION": "arn:aws:codebuild:eu-central-1:1:build/x:1",
        "SOURCE_REPOSITORY": "example/storefront",
        "COMMIT": "c0ffee",
    }
    missing = run("verify-attestations.sh", sandbox, **box, SIGNING_KEYS=dev)
    assert missing.returncode == 1 and "has no SBOM and provenance" in missing.stderr
    made = run("attest.sh", sandbox, **box, SIGNING_KEY=dev)
    assert made.returncode == 0, made.stderr
    attests = [c for c in calls(sandbox) if c.startswith("cosign attest")]
    assert [c.split("--type ")[1].split()[0] for c in attests] == ["spdxjson", "slsaprovenance1"]
    assert all("--tlog-upload=false --key awskms:///alias/dev" in c for c in attests)
    assert any(c.startswith("docker run") and "registry:" in c for c in calls(sandbox))
    # an approval environment accepts only the release key: a dev-tier attestation fails
    refused = run("verify-attestations.sh", sandbox, **box, SIGNING_KEYS=release)
    assert refused.returncode == 1
    ok = run("verify-attestations.sh", sandbox, **box, SIGNING_KEYS=f"{release} {dev}")
    assert ok.returncode == 0 and f"verified with {dev}" in ok.stdout
    again = run("attest.sh", sandbox, **box, SIGNING_KEY=dev)  # a reused image
    assert "already carries" in again.stdout
    assert not any(c.startswith("cosign attest") for c in calls(sandbox))


def test_deploy_yml_gives_each_environment_its_own_values_and_fails_closed() -> None:
    """deploy.yml looks up what varies by environment only (its role, its accepted keys)
    by inputs.environment: each environment gets its own, an unknown one nothing."""
    from pipecompile.targets.common import accepted_keys
    from tests.harness.reusable import _constant

    def value(expr: str, environment: str) -> Any:
        return _constant(
            expr.strip().removeprefix("${{").removesuffix("}}"), {"environment": environment}
        )

    ir = ir_of(GHA)
    steps = doc(GHA / ".github/workflows/deploy.yml")["jobs"]["deploy"]["steps"]
    role = next(s for s in steps if s["name"].startswith("Configure AWS"))["with"]
    keys = next(s for s in steps if s["name"] == "Verify the image signature")["env"]
    for env in ir.environments:
        assert value(role["role-to-assume"], env.name) == env.github_role_arn
        assert value(keys["SIGNING_KEYS"], env.name) == accepted_keys(ir, env)
    assert value(role["role-to-assume"], "qa") == "" and value(keys["SIGNING_KEYS"], "qa") == ""
    # a verification with no accepted key refuses every image
    assert "for key in $SIGNING_KEYS; do" in next(
        s["run"] for s in steps if s["name"] == "Verify the image signature"
    )


@pytest.mark.parametrize(
    "path",
    [
        GHA / ".github/workflows/build.yml",
        GHA / ".github/workflows/deploy.yml",
        REF / "ci/codebuild/sign.yml",  # CodePipeline signs in the sign projects
        REF / "ci/codebuild/deploy.yml",
    ],
    ids=lambda p: f"{p.parent.parent.parent.name}/{p.parent.name}/{p.name}",
)
def test_one_registry_login_before_cosign_signs_or_verifies(path: Path) -> None:
    """ecr-login.sh runs once, as its own step, before the signing (build) or the
    verification (deploy); neither cosign step logs in on its own any more."""
    text = path.read_text()
    login = script_path("ecr-login.sh").read_text().split("set -euo pipefail\n", 1)[1]
    first_line = login.splitlines()[0]
    assert text.count(first_line) == 1, path
    at = text.index(first_line)
    # build.yml's reuse check (build-once.sh) verifies before the build with its own login
    step = "cosign sign " if path.name in ("build.yml", "sign.yml") else "cosign verify --"
    assert at < text.index(step), path
    assert '"${IMAGE_URI%%/*}"' not in text  # the old per-step login


def test_deploy_computes_the_names_the_plan_derives_and_callers_pass_none_of_them() -> None:
    """The image URI, the Argo CD application and the GitOps and values folders follow
    from service, environment and repository by the IR's naming rules: deploy.yml and
    build.yml compute them (the plan's templates) and, expanded with each caller's
    inputs, every step reads the value the stage has in the plan."""
    ir = ir_of(GHA)
    derived = dict(ir.plan.derived)
    assert derived == {
        "ARGOCD_APP": "{SERVICE}-{ENVIRONMENT}",
        "GITOPS_DIR": "apps/{SERVICE}/{ENVIRONMENT}",
        "IMAGE_URI": f"{ir.aws.ecr_registry}/{{ECR_REPOSITORY}}",
        "VALUES_SOURCE": "deploy/apps/{SERVICE}",
    }
    workflows = GHA / ".github/workflows"
    for name in ("deploy.yml", "build.yml"):
        declared = doc(workflows / name)["on"]["workflow_call"]["inputs"]
        assert not {n.lower() for n in derived} & set(declared), name
    for svc in ir.services:
        jobs = delivery(svc.name)["jobs"]
        assert not {n.lower() for n in derived} & set(jobs["build"]["with"])
        for stage in (s for s in ir.plan.stages if s.service == svc.name):
            job = jobs[f"deploy-{stage.environment}"]
            assert not {n.lower() for n in derived} & set(job["with"])
            seen = set()
            for step in job["steps"]:
                for n in derived.keys() & set(step.get("env", {})):
                    assert step["env"][n] == ir.plan.value(stage, n), (stage.environment, n)
                    seen.add(n)
            assert seen == set(derived)
        uri = {
            s["env"]["IMAGE_URI"] for s in jobs["build"]["steps"] if "IMAGE_URI" in s.get("env", {})
        }
        # the registry, then the caller's repository of the run's tier
        (one,) = uri
        assert one.startswith(f"{ir.aws.ecr_registry}/${{{{ ")
        assert f"'{svc.image}'" in one and f"'{svc.release_image}'" in one


def test_the_aborted_rollout_message_names_the_digest_a_rollback_resolved() -> None:
    """A manual rollback dispatches the deploy with image_digest "previous" (or the digest
    asked for); the rollback step resolves the real one, and every later step deploys it:
    the channel's ABORTED message must name that digest, not "(previous)"."""
    wf = doc(ROOT / "samples/storefront/.github/workflows/deploy.yml")
    steps = wf["jobs"]["deploy"]["steps"]
    (aborted,) = [s for s in steps if "was ABORTED" in json.dumps(s)]
    text = json.dumps(aborted)
    assert "${{ steps.rollback.outputs.IMAGE_DIGEST || inputs.image_digest }}" in text
    assert "(${{ inputs.image_digest }})" not in text
