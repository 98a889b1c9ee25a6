"""The repository ruleset that gates merging (issue 29, item 3).

``pipecompile explain --ruleset`` prints GitHub's ruleset JSON (the request body of
``POST /repos/{owner}/{repo}/rulesets``), importable as is::

    pipecompile explain --ruleset | gh api repos/OWNER/REPO/rulesets --input -

It protects the deploy branches of every environment after the first in promotion
order (the first is the developers' own branches, feature/* by default, where
pull requests start) and the default branch: no deletion, no force push, a pull
request with one approval, and the generated configuration check, required by its
exact name from the GitHub Actions app.  Each pattern also covers its nested names
(``release/*`` and ``release/*/**/*``): GitHub's ``*`` stops at '/', so ``release/*``
alone would leave ``release/a/b`` open (the IAM trust refuses such names too,
targets/terraform/oidc.py).  The per-service CI workflows are
path-filtered (path isolation), so GitHub would leave them pending on a pull
request that does not touch the service: they are not required.
"""

from __future__ import annotations

from typing import Any

from ..ir import IR
from ..targets.terraform.oidc import nested_cover


def _ref(pattern: str) -> str:
    return "refs/heads/" + pattern


def ruleset(ir: IR) -> dict[str, Any]:
    from ..targets.github_actions.gates import CHECK_NAME, GITHUB_ACTIONS_APP_ID

    include, exclude = ["~DEFAULT_BRANCH"], []
    for env in ir.environments[1:] if len(ir.environments) > 1 else ir.environments:
        for b in env.branches:
            if b.startswith("!"):
                exclude.append(_ref(b[1:]))
            else:
                include += [_ref(c) for c in nested_cover(b) if _ref(c) not in include]
    return {
        "name": f"{ir.project} deploy branches",
        "target": "branch",
        "enforcement": "active",
        "bypass_actors": [],
        "conditions": {"ref_name": {"include": include, "exclude": exclude}},
        "rules": [
            {"type": "deletion"},
            {"type": "non_fast_forward"},
            {
                "type": "pull_request",
                "parameters": {
                    "required_approving_review_count": 1,
                    "dismiss_stale_reviews_on_push": True,
                    "require_code_owner_review": False,
                    "require_last_push_approval": True,
                    "required_review_thread_resolution": False,
                },
            },
            {
                "type": "required_status_checks",
                "parameters": {
                    "strict_required_status_checks_policy": False,
                    "required_status_checks": [
                        {"context": CHECK_NAME, "integration_id": GITHUB_ACTIONS_APP_ID}
                    ],
                },
            },
        ],
    }


# GitHub's repository role ids for bypass actors: 5 is the admin role (GitHub REST API,
# "Create a repository ruleset": bypass_actors with actor_type RepositoryRole)
ADMIN_ROLE_ID = 5


def release_ruleset(ir: IR) -> dict[str, Any]:
    """Who may create an approval environment's branch (issue 28): a push that creates
    release/x runs the release tier (its role, the release key) on whatever commit it
    names, so only repository admins may create such branches; everyone else's pushes to
    them go through the merge ruleset above.

    ``pipecompile explain --release-ruleset | gh api repos/OWNER/REPO/rulesets --input -``
    """
    include: list[str] = []
    for env in ir.environments:
        if env.approval:
            for b in env.includes:
                include += [_ref(c) for c in nested_cover(b) if _ref(c) not in include]
    return {
        "name": f"{ir.project} release branches",
        "target": "branch",
        "enforcement": "active",
        "bypass_actors": [
            {"actor_id": ADMIN_ROLE_ID, "actor_type": "RepositoryRole", "bypass_mode": "always"}
        ],
        "conditions": {"ref_name": {"include": include, "exclude": []}},
        "rules": [{"type": "creation"}, {"type": "deletion"}],
    }
