"""The GitHub environments the workflows run jobs in, in two tiers (issue 28).

A secret of a GitHub environment reaches only the jobs that run in it, and a workflow
edited on a feature branch may name any environment: GitHub refuses the job only when the
environment's deployment branch policy does not match the branch.  So every secret a
release needs lives in an environment of the release tier, whose policy admits only the
release branches (the include patterns of the approval environments, ``release_branches``):

==================  ========  =============================================================
environment         tier      jobs, secrets
==================  ========  =============================================================
``ci``              feature   the CI job of any branch and pull request: the scanners'
                              tokens for feature code (SonarQube project ``<key>``)
``ci-release``      release   the CI job of a release build: a SonarQube token of its own,
                              for the release project ``<key>-release``, which a feature
                              token cannot write
``build``           feature   the build job of a feature-tier push (it assumes the dev build
                              role, trusted only for build.yml's jobs in this environment)
``build-release``   release   the build job of a release (it assumes the release role, which
                              pushes to the release repositories and signs with the release
                              key, trusted only for build.yml's jobs in this environment)
``notifications-    feature   Slack messages of feature runs (a webhook of their own: a
dev``                         feature branch cannot post as the release channel's)
``notifications``   release   Slack messages of release runs, approval requests, the
                              scheduled reviews (the default branch)
``compliance``      release   the drift check and security review (the default branch)
``daily-summary``   release   the daily deployment summary (the default branch)
==================  ========  =============================================================

The deploy environments and the DAST job's keep their own (insight/environments.py).
With one tier (CodePipeline delivery, or no approval environment) there is only ``ci``
and ``notifications``, any branch: nothing there is a release's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...ir import IR
from ..common import BUILD_ENVIRONMENT, BUILD_RELEASE_ENVIRONMENT, GH_BUILD
from ..compliance import ENVIRONMENT as COMPLIANCE
from ..compliance import SUMMARY_ENVIRONMENT as SUMMARY
from .steps import CI_ENVIRONMENT as CI
from .steps import NOTIFY_ENVIRONMENT as NOTIFY

CI_RELEASE = "ci-release"
BUILD, BUILD_RELEASE = BUILD_ENVIRONMENT, BUILD_RELEASE_ENVIRONMENT  # common.py says why
NOTIFY_DEV = "notifications-dev"


@dataclass(frozen=True)
class GitHubEnvironment:
    name: str
    tier: str  # "feature" or "release"
    jobs: str  # which jobs run there
    branches: tuple[str, ...] | None  # its deployment branch policy; None: any branch
    secrets: tuple[str, ...]


def two_tiers(ir: IR) -> bool:
    """Whether the workflows build releases (GitHub delivery with approval environments)."""
    return ir.delivery == "github-actions" and bool(ir.release_branches)


def by_release(release: str, expression: str, feature: str, ir: IR) -> str:
    """``release`` when ``expression`` (a boolean) holds, else ``feature``; the feature
    tier's alone with one tier.  Fails closed: without the input, the feature tier."""
    if not two_tiers(ir):
        return feature
    return f"${{{{ {expression} && '{release}' || '{feature}' }}}}"


def ci_secrets(ir: IR) -> tuple[str, ...]:
    names = [x for x in (ir.secrets.sonar_token, ir.secrets.sonar_host_url) if x]
    if ir.security.dependencies_fail_on:
        names.append("NVD_API_KEY (optional: faster dependency-check updates)")
    return tuple(names)


def environments(ir: IR) -> list[GitHubEnvironment]:
    """The CI, notification and compliance environments this pipeline's workflows use."""
    out: list[GitHubEnvironment] = []
    tiers = two_tiers(ir)
    release = tuple(ir.release_branches)
    scanners = ci_secrets(ir)
    if scanners:
        out.append(GitHubEnvironment(CI, "feature", "the CI job", None, scanners))
        if tiers:
            out.append(
                GitHubEnvironment(
                    CI_RELEASE, "release", "the CI job of a release build", release, scanners
                )
            )
    delivers = ir.delivery == "github-actions"
    if delivers and ir.services:
        dev = tuple(b for b in ir.deploy_branches if b not in ir.release_branches)
        if dev:
            jobs = "the build job of a feature-tier push (the dev build role)"
            out.append(GitHubEnvironment(BUILD, "feature", jobs, dev, ()))
        if release:
            jobs = "the build job of a release (the release role: release key, release images)"
            out.append(GitHubEnvironment(BUILD_RELEASE, "release", jobs, release, ()))
    webhook = ir.secrets.slack_webhook
    if delivers and webhook:
        if tiers:
            out.append(
                GitHubEnvironment(
                    NOTIFY_DEV, "feature", "Slack messages of feature runs", None, (webhook,)
                )
            )
        branches = tuple(dict.fromkeys((*release, ir.default_branch))) if tiers else None
        jobs = "Slack messages of release runs, approval requests and the scheduled reviews"
        out.append(
            GitHubEnvironment(NOTIFY, "release" if tiers else "feature", jobs, branches, (webhook,))
        )
    if delivers:
        out.append(
            GitHubEnvironment(
                COMPLIANCE,
                "release",
                "the drift check and the security review (compliance.yml)",
                (ir.default_branch,),
                (),
            )
        )
    if delivers and webhook and ir.deployments_table and ir.services:
        out.append(
            GitHubEnvironment(
                SUMMARY,
                "release",
                "the daily deployment summary (daily-summary.yml)",
                (ir.default_branch,),
                (),
            )
        )
    return out


def describe(ir: IR) -> list[str]:
    """The checklist's lines for these environments."""
    out = []
    for env in environments(ir):
        if env.name in (COMPLIANCE, SUMMARY):
            continue  # compliance.py and operations.py say their roles too
        where = (
            "any branch"
            if env.branches is None
            else "deployment branches " + ", ".join(env.branches) + " only"
        )
        secrets = ", ".join(env.secrets) if env.secrets else "no secrets"
        line = f"GitHub environment '{env.name}' ({env.tier} tier: {env.jobs}): {where}; {secrets}"
        if env.name == CI_RELEASE:
            line += (
                " (values of their own: a SonarQube token that may analyse only the release "
                "projects <project>_<service>-release, never the 'ci' token)"
            )
        if env.name in (BUILD, BUILD_RELEASE):
            line += (
                f" (its build role trusts only {GH_BUILD}'s jobs in this environment on these "
                "branches, by the OIDC subject template: see the AWS section)"
            )
        if env.name == NOTIFY_DEV:
            line += " (a webhook of a channel of its own, not the release channel's)"
        out.append(line)
    return out
