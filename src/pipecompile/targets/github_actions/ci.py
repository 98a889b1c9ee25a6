"""CI on pushes and pull requests: ``ci.yml`` once, ``ci-<service>.yml`` per service.

  ci.yml              the one CI job (reusable): check out, the service's runtime, its
                      ci.steps, SonarQube and its gate, the dependency check; each scanner
                      script once in the tree, whatever the number of services
  ci-<service>.yml    the service's triggers (its paths) and concurrency, and one call of
                      ci.yml with its values; deliver-<service>.yml calls it before it builds

A service's ci.steps are steps of ci.yml, named as in pipeline.yaml and run by the
runner's own shell: services with the same steps share them, a step some services run
has an ``if`` on ``inputs.service`` (reusable workflows have no dynamic steps).
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Service, Step
from ..common import CVSS, SONAR, script_body, sonar_key
from .environments import CI_RELEASE, by_release, two_tiers
from .steps import (
    CI_ENVIRONMENT,
    RUNNER,
    checkout,
    dependency_file,
    paths_filter,
    permissions,
    setup_runtime,
    uses,
    workflow_ref,
)

CI = "ci.yml"


def ci_file(svc: Service) -> str:
    """The service's own CI workflow (it calls ci.yml), in the output folder."""
    return f"ci-{svc.name}.yml"


LANGUAGES = ("node", "python", "java", "go")  # their set-up steps' order in ci.yml


def _secret_names(ir: IR) -> list[str]:
    """The scanners' secrets, by name (each a secret of the ``ci`` GitHub environment)."""
    names = [name for name in (ir.secrets.sonar_token, ir.secrets.sonar_host_url) if name]
    if ir.security.dependencies_fail_on:
        names.append("NVD_API_KEY")
    return names


def _one_of(names: list[str]) -> str:
    return " || ".join(f"inputs.service == '{name}'" for name in names)


def _setup_steps(ir: IR) -> list[dict[str, Any]]:
    """One set-up step per language a service uses, its version and cache the caller's."""
    used = {svc.runtime.language for svc in ir.services}
    out = []
    for language in LANGUAGES:
        if language in used:
            step = setup_runtime(
                ir, language, "${{ inputs.runtime_version }}", "${{ inputs.cache_dependency_path }}"
            )
            out.append({"if": f"inputs.runtime == '{language}'", **step} if len(used) > 1 else step)
    return out


def _user_steps(ir: IR) -> list[dict[str, Any]]:
    """Each distinct list of ci.steps once, in the services' order, for the services that
    run it (all of them: no ``if``)."""
    blocks: dict[tuple[Step, ...], list[str]] = {}
    for svc in ir.services:
        blocks.setdefault(tuple(svc.steps), []).append(svc.name)
    out = []
    for steps, names in blocks.items():
        cond = {} if len(blocks) == 1 else {"if": _one_of(names)}
        out += [{**cond, "name": s.name, "run": s.run} for s in steps]
    return out


def ci_reusable(ir: IR) -> dict[str, Any]:
    """ci.yml: the one CI job every ci-<service>.yml calls."""
    sec = ir.security
    steps: list[dict[str, Any]] = [
        checkout(ir, **({"fetch-depth": 0} if sec.sast_fail_on else {})),
        *_setup_steps(ir),
        *_user_steps(ir),
    ]
    if sec.sast_fail_on:
        sonar_env = {
            "SONAR_TOKEN": f"${{{{ secrets.{ir.secrets.sonar_token} }}}}",
            "SONAR_HOST_URL": f"${{{{ secrets.{ir.secrets.sonar_host_url} }}}}",
        }
        # the release tier's own project (environments.py); inputs.release: a delivery's
        # call of a release build, absent on a pull request (the feature tier)
        tier = sonar_key(ir, "", True).removeprefix(sonar_key(ir, "", False))
        key = f"{ir.project}_${{{{ inputs.service }}}}" + by_release(tier, "inputs.release", "", ir)
        steps.append(
            {
                "name": "SonarQube analysis",
                "uses": uses(ir, "SonarSource/sonarqube-scan-action"),
                "env": sonar_env,
                "with": {
                    "projectBaseDir": "${{ inputs.service_path }}",
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
                    "DC_PROJECT": f"{ir.project}-${{{{ inputs.service }}}}",
                    "SERVICE_PATH": "${{ inputs.service_path }}",
                    "FAIL_CVSS": CVSS[sec.dependencies_fail_on],
                    "NVD_API_KEY": "${{ secrets.NVD_API_KEY }}",
                },
                "run": script_body("dependency-check.sh"),
            }
        )
    scans = bool(sec.sast_fail_on or sec.dependencies_fail_on)
    if scans:
        steps.append(
            {
                "name": "Upload reports",
                "if": "always()",
                "uses": uses(ir, "actions/upload-artifact"),
                "with": {
                    "name": "security-reports-${{ inputs.service }}",
                    "path": "reports/",
                    "if-no-files-found": "ignore",
                    "retention-days": 30,
                },
            }
        )
    job: dict[str, Any] = {
        "name": "Validate ${{ inputs.service }}",
        "runs-on": RUNNER,
        "timeout-minutes": ir.build.timeout_minutes,
        "permissions": permissions(contents="read"),
        "steps": steps,
    }
    if scans:
        # the scanners' secrets are secrets of this GitHub environment, not of the
        # repository: a release build's are the release tier's (environments.py)
        job["environment"] = by_release(CI_RELEASE, "inputs.release", CI_ENVIRONMENT, ir)
    job["defaults"] = {"run": {"working-directory": "${{ inputs.service_path }}"}}
    string = {"type": "string", "required": True}
    call: dict[str, Any] = {
        "inputs": {
            name: dict(string)
            for name in (
                "service",
                "service_path",
                "runtime",
                "runtime_version",
                "cache_dependency_path",
            )
        }
    }
    if two_tiers(ir):  # a release build's CI runs in the release tier's environment
        call["inputs"]["release"] = {"type": "boolean", "required": False, "default": False}
    if _secret_names(ir):
        # passed by name: the ci environment's value wins in its job (actions/runner#1490)
        call["secrets"] = {name: {"required": False} for name in _secret_names(ir)}
    return {
        "name": "ci",
        "on": {"workflow_call": call},
        "permissions": {},
        "jobs": {"validate": job},
    }


def ci_workflow(ir: IR, svc: Service) -> dict[str, Any]:
    """ci-<service>.yml: the service's triggers, and its values for ci.yml."""
    pr_branches = list(ir.deploy_branches)
    paths = paths_filter(ir, svc, ci_file(svc), CI)
    pull_request = {"branches": pr_branches, **paths}
    secrets = _secret_names(ir)
    if ir.delivery == "github-actions":
        # the delivery workflow calls this one before it builds (CI gates delivery)
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
        on = {"push": {"branches": ["**"], **paths}, "pull_request": pull_request}
    job: dict[str, Any] = {
        "name": f"Validate {svc.name}",
        "permissions": permissions(contents="read"),
        "uses": workflow_ref(ir, CI),
        "with": {
            "service": svc.name,
            "service_path": svc.path,
            "runtime": svc.runtime.language,
            "runtime_version": svc.runtime.version,
            "cache_dependency_path": dependency_file(svc),
        },
    }
    if two_tiers(ir):  # a pull request has no inputs: the feature tier (fails closed)
        job["with"]["release"] = "${{ inputs.release == true }}"
    if secrets:
        job["secrets"] = {name: f"${{{{ secrets.{name} }}}}" for name in secrets}
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
