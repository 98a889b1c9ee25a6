"""Merge gates (issue 29, items 3 and 9): pipecompile.yml, the configuration check
every pull request runs, whatever it changes.

``pipecompile check`` fails when a generated file differs from what pipeline.yaml
generates (projen-style anti-tamper: a hand edit of a workflow, buildspec or
Terraform file cannot merge), and ``pipecompile lint`` runs the ecosystems' checkers'
rules.  It has no path filter, so it always reports: the repository ruleset
(``pipecompile explain --ruleset``) requires it by its exact name, ``CHECK_NAME``.
"""

from __future__ import annotations

from typing import Any

from ..._version import __version__
from ...ir import IR
from .. import common
from ..compliance import CONFIG_REVIEW_SCHEDULE
from .steps import RUNNER, checkout, permissions, uses

FILE = "pipecompile.yml"
CHECK_NAME = "pipecompile check"  # the check run's name: the job's name
GITHUB_ACTIONS_APP_ID = 15368  # the GitHub Actions app: only its check runs count

ZIZMOR = common.ZIZMOR  # the version the test suite audits the generated workflows with

CHECK = """\
set -euo pipefail
pipecompile check --diff -f "$PIPELINE_FILE"
pipecompile lint -f "$PIPELINE_FILE"
"""


def pipecompile_workflow(ir: IR) -> dict[str, Any]:
    return {
        "name": "pipecompile",
        "on": {"pull_request": {}, "push": {"branches": [ir.default_branch]}},
        "permissions": {},
        "concurrency": {
            "group": "pipecompile-${{ github.ref }}",
            "cancel-in-progress": True,
        },
        "jobs": {
            "check": {
                "name": CHECK_NAME,
                "runs-on": RUNNER,
                "timeout-minutes": 10,
                "permissions": permissions(contents="read"),
                "steps": [
                    checkout(ir),
                    {
                        "name": "Set up Python",
                        "uses": uses(ir, "actions/setup-python"),
                        "with": {"python-version": "3.12"},
                    },
                    {
                        # zizmor (PyPI) for lint's workflow audit; actionlint is not on
                        # PyPI, so lint reports it as skipped here
                        "name": "Install pipecompile and zizmor",
                        "run": f"pip install pipecompile=={__version__} zizmor=={ZIZMOR}",
                    },
                    {
                        "name": "Generated files match pipeline.yaml; lint",
                        "env": {"PIPELINE_FILE": ir.pipeline_file},
                        "run": CHECK,
                    },
                ],
            }
        },
    }


REVIEW_FILE = "review.yml"
REVIEW_CRON = CONFIG_REVIEW_SCHEDULE[0]  # the first of the month, 06:00 UTC


def review_workflow(ir: IR) -> dict[str, Any]:
    """The monthly pipeline configuration review (specification 9.2): the default branch
    still generates what is committed, and the workflows pass zizmor's auditor persona."""
    from .steps import NOTIFY_ENVIRONMENT, slack_step

    jobs: dict[str, Any] = {
        "review": {
            "name": "Monthly configuration review",
            "runs-on": RUNNER,
            "timeout-minutes": 15,
            "permissions": permissions(contents="read"),
            "steps": [
                checkout(ir, ref=ir.default_branch),
                {
                    "name": "Set up Python",
                    "uses": uses(ir, "actions/setup-python"),
                    "with": {"python-version": "3.12"},
                },
                {
                    "name": "Install pipecompile and zizmor",
                    "run": f"pip install pipecompile=={__version__} zizmor=={ZIZMOR}",
                },
                {
                    "name": "pipecompile check; lint with zizmor's auditor persona",
                    "env": {
                        "PIPELINE_FILE": ir.pipeline_file,
                        "OUTCOME_FILE": "${{ runner.temp }}/review-outcome",
                        "SUMMARY_FILE": "${{ runner.temp }}/review-summary",
                    },
                    "run": common.script_body("config-review.sh"),
                },
            ],
        }
    }
    if ir.notifications.slack_channel and ir.delivery == "github-actions":
        jobs["notify"] = {
            "name": "Report a failed review",
            "needs": "review",
            "if": "failure()",
            "runs-on": RUNNER,
            "timeout-minutes": 5,
            "permissions": {},
            "environment": NOTIFY_ENVIRONMENT,
            "steps": [
                slack_step(
                    ir,
                    f"{ir.project}: the monthly pipeline configuration review failed "
                    f"(generated files or workflow audit) on {ir.default_branch}",
                )
            ],
        }
    return {
        "name": "monthly configuration review",
        "on": {"schedule": [{"cron": REVIEW_CRON}], "workflow_dispatch": {}},
        "permissions": {},
        "concurrency": {"group": "review", "cancel-in-progress": False},
        "jobs": jobs,
    }
