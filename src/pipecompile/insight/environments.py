"""The GitHub environments' deployment branch policies (issue 28): which branches may run
a job in each environment (the two tiers of CI and notification environments are
targets/github_actions/environments.py's).

With ``delivery: github-actions`` a deploy job's secrets (the GitOps credential, the
Argo CD token) and its AWS role (trusted for the OIDC subject
``repo:<repo>:environment:<env>:ref:<ref>:job_workflow_ref:...``, terraform/oidc.py)
belong to its GitHub environment; a workflow edited on a feature branch may name any environment.
GitHub refuses such a job only when the environment's deployment branch policy does not
match the branch, so each environment admits exactly the branch patterns it deploys from.

``pipecompile explain --environments`` prints the REST requests, as JSON::

    pipecompile explain --environments | jq -c '.[]' | while read -r r; do
      jq '.body' <<<"$r" | gh api --method "$(jq -r .method <<<"$r")" \\
        "repos/OWNER/REPO/$(jq -r .path <<<"$r")" --input -
    done

Request bodies as GitHub's REST description states them (operationIds
repos/create-or-update-environment and repos/create-deployment-branch-policy; checked in
tests/test_trust_environments.py against @octokit/openapi 23.0.2).  The policy names are
Ruby File.fnmatch patterns where a wildcard does not match '/', as GitHub's Actions
branch filters read ``*`` too.
"""

from __future__ import annotations

from typing import Any

from ..ir import IR, Environment


def _environment(
    name: str, branches: tuple[str, ...] | None, approval: bool
) -> list[dict[str, Any]]:
    """``branches`` None: any branch (the feature tier's environments)."""
    body: dict[str, Any] = {
        "deployment_branch_policy": None
        if branches is None
        else {"protected_branches": False, "custom_branch_policies": True}
    }
    if approval:
        body["prevent_self_review"] = True  # the pusher does not approve their own deploy
    out: list[dict[str, Any]] = [
        {"method": "PUT", "path": f"environments/{name}", "body": body},
    ]
    out += [
        {
            "method": "POST",
            "path": f"environments/{name}/deployment-branch-policies",
            "body": {"name": pattern, "type": "branch"},
        }
        for pattern in branches or ()
    ]
    return out


def environment_requests(ir: IR) -> list[dict[str, Any]]:
    """The requests that define each GitHub environment and limit it to its own branches:
    the CI, notification and compliance environments of both tiers
    (targets/github_actions/environments.py), and with GitHub delivery the deploy
    environments and the DAST job's."""
    from ..targets.github_actions.environments import environments

    out: list[dict[str, Any]] = []
    for tiered in environments(ir):
        out += _environment(tiered.name, tiered.branches, False)
    if ir.delivery != "github-actions":
        return out
    for env in ir.environments:
        out += _environment(env.name, env.includes, env.approval)
    dast = ir.security.dast
    if dast is not None:  # the DAST job's: the scanned environment's branches
        out += _environment(
            dast.github_environment, ir.environment(dast.environment).includes, False
        )
    return out


def unenforced(ir: IR, env: Environment) -> list[str]:
    """What a deployment branch policy cannot say: an environment's '!' exclusions (the
    policy is an allow list; the workflows still skip the excluded branches)."""
    return list(env.excludes) if ir.delivery == "github-actions" else []
