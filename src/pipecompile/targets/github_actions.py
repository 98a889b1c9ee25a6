"""GitHub Actions: per service a validation workflow and a delivery workflow, plus DAST.

Secure by construction: ``permissions: {}`` at the top and the least each
job needs; AWS through OIDC (``id-token: write`` only on jobs that assume the
role); every action pinned to a full commit SHA from the shipped pin table;
``persist-credentials: false`` on checkout; no value from pipeline.yaml and
no untrusted context is ever written into a ``run:`` script -- values reach
scripts through ``env:`` (the front end refuses ``${{`` in user text).

Files (relative to the github-actions output folder):
  ci-<service>.yml       push and pull requests: runtime, ci.steps, SAST, SCA
  deliver-<service>.yml  push to an environment's branches: build, scan, sign,
                         then one deploy job per environment (GitOps)
  dast.yml               scheduled OWASP ZAP scan, when security.dast is set
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..emit import Pinned, yaml_document
from ..errors import Path_
from ..ir import IR, Service
from . import Finding, gitops_required
from .common import (
    CVSS,
    ECR_SCAN_GATE,
    SONAR,
    branch_regexes,
    record_image_tag_script,
    scan_gate_env,
)

name = "github-actions"
RUNNER = "ubuntu-24.04"
# Generated step name prefix -> the pipeline field that asked for it (lint maps
# checker findings home with it; keep it next to the step names it reads).
STEP_ORIGINS: tuple[tuple[str, Path_], ...] = (
    ("SonarQube", ("security", "sast")),
    ("Fail on SonarQube", ("security", "sast")),
    ("OWASP dependency check", ("security", "dependencies")),
    ("Wait for the ECR scan", ("security", "image_scan")),
    ("Install cosign", ("security", "sign_images")),
    ("Sign the image", ("security", "sign_images")),
    ("Verify the image signature", ("security", "sign_images")),
    ("OWASP ZAP", ("security", "dast")),
    ("Notify Slack", ("notifications", "slack")),
    ("Record the new image tag", ("gitops", "repository")),
    ("Set up ", ("ci", "runtime")),
)


def job_origin(job_id: str) -> Path_ | None:
    """The pipeline field behind a generated job."""
    for prefix in ("deploy-", "ask-"):
        if job_id.startswith(prefix):
            return ("environments", job_id.removeprefix(prefix))
    return {
        "build": ("services",),
        "validate": ("ci",),
        "route": ("environments",),
        "notify": ("notifications", "slack"),
        "zap": ("security", "dast"),
    }.get(job_id)


# GitHub evaluates ${{ ... }} in almost every string of a workflow.
EXPRESSION = re.compile(r"\$\{\{")


def check(ir: IR) -> list[Finding]:
    """The GitOps repository, and no ``${{`` in any string the user wrote."""
    out = gitops_required(ir)
    for path, text in ir.texts:
        if EXPRESSION.search(text):
            out.append(
                Finding(
                    path,
                    "contains '${{', which GitHub Actions would evaluate as an "
                    "expression; read values from environment variables instead "
                    '(e.g. "$GITHUB_HEAD_REF", "$MY_TOKEN" set from a secret)',
                )
            )
    return out


def uses(ir: IR, action: str) -> Pinned:
    pin = ir.pins.action(action)
    return Pinned(f"{action}@{pin.sha}", pin.version)


def env_key(env: str) -> str:
    return env.upper().replace("-", "_")


def checkout(ir: IR, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Check out",
        "uses": uses(ir, "actions/checkout"),
        "with": {"persist-credentials": False, **extra},
    }


def aws_credentials(ir: IR) -> dict[str, Any]:
    return {
        "name": "Configure AWS credentials (OIDC)",
        "uses": uses(ir, "aws-actions/configure-aws-credentials"),
        "with": {"role-to-assume": ir.aws.github_role_arn, "aws-region": ir.aws.region},
    }


def setup_runtime(ir: IR, svc: Service) -> dict[str, Any]:
    base = "" if svc.path == "." else svc.path + "/"
    rt = ir.runtime
    if rt.language == "node":
        return {
            "name": f"Set up Node.js {rt.version}",
            "uses": uses(ir, "actions/setup-node"),
            "with": {
                "node-version": rt.version,
                "cache": "npm",
                "cache-dependency-path": f"{base}package-lock.json",
            },
        }
    if rt.language == "python":
        return {
            "name": f"Set up Python {rt.version}",
            "uses": uses(ir, "actions/setup-python"),
            "with": {
                "python-version": rt.version,
                "cache": "pip",
                "cache-dependency-path": f"{base}requirements*.txt",
            },
        }
    if rt.language == "java":
        return {
            "name": f"Set up Java {rt.version}",
            "uses": uses(ir, "actions/setup-java"),
            "with": {
                "distribution": "temurin",
                "java-version": rt.version,
                "cache": "maven",
                "cache-dependency-path": f"{base}pom.xml",
            },
        }
    return {
        "name": f"Set up Go {rt.version}",
        "uses": uses(ir, "actions/setup-go"),
        "with": {
            "go-version": rt.version,
            "cache": True,
            "cache-dependency-path": f"{base}go.sum",
        },
    }


def slack_step(ir: IR, text: str, condition: str | None = None) -> dict[str, Any]:
    payload = json.dumps(
        {"channel": ir.notifications.slack_channel, "text": text}, ensure_ascii=False
    )
    step: dict[str, Any] = {
        "name": "Notify Slack",
        "uses": uses(ir, "slackapi/slack-github-action"),
        "with": {
            "webhook": f"${{{{ secrets.{ir.secrets.slack_webhook} }}}}",
            "webhook-type": "incoming-webhook",
            "payload": payload,
        },
    }
    if condition:
        step = {"if": condition, **step}
    return step


def _paths(ir: IR, svc: Service, workflow: str) -> dict[str, Any]:
    if not svc.build_trigger_paths:
        return {}
    folder = ir.output(name)
    return {"paths": [*svc.build_trigger_paths, f"{folder}/{workflow}"]}


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
            "push": {"branches": ["**"], **_paths(ir, svc, workflow)},
            "pull_request": {"branches": pr_branches, **_paths(ir, svc, workflow)},
        },
        "permissions": {},
        "concurrency": {
            "group": f"ci-{svc.name}-${{{{ github.ref }}}}",
            "cancel-in-progress": True,
        },
        "jobs": {"validate": job},
    }


def _route_job(ir: IR) -> dict[str, Any]:
    env_vars: dict[str, str] = {"BRANCH": "${{ github.ref_name }}"}
    lines = [
        "set -euo pipefail",
        "matches() {",
        '  [[ "$BRANCH" =~ $1 ]] && { [ -z "$2" ] || ! [[ "$BRANCH" =~ $2 ]]; }',
        "}",
        "any=false",
    ]
    outputs: dict[str, str] = {}
    for env in ir.environments:
        key = env_key(env.name)
        inc, exc = branch_regexes(env)
        env_vars[f"INCLUDE_{key}"] = inc
        env_vars[f"EXCLUDE_{key}"] = exc
        lines += [
            f'if matches "$INCLUDE_{key}" "$EXCLUDE_{key}"; then',
            f'  echo "{env.name}=true" >> "$GITHUB_OUTPUT"',
            "  any=true",
            "else",
            f'  echo "{env.name}=false" >> "$GITHUB_OUTPUT"',
            "fi",
        ]
        outputs[env.name] = f"${{{{ steps.route.outputs.{env.name} }}}}"
    lines.append('echo "any=$any" >> "$GITHUB_OUTPUT"')
    outputs["any"] = "${{ steps.route.outputs.any }}"
    steps: list[dict[str, Any]] = [
        {
            "id": "route",
            "name": "Match the branch against each environment's patterns",
            "env": env_vars,
            "run": "\n".join(lines) + "\n",
        }
    ]
    if "started" in ir.notifications.slack_events:
        steps.append(
            slack_step(ir, "Delivery started for ${{ github.repository }} at ${{ github.sha }}")
        )
    return {
        "name": "Choose environments",
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": {},
        "outputs": outputs,
        "steps": steps,
    }


def _build_job(ir: IR, svc: Service) -> dict[str, Any]:
    sec = ir.security
    steps: list[dict[str, Any]] = [
        checkout(ir),
        aws_credentials(ir),
        {
            "name": "Log in to Amazon ECR",
            "id": "ecr",
            "uses": uses(ir, "aws-actions/amazon-ecr-login"),
        },
        {"name": "Set up Docker Buildx", "uses": uses(ir, "docker/setup-buildx-action")},
        {
            "name": "Build and push the image",
            "id": "image",
            "uses": uses(ir, "docker/build-push-action"),
            "with": {
                "context": svc.path,
                "file": svc.dockerfile,
                "push": True,
                "provenance": False,
                "tags": f"{svc.image_uri}:${{{{ github.sha }}}}",
            },
        },
    ]
    if sec.image_scan_fail_on:
        steps.append(
            {
                "name": f"Wait for the ECR scan and fail at {sec.image_scan_fail_on}",
                "env": {
                    "ECR_REPOSITORY": svc.image,
                    "IMAGE_TAG": "${{ github.sha }}",
                    **scan_gate_env(sec),
                },
                "run": ECR_SCAN_GATE,
            }
        )
    if sec.sign_images:
        steps += [
            {"name": "Install cosign", "uses": uses(ir, "sigstore/cosign-installer")},
            {
                "name": "Sign the image with the AWS KMS signing key",
                "env": {
                    "IMAGE_URI": svc.image_uri,
                    "DIGEST": "${{ steps.image.outputs.digest }}",
                    "SIGNING_KEY": f"awskms:///{ir.aws.signing_key_alias}",
                },
                "run": 'cosign sign --yes --tlog-upload=false --key "$SIGNING_KEY" '
                '"$IMAGE_URI@$DIGEST"\n',
            },
        ]
    return {
        "name": f"Build {svc.name}",
        "needs": "route",
        "if": "needs.route.outputs.any == 'true'",
        "runs-on": RUNNER,
        "timeout-minutes": ir.build.timeout_minutes,
        "permissions": {"contents": "read", "id-token": "write"},
        "outputs": {"digest": "${{ steps.image.outputs.digest }}"},
        "steps": steps,
    }


def _deploy_job(ir: IR, svc: Service, env_name: str, needs: list[str]) -> dict[str, Any]:
    env = ir.environment(env_name)
    steps: list[dict[str, Any]] = []
    permissions: dict[str, str] = {}
    if ir.security.sign_images:
        permissions["id-token"] = "write"
        steps += [
            aws_credentials(ir),
            {"name": "Install cosign", "uses": uses(ir, "sigstore/cosign-installer")},
            {
                "name": "Verify the image signature",
                "env": {
                    "IMAGE_URI": svc.image_uri,
                    "DIGEST": "${{ needs.build.outputs.digest }}",
                    "SIGNING_KEY": f"awskms:///{ir.aws.signing_key_alias}",
                },
                "run": 'cosign verify --insecure-ignore-tlog=true --key "$SIGNING_KEY" '
                '"$IMAGE_URI@$DIGEST"\n',
            },
        ]
    g = ir.gitops
    cred = ir.gitops.credential
    steps.append(
        {
            "name": f"Record the new image tag for {env.name} in the GitOps repository",
            "env": {
                "GITOPS_REPOSITORY": g.repository or "",
                "GITOPS_REVISION": g.revision,
                "GITOPS_PATH": g.path,
                "SERVICE": svc.name,
                "ENVIRONMENT": env.name,
                "IMAGE_TAG": "${{ github.sha }}",
                cred: f"${{{{ secrets.{cred} }}}}",
            },
            "run": record_image_tag_script(g.auth),
        }
    )
    job: dict[str, Any] = {
        "name": f"Deploy {svc.name} to {env.name}",
        "needs": needs,
        "if": f"needs.route.outputs.{env.name} == 'true'",
        "runs-on": RUNNER,
        "timeout-minutes": 15,
        "permissions": permissions,
        # one deployment of a service to an environment at a time, whichever branch
        # pushed: a running one is never cancelled, the next waits (GitHub keeps the
        # newest waiting run, like CodePipeline's QUEUED mode keeps the order)
        "concurrency": {"group": f"deploy-{svc.name}-{env.name}", "cancel-in-progress": False},
        "steps": steps,
    }
    if env.approval:
        job["environment"] = env.name
    return job


def deliver_workflow(ir: IR, svc: Service) -> dict[str, Any]:
    workflow = svc.deliver_workflow
    branches = list(ir.deploy_branches)
    jobs: dict[str, Any] = {"route": _route_job(ir), "build": _build_job(ir, svc)}
    deploy_ids = []
    for env in ir.environments:
        needs = ["route", "build"]
        if env.approval and "approval-needed" in ir.notifications.slack_events:
            ask = f"ask-{env.name}"
            jobs[ask] = {
                "name": f"Ask for approval to deploy {svc.name} to {env.name}",
                "needs": ["route", "build"],
                "if": f"needs.route.outputs.{env.name} == 'true'",
                "runs-on": RUNNER,
                "timeout-minutes": 5,
                "permissions": {},
                "steps": [
                    slack_step(
                        ir,
                        f"Approval needed: deploy {svc.name} to {env.name} (${{{{ github.sha }}}})",
                    )
                ],
            }
            needs.append(ask)
        job_id = f"deploy-{env.name}"
        jobs[job_id] = _deploy_job(ir, svc, env.name, needs)
        deploy_ids.append(job_id)
    events = ir.notifications.slack_events
    if "succeeded" in events or "failed" in events:
        steps = []
        if "succeeded" in events:
            steps.append(
                slack_step(
                    ir,
                    f"Delivery of {svc.name} succeeded (${{{{ github.sha }}}})",
                    "${{ !contains(needs.*.result, 'failure') }}",
                )
            )
        if "failed" in events:
            steps.append(
                slack_step(
                    ir,
                    f"Delivery of {svc.name} FAILED (${{{{ github.sha }}}})",
                    "${{ contains(needs.*.result, 'failure') }}",
                )
            )
        jobs["notify"] = {
            "name": "Notify",
            "needs": ["route", "build", *deploy_ids],
            "if": "${{ always() && needs.route.outputs.any == 'true' }}",
            "runs-on": RUNNER,
            "timeout-minutes": 5,
            "permissions": {},
            "steps": steps,
        }
    return {
        "name": f"deliver / {svc.name}",
        "on": {"push": {"branches": branches, **_paths(ir, svc, workflow)}},
        "permissions": {},
        "concurrency": {
            "group": f"deliver-{svc.name}-${{{{ github.ref }}}}",
            "cancel-in-progress": False,
        },
        "jobs": jobs,
    }


def dast_workflow(ir: IR) -> dict[str, Any]:
    dast = ir.security.dast
    assert dast is not None
    return {
        "name": f"dast / {dast.environment}",
        "on": {"schedule": [{"cron": dast.cron}], "workflow_dispatch": {}},
        "permissions": {},
        "concurrency": {"group": "dast", "cancel-in-progress": False},
        "jobs": {
            "zap": {
                "name": f"OWASP ZAP scan of {dast.environment}",
                "runs-on": RUNNER,
                "timeout-minutes": 60,
                "permissions": {},
                "steps": [
                    {
                        "name": "OWASP ZAP full scan",
                        "uses": uses(ir, "zaproxy/action-full-scan"),
                        "with": {
                            "target": dast.url,
                            "allow_issue_writing": False,
                            "docker_name": ir.pins.zap_image,
                            "artifact_name": f"zap-{dast.environment}",
                        },
                    }
                ],
            }
        },
    }


def describe(ir: IR) -> list[str]:
    """What must exist on GitHub: the secrets the workflows read, the environments."""
    out = ["GitHub repository secrets:"]
    s = ir.secrets
    for name, why in (
        (s.sonar_token, "SonarQube token (security.sast)"),
        (s.sonar_host_url, "SonarQube server URL (security.sast)"),
        (s.slack_webhook, f"Slack incoming webhook for {ir.notifications.slack_channel}"),
        (s.gitops_credential, f"write access to {ir.gitops.repository}"),
    ):
        if name:
            out.append(f"  {name}: {why}")
    approvals = [e.name for e in ir.environments if e.approval]
    if approvals:
        out.append("GitHub environments with required reviewers: " + ", ".join(approvals))
    return out


def render(ir: IR) -> dict[str, str]:
    out = {}
    for svc in ir.services:
        out[svc.ci_workflow] = yaml_document(ci_workflow(ir, svc))
        out[svc.deliver_workflow] = yaml_document(deliver_workflow(ir, svc))
    if ir.security.dast:
        out["dast.yml"] = yaml_document(dast_workflow(ir))
    return out
