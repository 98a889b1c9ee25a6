"""The two workflows of GitHub Actions delivery that work from the audit table (issue 29):

* ``rollback.yml`` (item 7, specification 8.2): a ``workflow_dispatch`` that redeploys a
  digest the audit table recorded as succeeded for that service in that environment
  (``previous`` by default, or one a person names) through deploy.yml, the deploy path
  every delivery takes: in the target environment's GitHub environment (its reviewers,
  its OIDC subject, its deploy role, which reads only that environment's rows), the
  signature check, the GitOps commit and the health wait; the audit row records the
  reason, trigger ``manual`` and who ran it; the channel hears the result.
* ``daily-summary.yml`` (item 1): once a day, the last 24 hours of the audit table,
  read by a role that may only query it, from the GitHub environment ``daily-summary``
  (the only subject the role trusts; the default branch only), posted to the channel
  from the ``notifications`` environment, where the webhook lives.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR
from ..common import GH_SUMMARY, script_body
from ..compliance import SUMMARY_ENVIRONMENT, SUMMARY_SCHEDULE, summary_role
from .deploy import DEPLOY as DEPLOY_FILE
from .deploy import Deploy
from .environments import NOTIFY_DEV, by_release
from .reusable import input_name
from .steps import (
    NOTIFY_ENVIRONMENT,
    RUNNER,
    aws_credentials,
    permissions,
    slack_step,
    workflow_ref,
)

ROLLBACK = "rollback.yml"
SUMMARY = GH_SUMMARY


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _by_stage(values: dict[tuple[str, str], str], boolean: bool = False) -> Any:
    """An expression giving each (service, environment) its value; fails closed ('' or
    false) for a pair it does not list."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for pair, value in values.items():
        groups.setdefault(value, []).append(pair)

    def cond(pairs: list[tuple[str, str]]) -> str:
        one = " || ".join(
            f"(inputs.service == {_quote(s)} && inputs.environment == {_quote(e)})"
            for s, e in pairs
        )
        return f"({one})" if len(pairs) > 1 else one

    if boolean:
        pairs = groups.get("true", [])
        return f"${{{{ {cond(pairs)} }}}}" if pairs else False
    parts = [f"{cond(pairs)} && {_quote(v)}" for v, pairs in groups.items() if v]
    # the same for every environment of a service (or every service of an environment):
    # the shorter condition
    for key, index in (("service", 0), ("environment", 1)):
        owner: dict[str, str] = {}
        for pair, value in values.items():
            owner.setdefault(pair[index], value)
        if all(owner[pair[index]] == value for pair, value in values.items()):
            by: dict[str, list[str]] = {}
            for name, value in owner.items():
                by.setdefault(value, []).append(name)
            parts = [
                "(" * (len(names) > 1)
                + " || ".join(f"inputs.{key} == {_quote(n)}" for n in names)
                + ")" * (len(names) > 1)
                + f" && {_quote(v)}"
                for v, names in by.items()
                if v
            ]
            break
    return "${{ " + " || ".join([*parts, "''"]) + " }}"


def notify_environment(ir: IR, environments: list[str]) -> str:
    """The channel of a deploy to ``inputs.environment``: the release tier's webhook
    (``notifications``) for an approval environment, whose branches are release branches
    (route.sh's ``release``), else the feature tier's (``notifications-dev``), whose
    policy admits the feature branches a rollback of such an environment is dispatched
    from (environments.py)."""
    release = [e for e in environments if ir.environment(e).approval]
    if not release:
        return by_release(NOTIFY_ENVIRONMENT, "false", NOTIFY_DEV, ir)
    cond = " || ".join(f"inputs.environment == {_quote(e)}" for e in release)
    return by_release(NOTIFY_ENVIRONMENT, f"({cond})" if len(release) > 1 else cond, NOTIFY_DEV, ir)


def rolls_back(ir: IR) -> bool:
    return ir.delivery == "github-actions" and bool(ir.deployments_table) and bool(ir.services)


def rollback_workflow(ir: IR) -> dict[str, Any]:
    """rollback.yml: deploy.yml with a reason, and ``previous`` or a digest."""
    d = Deploy(ir)
    services = list(dict.fromkeys(st.service for st in d.stages))
    environments = list(dict.fromkeys(st.environment for st in d.stages))
    with_: dict[str, Any] = {
        "environment": "${{ inputs.environment }}",
        "image_tag": "rollback",  # the row's tag is the one the audit table holds
        "image_digest": "${{ inputs.digest || 'previous' }}",
        "rollback_reason": "${{ inputs.reason }}",
    }
    for name, kind in d.passed():
        key = input_name(name)
        values = {}
        for st in d.stages:
            value = str(d.with_(st).get(key, ""))
            values[(st.service, st.environment)] = value.lower() if kind == "boolean" else value
        with_[key] = _by_stage(values, boolean=kind == "boolean")
    jobs: dict[str, Any] = {
        "rollback": {
            "name": "Roll back ${{ inputs.service }} in ${{ inputs.environment }}",
            "permissions": permissions(**d.grants()),
            "uses": workflow_ref(ir, DEPLOY_FILE),
            "with": with_,
            "secrets": {n: f"${{{{ secrets.{n} }}}}" for n in d.secrets()},
        }
    }
    if ir.secrets.slack_webhook:
        # the deploy's classification where it has one: a closed sync window says so
        # (deploy.yml's outcome output: sync-window.sh's outside-sync-window)
        text = (
            "${{ toJSON(format('Manual rollback of {0} in {1}: {2}{8}, by {3}: {4} "
            "({5}/{6}/actions/runs/{7})', inputs.service, inputs.environment, "
            "needs.rollback.result, github.triggering_actor, inputs.reason, "
            "github.server_url, github.repository, github.run_id, "
            "needs.rollback.outputs.outcome == 'outside-sync-window' && "
            "' (sync window closed: nothing was rolled back; see pipecompile explain "
            "--rollback)' || '')) }}"
        )
        step = slack_step(ir, "")
        step["with"]["payload"] = '{"text": ' + text + "}"
        jobs["notify"] = {
            "name": "Tell the channel",
            "needs": "rollback",
            "if": "${{ always() }}",
            "runs-on": RUNNER,
            "timeout-minutes": 5,
            "permissions": {},
            "environment": notify_environment(ir, environments),
            "steps": [step],
        }
    return {
        "name": "manual rollback",
        "on": {
            "workflow_dispatch": {
                "inputs": {
                    "service": {"type": "choice", "options": services, "required": True},
                    "environment": {
                        "type": "choice",
                        "options": environments,
                        "required": True,
                        "description": "dispatch from a branch this environment deploys "
                        "(its GitHub environment admits only those)",
                    },
                    "reason": {
                        "type": "string",
                        "required": True,
                        "description": "why (the audit row and the channel record it)",
                    },
                    "digest": {
                        "type": "string",
                        "required": False,
                        "default": "previous",
                        "description": "previous, or a sha256 digest the audit table lists "
                        "as succeeded here",
                    },
                }
            }
        },
        "permissions": {},
        # one rollback of a service in an environment at a time (deploy.yml's job also
        # waits for a running deploy of it)
        "concurrency": {
            "group": "rollback-${{ inputs.service }}-${{ inputs.environment }}",
            "cancel-in-progress": False,
        },
        "jobs": jobs,
    }


def summary_workflow(ir: IR) -> dict[str, Any]:
    """daily-summary.yml: daily-summary.sh as the read-only role, its message to Slack."""
    assert ir.deployments_table
    jobs: dict[str, Any] = {
        "summary": {
            "name": "Read the day's deployments",
            "runs-on": RUNNER,
            "timeout-minutes": 10,
            "permissions": permissions(id_token="write"),
            # the role trusts this environment's subject only
            "environment": SUMMARY_ENVIRONMENT,
            "outputs": {"payload": "${{ steps.summary.outputs.payload }}"},
            "steps": [
                aws_credentials(ir, summary_role(ir)[1]),
                {
                    "id": "summary",
                    "name": "The last 24 hours of the audit table",
                    "env": {
                        "PROJECT": ir.project,
                        "DEPLOYMENTS_TABLE": ir.deployments_table,
                        "SERVICES": " ".join(s.name for s in ir.services),
                        "ENVIRONMENTS": " ".join(e.name for e in ir.environments),
                    },
                    "run": script_body("daily-summary.sh"),
                },
            ],
        }
    }
    if ir.secrets.slack_webhook:
        step = slack_step(ir, "")
        step["with"]["payload"] = "${{ needs.summary.outputs.payload }}"
        jobs["notify"] = {
            "name": "Post it to the channel",
            "needs": "summary",
            "runs-on": RUNNER,
            "timeout-minutes": 5,
            "permissions": {},
            "environment": NOTIFY_ENVIRONMENT,
            "steps": [step],
        }
    return {
        "name": "daily deployment summary",
        "on": {"schedule": [{"cron": SUMMARY_SCHEDULE[0]}], "workflow_dispatch": {}},
        "permissions": {},
        "concurrency": {"group": "daily-summary", "cancel-in-progress": False},
        "jobs": jobs,
    }


def operations_workflows(ir: IR) -> dict[str, dict[str, Any]]:
    if not rolls_back(ir):
        return {}
    out = {ROLLBACK: rollback_workflow(ir)}
    if ir.secrets.slack_webhook:  # a summary nobody reads is not generated
        out[SUMMARY] = summary_workflow(ir)
    return out


def describe(ir: IR) -> list[str]:
    if not rolls_back(ir):
        return []
    out = [
        f"Manual rollback: {ROLLBACK} (workflow_dispatch; gh workflow run {ROLLBACK} --ref "
        "<a branch the environment deploys> -f service=... -f environment=... -f reason=...); "
        "pipecompile explain --rollback SERVICE ENV"
    ]
    if ir.secrets.slack_webhook:
        out.append(
            f"GitHub environment '{SUMMARY_ENVIRONMENT}' ({SUMMARY}, daily at "
            f"{SUMMARY_SCHEDULE[0]!r} UTC): deployment branch {ir.default_branch} only, no "
            f"secrets; its job alone assumes IAM role {summary_role(ir)[0]} (Query on the "
            "audit table only)"
        )
    return out
