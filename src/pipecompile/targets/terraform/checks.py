"""The terraform target's rules: what CodePipeline cannot take (check: trigger patterns,
pipeline names, the length of each action's EnvironmentVariables, ``#{`` in a value an
action configuration reaches, approvers without an approval) and the policy checks the
user's own settings decline (choices)."""

from __future__ import annotations

from ...ir import IR
from .. import Finding
from .build_projects import choices as pipeline_choices
from .build_projects import signing
from .compute import compute_findings
from .pipelines import dast_variables, deploy_variables, encoded_length, sign_variables

# CodePipeline trigger limits (GitBranchFilterCriteria: 8 patterns per list) and
# the longest pipeline name it allows.
MAX_BRANCH_PATTERNS = 8  # also file paths: includes and excludes hold at most 8 each
MAX_PIPELINE_NAME = 100
# ActionDeclaration.configuration: each value at most 1000 characters (CodePipeline API
# Reference, ActionDeclaration); CreatePipeline refuses a longer one
MAX_CONFIGURATION_VALUE = 1000


def check(ir: IR) -> list[Finding]:
    """What CodePipeline cannot take: too many trigger patterns, too long a name."""
    out: list[Finding] = []
    if ir.delivery != "codepipeline":
        return out  # no CodePipeline: only the shared resources
    out += compute_findings(ir)  # the CodeBuild projects' size
    for env in ir.environments:
        for label, pats in (("branch patterns", env.includes), ("excluded patterns", env.excludes)):
            if len(pats) > MAX_BRANCH_PATTERNS:
                out.append(
                    Finding(
                        ("environments", env.name, "branches"),
                        f"{len(pats)} {label}; an AWS CodePipeline trigger accepts "
                        f"at most {MAX_BRANCH_PATTERNS}",
                        code="PC302",
                    )
                )
    for svc in ir.services:
        for label, pats in (
            ("paths", svc.trigger_includes),
            ("excluded paths", svc.trigger_excludes),
        ):
            if len(pats) > MAX_BRANCH_PATTERNS:
                out.append(
                    Finding(
                        ("services", svc.name, "path"),
                        f"{len(pats)} {label} in its trigger (path isolation: "
                        f"{', '.join(pats[:3])}, ...); an AWS CodePipeline trigger accepts at "
                        f"most {MAX_BRANCH_PATTERNS}: give {svc.name} its own folder (path), "
                        "so that fewer services' folders lie inside its own",
                        code="PC302",
                    )
                )
        for dep in svc.deployments:
            size = encoded_length(deploy_variables(ir, svc, dep))
            if size > MAX_CONFIGURATION_VALUE:
                out.append(
                    Finding(
                        ("services", svc.name),
                        f"the Deploy action of pipeline '{dep.pipeline_name}' passes "
                        f"{size} characters of EnvironmentVariables; an AWS CodePipeline "
                        f"action configuration value holds at most {MAX_CONFIGURATION_VALUE}: "
                        "shorten the service, image or environment name, or gitops.path",
                        key=True,
                        code="PC302",
                    )
                )
            scans = bool(ir.plan.stage(svc.name, dep.environment).dast)
            size = encoded_length(dast_variables(ir, svc, dep)) if scans else 0
            if size > MAX_CONFIGURATION_VALUE:
                out.append(
                    Finding(
                        ("environments", dep.environment, "url"),
                        f"the Dast action of pipeline '{dep.pipeline_name}' passes "
                        f"{size} characters of EnvironmentVariables (the URL it scans, the "
                        "image); an AWS CodePipeline action configuration value holds at "
                        f"most {MAX_CONFIGURATION_VALUE}: shorten the environment's url",
                        key=True,
                        code="PC302",
                    )
                )
            release = ir.environment(dep.environment).approval and bool(ir.release_branches)
            size = encoded_length(sign_variables(ir, svc, release)) if signing(ir) else 0
            if size > MAX_CONFIGURATION_VALUE:
                out.append(
                    Finding(
                        ("services", svc.name),
                        f"the Sign action of pipeline '{dep.pipeline_name}' passes "
                        f"{size} characters of EnvironmentVariables; an AWS CodePipeline "
                        f"action configuration value holds at most {MAX_CONFIGURATION_VALUE}: "
                        "shorten the service or image name, or move the services inside its "
                        "folder out of it (each is an excluded folder)",
                        key=True,
                        code="PC302",
                    )
                )
            if len(dep.pipeline_name) > MAX_PIPELINE_NAME:
                out.append(
                    Finding(
                        ("services", svc.name),
                        f"pipeline name '{dep.pipeline_name}' is longer than the "
                        f"{MAX_PIPELINE_NAME} characters AWS CodePipeline allows; shorten "
                        "the project, service or environment name",
                        key=True,
                        code="PC302",
                    )
                )
    out += _pipeline_variables(ir)
    out += [
        Finding(
            ("environments", env.name, "approvers"),
            f"{env.name} has no approval: nobody is asked, so its approvers would never be "
            "notified; set approval: true or remove approvers",
            severity="warning",
            code="PC214",
        )
        for env in ir.environments
        if env.approvers and not env.approval
    ]
    out += [
        Finding(
            ("environments", env.name, "approver_principals"),
            f"{env.name} has no approval: there is no approver role, so approver_principals "
            "would never approve anything; set approval: true or remove approver_principals",
            severity="warning",
            code="PC214",
        )
        for env in ir.environments
        if env.approver_principals and not env.approval
    ]
    if ir.delivery == "codepipeline" and not ir.buildspecs_generated:
        out.append(
            Finding(
                ("outputs",),
                "the terraform output's CodeBuild projects read buildspecs from "
                f"{ir.buildspec_folder}/, but the codebuild output is off: "
                "keep buildspecs there yourself, or turn the codebuild output on",
                severity="warning",
                code="PC304",
            )
        )
    return out


def _pipeline_variables(ir: IR) -> list[Finding]:
    """CodePipeline resolves ``#{Namespace.Variable}`` in every action configuration: a
    user string that reaches one must not hold ``#{`` (it would read another action's
    output, a deploy-time value, instead of what pipeline.yaml says)."""
    configured = [env.manual_start_branch for env in ir.environments]
    for svc in ir.services:
        for dep in svc.deployments:
            passed = deploy_variables(ir, svc, dep)
            configured += [v for k, v in passed.items() if k not in ("IMAGE_TAG", "IMAGE_DIGEST")]
    return [
        Finding(
            path,
            "contains '#{', which AWS CodePipeline would resolve as a variable in the "
            "action configuration it reaches; remove it",
            code="PC302",
        )
        for path, text in ir.texts
        if "#{" in text and any(text in value for value in configured)
    ]


def choices(ir: IR) -> list[Finding]:
    """The user's policy choices that skip a checkov check, at the field that made them
    (lint lists them; they are neither errors nor warnings)."""
    return [
        Finding(
            path, f"checkov {check} skipped: {why} ({ir.log_retention_days} days)", code="PC306"
        )
        for check, path, why in pipeline_choices(ir)
    ]
