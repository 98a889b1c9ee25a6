"""ci-<service>.yml: the runtime, ci.steps, SAST and SCA on pushes and pull requests."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Service
from ..common import CVSS, SONAR, script_body, sonar_key
from .environments import CI_RELEASE, by_release, two_tiers
from .steps import (
    CI_ENVIRONMENT,
    RUNNER,
    checkout,
    paths_filter,
    permissions,
    setup_runtime,
    uses,
)


def ci_workflow(ir: IR, svc: Service) -> dict[str, Any]:
    workflow = svc.ci_workflow
    pr_branches = list(ir.deploy_branches)
    steps: list[dict[str, Any]] = [
        checkout(ir, **({"fetch-depth": 0} if ir.security.sast_fail_on else {})),
        setup_runtime(ir, svc),
    ]
    steps += [{"name": s.name, "run": s.run} for s in svc.steps]
    sec = ir.security
    if sec.sast_fail_on:
        sonar_env = {
            "SONAR_TOKEN": f"${{{{ secrets.{ir.secrets.sonar_token} }}}}",
            "SONAR_HOST_URL": f"${{{{ secrets.{ir.secrets.sonar_host_url} }}}}",
        }
        # the release tier's own project (environments.py); inputs.release: a delivery's
        # call of a release build, absent on a pull request (the feature tier)
        key = by_release(
            sonar_key(ir, svc.name, True), "inputs.release", sonar_key(ir, svc.name, False), ir
        )
        steps.append(
            {
                "name": "SonarQube analysis",
                "uses": uses(ir, "SonarSource/sonarqube-scan-action"),
                "env": sonar_env,
                "with": {
                    "projectBaseDir": svc.path,
                    "args": f"-Dsonar.projectKey={key} -Dsonar.qualitygate.wait=true",
                },
            }
        )
        steps.append(
            {
                "name": f"Fail on SonarQube issues at or above {sec.sast_fail_on}",
                "env": {
                    **sonar_env,
                    "SONAR_PROJECT_KEY": key,
                    "SONAR_SEVERITIES": SONAR[sec.sast_fail_on],
                },
                "run": script_body("sonar-gate.sh"),
            }
        )
    if sec.dependencies_fail_on:
        steps.append(
            {
                # the NVD data between runs: a run restores the newest and saves its own
                "name": "Cache the NVD data of the dependency check",
                "uses": uses(ir, "actions/cache"),
                "with": {
                    "path": "~/.dependency-check",
                    "key": "nvd-${{ runner.os }}-${{ github.run_id }}",
                    "restore-keys": "nvd-${{ runner.os }}-",
                },
            }
        )
        steps.append(
            {
                "name": f"OWASP dependency check; fail at {sec.dependencies_fail_on}",
                "working-directory": ".",
                "env": {
                    "DEPENDENCY_CHECK_IMAGE": ir.pins.dependency_check_image,
                    "DC_PROJECT": f"{ir.project}-{svc.name}",
                    "SERVICE_PATH": svc.path,
                    "FAIL_CVSS": CVSS[sec.dependencies_fail_on],
                    "NVD_API_KEY": "${{ secrets.NVD_API_KEY }}",
                },
                "run": script_body("dependency-check.sh"),
            }
        )
    if sec.sast_fail_on or sec.dependencies_fail_on:
        steps.append(
            {
                "name": "Upload reports",
                "if": "always()",
                "uses": uses(ir, "actions/upload-artifact"),
                "with": {
                    "name": f"security-reports-{svc.name}",
                    "path": "reports/",
                    "if-no-files-found": "ignore",
                    "retention-days": 30,
                },
            }
        )
    job: dict[str, Any] = {
        "name": f"Validate {svc.name}",
        "runs-on": RUNNER,
        "timeout-minutes": ir.build.timeout_minutes,
        "permissions": permissions(contents="read"),
        "steps": steps,
    }
    if sec.sast_fail_on or sec.dependencies_fail_on:
        # the scanners' secrets are secrets of this GitHub environment, not of the
        # repository: a release build's are the release tier's (environments.py)
        job["environment"] = by_release(CI_RELEASE, "inputs.release", CI_ENVIRONMENT, ir)
    if svc.path != ".":
        job["defaults"] = {"run": {"working-directory": svc.path}}
    pull_request = {"branches": pr_branches, **paths_filter(ir, svc, workflow)}
    if ir.delivery == "github-actions":
        # the delivery workflow calls this one before it builds (CI gates delivery)
        secrets = [name for name in (ir.secrets.sonar_token, ir.secrets.sonar_host_url) if name]
        if sec.dependencies_fail_on:
            secrets.append("NVD_API_KEY")
        call: dict[str, Any] = {}
        if two_tiers(ir):
            call["inputs"] = {
                "release": {
                    "description": "a release build's CI (the release tier's environment)",
                    "type": "boolean",
                    "default": False,
                }
            }
        if secrets:
            call["secrets"] = {name: {"required": name != "NVD_API_KEY"} for name in secrets}
        on: dict[str, Any] = {"pull_request": pull_request, "workflow_call": call}
    else:
        on = {
            "push": {"branches": ["**"], **paths_filter(ir, svc, workflow)},
            "pull_request": pull_request,
        }
    return {
        "name": f"ci / {svc.name}",
        "on": on,
        "permissions": {},
        "concurrency": {
            # a delivery's CI (called on push) is never cancelled by a newer push
            "group": f"ci-{svc.name}-${{{{ github.event_name }}}}-${{{{ github.ref }}}}",
            "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
        },
        "jobs": {"validate": job},
    }
