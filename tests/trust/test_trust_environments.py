"""GitHub environments admit only their own branches (issue 28): a workflow edited on a
feature branch may declare ``environment: production``, and only the environment's
deployment branch policy stops that job; without the job in that environment, GitHub
issues no OIDC token with the subject ``repo:<repo>:environment:production:
job_workflow_ref:<repo>/.github/workflows/deploy.yml@refs/heads/main``, the only one the
production deploy role trusts (IAM evaluated from the generated Terraform).

The requests are checked against GitHub's REST description (tests/schemas/
github-environment-requests.json, @octokit/openapi 23.0.2); how GitHub matches a policy
name is restated from that description: "Wildcard characters will not match /", the
syntax Ruby's File.fnmatch (with File::FNM_PATHNAME: '*' and '?' stop at '/')."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipecompile.commands.cli import main
from pipecompile.compiler import compile_bytes
from pipecompile.insight.environments import environment_requests
from pipecompile.ir import IR
from pipecompile.targets.github_actions.ci import ci_file
from pipecompile.targets.github_actions.deliver import deliver_file
from tests.conftest import ROOT
from tests.iam_eval import Account, github_subject

STOREFRONT = ROOT / "samples/storefront"
OIDC = "token.actions.githubusercontent.com"


@cache
def ir_of(sample: Path) -> IR:
    p = sample / "pipeline.yaml"
    return compile_bytes(str(p), p.read_bytes())


def fnmatch_pathname(pattern: str, name: str) -> bool:
    """Ruby File.fnmatch(pattern, name, File::FNM_PATHNAME) for the patterns the language
    allows: '*' any run without '/', '**/' any number of folders (Ruby docs,
    File.fnmatch), '?' one character but '/', '[...]' a class."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:[^/]*/)*"
            i += 3
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : j]
                out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return re.fullmatch(out, name) is not None


def policies(requests: list[dict[str, Any]]) -> dict[str, list[str] | None]:
    """environment -> the branch patterns GitHub lets run jobs in it (None: any branch,
    the PUT's deployment_branch_policy null)."""
    out: dict[str, list[str] | None] = {}
    for r in requests:
        parts = r["path"].split("/")
        if r["method"] == "PUT":
            policy = r["body"]["deployment_branch_policy"]
            if policy is None:
                out[parts[1]] = None
                continue
            assert policy == {"protected_branches": False, "custom_branch_policies": True}
            out.setdefault(parts[1], [])
        else:
            assert parts[2] == "deployment-branch-policies" and r["body"]["type"] == "branch"
            patterns = out[parts[1]]
            assert patterns is not None, parts[1]  # no pattern on an any-branch environment
            patterns.append(r["body"]["name"])
    return out


def may_run(policy: dict[str, list[str] | None], env: str, branch: str) -> bool:
    patterns = policy[env]
    return patterns is None or any(fnmatch_pathname(p, branch) for p in patterns)


def _openapi_nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (the description's dialect: "A true value adds
    "null" to the allowed types", OpenAPI Specification 3.0.3, Schema Object) as JSON
    Schema says it: the type list gains "null"."""
    if isinstance(node, list):
        return [_openapi_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_nullable(v) for k, v in node.items()}
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def schema(name: str) -> Any:
    doc = json.loads((ROOT / "tests/schemas/github-environment-requests.json").read_text())
    return jsonschema.Draft4Validator(_openapi_nullable(doc["definitions"][name]))


def test_the_restated_matcher() -> None:
    assert fnmatch_pathname("release/*", "release/1.2")
    assert not fnmatch_pathname("release/*", "release/1/2")  # '*' stops at '/'
    assert not fnmatch_pathname("release/*", "feature/release/x")
    assert fnmatch_pathname("main", "main") and not fnmatch_pathname("main", "main2")
    assert fnmatch_pathname("hotfix/v?.[0-9]", "hotfix/v1.2")
    assert fnmatch_pathname("release/*/**/*", "release/a/b")
    assert fnmatch_pathname("release/*/**/*", "release/a/b/c")
    assert not fnmatch_pathname("release/*/**/*", "release/a")


def test_the_requests_are_valid_for_githubs_rest_api() -> None:
    requests = environment_requests(ir_of(STOREFRONT))
    assert requests
    for r in requests:
        kind = (
            "create-or-update-environment"
            if r["method"] == "PUT"
            else ("create-deployment-branch-policy")
        )
        schema(kind).validate(r["body"])
    with pytest.raises(jsonschema.ValidationError):
        schema("create-deployment-branch-policy").validate({"name": "x", "type": "ref"})
    with pytest.raises(jsonschema.ValidationError):
        schema("create-or-update-environment").validate({"deployment_branch_policy": {}})


def test_a_feature_branch_cannot_deploy_to_an_approval_environment() -> None:
    ir = ir_of(STOREFRONT)
    policy = policies(environment_requests(ir))
    tiered = ["ci", "ci-release", "notifications-dev", "notifications", "compliance"]
    tiered.append("daily-summary")  # daily-summary.yml (issue 29, item 1)
    tiered += ["build", "build-release"]  # the build job's, per tier (issue 28 trace)
    assert sorted(policy) == sorted([e.name for e in ir.environments] + ["staging-dast", *tiered])
    acct = Account(STOREFRONT / ir.output("terraform"), ir.aws.account_id)
    provider = ("Federated", f"arn:aws:iam::{ir.aws.account_id}:oidc-provider/{OIDC}")
    aud = {f"{OIDC}:aud": "sts.amazonaws.com"}

    def subject_may_assume(role: str, sub: str) -> bool:
        return acct.may_assume(role, provider, **aud, **{f"{OIDC}:sub": sub})

    feature = "feature/steal-production"
    for env in ir.environments:
        role = "github_deploy_" + env.name.replace("-", "_")
        if env.approval:
            # the edited workflow's job in this environment never starts
            assert not may_run(policy, env.name, feature), env.name
            # and what the branch can get instead opens no approval environment's role
            for sub in (
                github_subject(ir.repository, "deploy.yml", feature),
                github_subject(ir.repository, "deploy.yml", feature, "development"),
                f"repo:{ir.repository}:pull_request",
            ):
                assert not subject_may_assume(role, sub), (env.name, sub)
        else:
            assert may_run(policy, env.name, feature)
        # every branch the environment deploys from may run its jobs there, and assume
        # its role from deploy.yml
        for pattern in env.includes:
            branch = pattern.replace("*", "x")
            assert may_run(policy, env.name, branch), (env.name, branch)
            sub = github_subject(ir.repository, "deploy.yml", branch, env.name)
            assert subject_may_assume(role, sub), (env.name, sub)
    assert may_run(policy, "staging", "release/2.0") and may_run(policy, "staging", "hotfix/1")
    assert not may_run(policy, "staging", "main")
    assert may_run(policy, "production", "main") and not may_run(policy, "production", "develop")


def test_approval_environments_prevent_self_review() -> None:
    ir = ir_of(STOREFRONT)
    puts = {
        r["path"].split("/")[1]: r["body"] for r in environment_requests(ir) if r["method"] == "PUT"
    }
    for env in ir.environments:
        assert puts[env.name].get("prevent_self_review", False) == env.approval


def test_codepipeline_delivery_has_no_deploy_environments() -> None:
    """CodeBuild builds and deploys: GitHub runs only the CI of pull requests, in ``ci``
    (any branch; the release tier's scanner token is in Secrets Manager)."""
    p = ROOT / "samples/ecommerce/pipeline.yaml"
    assert environment_requests(compile_bytes(str(p), p.read_bytes())) == [
        {"method": "PUT", "path": "environments/ci", "body": {"deployment_branch_policy": None}}
    ]


def test_a_feature_branch_cannot_reach_a_release_tier_secret() -> None:
    """The release tier's CI and notification environments (a SonarQube token for the
    release projects, the release channel's webhook) run no job of a feature branch,
    nested names included; every job that reads one runs in its tier's environment."""
    ir = ir_of(STOREFRONT)
    policy = policies(environment_requests(ir))
    feature = ("feature/steal-release", "feature/a/b", "develop", "release-x", "mainx")
    for env in ("ci-release", "notifications", "compliance", "build-release"):
        for branch in feature:
            assert not may_run(policy, env, branch), (env, branch)
    for env in ("ci-release", "notifications"):
        for branch in ("release/2.0", "hotfix/1", "main"):
            assert may_run(policy, env, branch), (env, branch)
    assert policy["compliance"] == [ir.default_branch]
    for env in ("ci", "notifications-dev"):  # the feature tier: any branch
        assert may_run(policy, env, "feature/x") and may_run(policy, env, "release/2.0")
    # the workflows: a job names the release tier only for a release-tier run, and a
    # pull request's (no inputs) falls to the feature tier
    wf = STOREFRONT / ".github/workflows"
    shared = (wf / "ci.yml").read_text()  # every service's CI job (ci-<svc>.yml calls it)
    assert "environment: \"${{ inputs.release && 'ci-release' || 'ci' }}\"" in shared
    assert (
        f"{ir.project}_${{{{ inputs.service }}}}${{{{ inputs.release && '-release' || '' }}}}"
        in (shared)
    )
    for svc in ir.services:
        ci = (wf / ci_file(svc)).read_text()
        assert "release: '${{ inputs.release == true }}'" in ci  # absent on a pull request
        deliver = (wf / deliver_file(svc)).read_text()
        # the CI, the build (build.yml looks up its tier's role, prefix and keys) and notify
        assert deliver.count("release: \"${{ needs.route.outputs.release == 'true' }}\"") == 3
    notify = (wf / "notify.yml").read_text()
    assert "environment: \"${{ inputs.release && 'notifications' || 'notifications-dev' }}\"" in (
        notify
    )


def test_explain_lists_the_tiered_environments() -> None:
    from pipecompile.insight.explain import checklist

    lines = [ln for ln in checklist(ir_of(STOREFRONT)) if ln.startswith("GitHub environment")]
    named = [ln.split("'")[1] for ln in lines]
    for env in ("ci", "ci-release", "notifications-dev", "notifications", "compliance"):
        assert env in named, (env, named)
    release = next(ln for ln in lines if ln.startswith("GitHub environment 'ci-release'"))
    assert "release tier" in release and "release/*, hotfix/*, main only" in release
    assert "any branch" in next(ln for ln in lines if "'ci' (feature tier" in ln)


def test_explain_environments_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--environments", "-f", str(STOREFRONT / "pipeline.yaml")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == environment_requests(ir_of(STOREFRONT))


def test_an_exclusion_the_policy_cannot_express_is_said() -> None:
    text = (
        (STOREFRONT / "pipeline.yaml")
        .read_text()
        .replace('branches: ["feature/*"]', 'branches: ["feature/*", "!feature/wip-*"]')
    )
    ir = compile_bytes("pipeline.yaml", text.encode())
    from pipecompile.insight.trust import trust_report

    report = "\n".join(trust_report(ir))
    assert "the policy cannot exclude feature/wip-*" in report


def test_only_admins_create_an_approval_environments_branch() -> None:
    """A feature pusher's `git push origin feature/x:release/x` would run the release
    tier (its role trusts refs/heads/release/*, it signs with the release key) on the
    pusher's commit: the release ruleset lets only the admin role create those refs.
    Validated against GitHub's ruleset request schema; a ruleset's ref_name patterns read
    as the policies' (fnmatch, '*' stops at '/')."""
    from pipecompile.insight.ruleset import ADMIN_ROLE_ID, release_ruleset
    from tests.rehearsal.test_spec import _strict

    body = json.loads((ROOT / "tests/schemas/github-repository-ruleset-request.json").read_text())
    validator = jsonschema.Draft4Validator(_strict(body))
    for sample in (STOREFRONT, ROOT / "samples/ecommerce"):
        ir = ir_of(sample)
        rules = release_ruleset(ir)
        validator.validate(rules)
        assert {"type": "creation"} in rules["rules"]
        assert rules["bypass_actors"] == [
            {"actor_id": ADMIN_ROLE_ID, "actor_type": "RepositoryRole", "bypass_mode": "always"}
        ]
        include = rules["conditions"]["ref_name"]["include"]
        for branch in ir.release_branches:
            ref = "refs/heads/" + branch.replace("*", "x")
            assert any(fnmatch_pathname(p, ref) for p in include), ref
        for feature in ("refs/heads/feature/x", "refs/heads/develop"):
            assert not any(fnmatch_pathname(p, feature) for p in include), feature
    assert main(["explain", "--release-ruleset", "-f", str(STOREFRONT / "pipeline.yaml")]) == 0


def test_the_started_message_is_sent_from_its_tiers_environment() -> None:
    """The route job itself holds no secret: the 'started' message is a job of its own,
    in the release tier's notifications environment only for a release-tier run."""
    import yaml

    from pipecompile.targets.registry import render_all

    text = (STOREFRONT / "pipeline.yaml").read_text()
    text = text.replace("on: [failed, succeeded]", "on: [started, failed, succeeded]")
    ir = compile_bytes("pipeline.yaml", text.encode())
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    route = yaml.safe_load(files[f"{ir.output('github-actions')}/route.yml"])
    assert "environment" not in route["jobs"]["route"]
    started = route["jobs"]["started"]
    assert started["needs"] == "route"
    assert started["environment"] == (
        "${{ needs.route.outputs.release == 'true' && 'notifications' || 'notifications-dev' }}"
    )
    assert "SLACK_WEBHOOK_URL" in json.dumps(started["steps"])


@pytest.mark.parametrize("name", ["ci", "ci-release", "notifications", "notifications-dev"])
def test_a_deploy_environment_cannot_take_a_tiers_name(name: str) -> None:
    """With GitHub delivery a deploy environment is the GitHub environment of its name:
    one named 'ci' would hand its GitOps credential to every branch's CI job."""
    from pipecompile.errors import PipelineError

    text = (STOREFRONT / "pipeline.yaml").read_text().replace("  development:", f"  {name}:")
    text = text.replace("[development", f"[{name}").replace(" development\n", f" {name}\n")
    with pytest.raises(PipelineError) as exc:
        compile_bytes("pipeline.yaml", text.encode())
    line = text.split("\n").index(f"  {name}:") + 1
    assert any(
        d.line == line and d.message.startswith(f"'{name}' is the GitHub environment of ")
        for d in exc.value.diagnostics
    ), [str(d) for d in exc.value.diagnostics]


def test_the_reserved_names_are_the_tiers_environments() -> None:
    from pipecompile.frontend.references import GITHUB_ENVIRONMENTS
    from pipecompile.targets.github_actions.environments import environments

    assert {e.name for e in environments(ir_of(STOREFRONT))} == set(GITHUB_ENVIRONMENTS)
