"""deliver-<service>.yml: route, build, scan, sign, then one deploy job per environment."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Service
from ..common import (
    ECR_SCAN_GATE,
    branch_regexes,
    record_image_tag_script,
    scan_gate_env,
)
from .steps import (
    RUNNER,
    aws_credentials,
    checkout,
    env_key,
    paths_filter,
    slack_step,
    uses,
)


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
        "on": {"push": {"branches": branches, **paths_filter(ir, svc, workflow)}},
        "permissions": {},
        "concurrency": {
            "group": f"deliver-{svc.name}-${{{{ github.ref }}}}",
            "cancel-in-progress": False,
        },
        "jobs": jobs,
    }
