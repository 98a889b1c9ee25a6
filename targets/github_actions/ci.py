"""ci-<service>.yml: the runtime, ci.steps, SAST and SCA on pushes and pull requests."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Service
from ..common import (
    CVSS,
    SONAR,
)
from .steps import (
    RUNNER,
    checkout,
    paths_filter,
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
    steps += [{"name": s.name, "run": s.run} for s in ir.steps]
    sec = ir.security
    if sec.sast_fail_on:
        sonar_env = {
            "SONAR_TOKEN": f"${{{{ secrets.{ir.secrets.sonar_token} }}}}",
            "SONAR_HOST_URL": f"${{{{ secrets.{ir.secrets.sonar_host_url} }}}}",
        }
        key = f"{ir.project}_{svc.name}"
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
                "run": (
                    "set -euo pipefail\n"
                    'total="$(curl -fsS -u "$SONAR_TOKEN:" --get '
                    '"$SONAR_HOST_URL/api/issues/search" \\\n'
                    '  --data-urlencode "componentKeys=$SONAR_PROJECT_KEY" \\\n'
                    '  --data-urlencode "severities=$SONAR_SEVERITIES" \\\n'
                    '  --data-urlencode "resolved=false" --data-urlencode "ps=1" '
                    "| jq -r '.total')\"\n"
                    'echo "open SonarQube issues at or above the threshold: $total"\n'
                    'test "$total" -eq 0\n'
                ),
            }
        )
    if sec.dependencies_fail_on:
        steps.append(
            {
                "name": "OWASP dependency check",
                "uses": uses(ir, "dependency-check/Dependency-Check_Action"),
                "with": {
                    "project": f"{ir.project}-{svc.name}",
                    "path": svc.path,
                    "format": "ALL",
                    "others": f"--failOnCVSS {CVSS[sec.dependencies_fail_on]}",
                },
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
        "permissions": {"contents": "read"},
        "steps": steps,
    }
    if svc.path != ".":
        job["defaults"] = {"run": {"working-directory": svc.path}}
    return {
        "name": f"ci / {svc.name}",
        "on": {
            "push": {"branches": ["**"], **paths_filter(ir, svc, workflow)},
            "pull_request": {"branches": pr_branches, **paths_filter(ir, svc, workflow)},
        },
        "permissions": {},
        "concurrency": {
            "group": f"ci-{svc.name}-${{{{ github.ref }}}}",
            "cancel-in-progress": True,
        },
        "jobs": {"validate": job},
    }
