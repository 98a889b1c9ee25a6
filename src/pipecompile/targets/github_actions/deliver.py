"""deliver-<service>.yml (delivery: github-actions): route, CI, build once, scan, sign,
then one deploy job per environment that verifies, records the digest in the GitOps
repository, waits for the rollout to be healthy and writes the audit row."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Deployment, Environment, Service
from ..common import (
    DEV_TAG_PREFIX,
    RELEASE_TAG_PREFIX,
    ZAP_RISK,
    accepted_keys,
    branch_regexes,
    manual_promotion,
    scan_gate_env,
    script_body,
)
from .steps import (
    NOTIFY_ENVIRONMENT,
    RUNNER,
    aws_credentials,
    checkout,
    env_key,
    install_cosign,
    paths_filter,
    permissions,
    slack_step,
)


def _route_job(ir: IR) -> dict[str, Any]:
    env_vars: dict[str, str] = {
        "BRANCH": "${{ github.ref_name }}",
        "ENVIRONMENTS": " ".join(env.name for env in ir.environments),
        "RELEASE_ENVIRONMENTS": " ".join(env.name for env in ir.environments if env.approval),
    }
    outputs: dict[str, str] = {}
    for env in ir.environments:
        key = env_key(env.name)
        inc, exc = branch_regexes(env)
        env_vars[f"INCLUDE_{key}"] = inc
        env_vars[f"EXCLUDE_{key}"] = exc
        outputs[env.name] = f"${{{{ steps.route.outputs.{env.name} }}}}"
    outputs["any"] = "${{ steps.route.outputs.any }}"
    outputs["release"] = "${{ steps.route.outputs.release }}"
    steps: list[dict[str, Any]] = [
        {
            "id": "route",
            "name": "Match the branch against each environment's patterns",
            "env": env_vars,
            "run": script_body("route.sh"),
        }
    ]
    if "started" in ir.notifications.slack_events:
        steps.append(
            slack_step(ir, "Delivery started for ${{ github.repository }} at ${{ github.sha }}")
        )
    job: dict[str, Any] = {
        "name": "Choose environments",
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": {},
        "outputs": outputs,
        "steps": steps,
    }
    if len(steps) > 1:  # it tells Slack: the webhook is a secret of that environment
        job["environment"] = NOTIFY_ENVIRONMENT
    return job


def _ci_job(ir: IR, svc: Service) -> dict[str, Any]:
    """The service's CI workflow, called: no image is built before it passes."""
    job: dict[str, Any] = {
        "name": f"CI of {svc.name}",
        "needs": "route",
        "if": "needs.route.outputs.any == 'true'",
        "permissions": {"contents": "read"},
        # GitHub's self-repository syntax ($/): never a file a previous step wrote
        "uses": f"$/{ir.output('github-actions')}/{svc.ci_workflow}",
    }
    secrets = {
        name: f"${{{{ secrets.{name} }}}}"
        for name in (ir.secrets.sonar_token, ir.secrets.sonar_host_url)
        if name
    }
    if ir.security.dependencies_fail_on:
        secrets["NVD_API_KEY"] = "${{ secrets.NVD_API_KEY }}"
    if secrets:
        job["secrets"] = secrets
    return job


def _image_env(ir: IR, svc: Service, env: Environment) -> dict[str, str]:
    repository, uri = ir.image_of(svc, env)  # approval: the release repository
    return {
        "ECR_REPOSITORY": repository,
        "IMAGE_URI": uri,
        "IMAGE_TAG": "${{ needs.build.outputs.tag }}",
        "IMAGE_DIGEST": "${{ needs.build.outputs.digest }}",
    }


def by_tier(ir: IR, release: str, dev: str) -> str:
    """The release-tier value for a push to an approval environment's branch, else dev.

    Release builds assume their own role, sign with the release key and tag rel-<tree>:
    a branch outside every approval environment can do none of the three."""
    if not ir.release_branches:
        return dev
    if set(ir.release_branches) == set(ir.deploy_branches):
        return release
    return f"${{{{ needs.route.outputs.release == 'true' && '{release}' || '{dev}' }}}}"


def _build_job(ir: IR, svc: Service) -> dict[str, Any]:
    sec = ir.security
    # the release tier writes only the release repository, the dev tier only its own
    repository = by_tier(ir, svc.release_image, svc.image)
    uri = by_tier(ir, svc.release_image_uri, svc.image_uri)
    built = {
        "ECR_REPOSITORY": repository,
        "IMAGE_URI": uri,
        "IMAGE_TAG": "${{ steps.image.outputs.IMAGE_TAG }}",
        "IMAGE_DIGEST": "${{ steps.image.outputs.IMAGE_DIGEST }}",
    }
    steps: list[dict[str, Any]] = [
        checkout(ir),
        aws_credentials(
            ir, by_tier(ir, ir.aws.github_release_role_arn, ir.aws.github_build_role_arn)
        ),
        {
            "name": "Build the image once per source tree, or reuse it",
            "id": "image",
            "env": {
                "TAG_PREFIX": by_tier(ir, RELEASE_TAG_PREFIX, DEV_TAG_PREFIX),
                "SERVICE_PATH": svc.path,
                "DOCKERFILE": svc.dockerfile,
                "ECR_REGISTRY": ir.aws.ecr_registry,
                "ECR_REPOSITORY": repository,
                "IMAGE_URI": uri,
                # no IMAGE_ENV: the script appends to this step's own $GITHUB_OUTPUT
                # (${{ github.output }} in env would name the previous step's file)
            },
            "run": script_body("build-once.sh"),
        },
    ]
    if sec.sign_images and ir.release_branches:
        # cosign before the build: a release build reuses only a release-signed image
        steps.insert(2, install_cosign(ir))
        steps[3]["env"]["REUSE_SIGNED_BY"] = by_tier(
            ir, f"awskms:///{ir.aws.release_key_alias}", ""
        )
    if sec.image_scan_fail_on:
        steps.append(
            {
                "name": f"Wait for the ECR scan and fail at {sec.image_scan_fail_on}",
                "env": {**built, **scan_gate_env(sec)},
                "run": script_body("ecr-scan-gate.sh"),
            }
        )
    if sec.sign_images:
        if not ir.release_branches:
            steps.append(install_cosign(ir))
        steps += [
            {
                "name": "Sign the image with the AWS KMS signing key",
                "env": {
                    **built,
                    "SIGNING_KEY": by_tier(
                        ir,
                        f"awskms:///{ir.aws.release_key_alias}",
                        f"awskms:///{ir.aws.signing_key_alias}",
                    ),
                },
                "run": script_body("sign-once.sh"),
            },
            {
                "name": "Attest the SBOM and the build provenance of the digest",
                "env": {
                    **built,
                    "ECR_REGISTRY": ir.aws.ecr_registry,
                    "SIGNING_KEY": by_tier(
                        ir,
                        f"awskms:///{ir.aws.release_key_alias}",
                        f"awskms:///{ir.aws.signing_key_alias}",
                    ),
                    "SYFT_IMAGE": ir.pins.syft_image,
                    "BUILDER_ID": "${{ github.workflow_ref }}",
                    "BUILD_INVOCATION": "${{ github.server_url }}/${{ github.repository }}"
                    "/actions/runs/${{ github.run_id }}/attempts/${{ github.run_attempt }}",
                    "SOURCE_REPOSITORY": ir.repository,
                    "COMMIT": "${{ github.sha }}",
                    "SERVICE_PATH": svc.path,
                },
                "run": script_body("attest.sh"),
            },
        ]
    return {
        "name": f"Build {svc.name}",
        "needs": ["route", "ci"],
        "if": "needs.route.outputs.any == 'true'",
        "runs-on": RUNNER,
        "timeout-minutes": ir.build.timeout_minutes,
        "permissions": permissions(contents="read", id_token="write"),
        "outputs": {
            "tag": "${{ steps.image.outputs.IMAGE_TAG }}",
            "digest": "${{ steps.image.outputs.IMAGE_DIGEST }}",
        },
        "steps": steps,
    }


def _deploy_job(ir: IR, svc: Service, dep: Deployment, needs: list[str]) -> dict[str, Any]:
    env = ir.environment(dep.environment)
    image = _image_env(ir, svc, env)
    # the environment's own role: only jobs of this GitHub environment can assume it
    steps: list[dict[str, Any]] = [aws_credentials(ir, env.github_role_arn)]
    if ir.chart_source:
        steps.insert(0, checkout(ir))  # the chart and values of the approved commit
    if ir.security.sign_images:
        steps += [
            install_cosign(ir),
            {
                "name": "Verify the image signature",
                "env": {**image, "SIGNING_KEYS": accepted_keys(ir, env)},
                "run": script_body("verify-signature.sh"),
            },
            {
                "name": "Verify the SBOM and provenance attestations",
                "env": {**image, "SIGNING_KEYS": accepted_keys(ir, env)},
                "run": script_body("verify-attestations.sh"),
            },
        ]
    dast = ir.security.dast
    if env.after_dast and dast is not None:
        steps.append(
            {
                "name": f"Promote only what passed DAST in {dast.environment}",
                "env": {**image, "DAST_ENVIRONMENT": dast.environment},
                "run": script_body("promotion-gate.sh"),
            }
        )
    g = ir.gitops
    cred = g.credential
    outcome_file = "${{ runner.temp }}/outcome"
    if env.sync_window and env.sync == "automated":
        steps.append(
            {
                "name": f"Deploy only inside the sync window of {env.name}",
                "id": "window",
                "env": {
                    "ARGOCD_SERVER": "${{ secrets.ARGOCD_SERVER }}",
                    "ARGOCD_AUTH_TOKEN": "${{ secrets.ARGOCD_AUTH_TOKEN }}",
                    "ARGOCD_APP": dep.app_name,
                    "ENVIRONMENT": env.name,
                    "OUTCOME_FILE": outcome_file,
                },
                "run": script_body("sync-window.sh"),
            }
        )
    steps.append(
        {
            "name": f"Record the new image digest for {env.name} in the GitOps repository",
            "env": {
                "GITOPS_AUTH": g.auth,
                "GITOPS_REPOSITORY": env.gitops_repository or "",
                "GITOPS_REVISION": env.gitops_revision,
                "GITOPS_DIR": dep.gitops_dir,
                "CHART_SOURCE": ir.chart_source or "",
                "VALUES_SOURCE": svc.values_source or "",
                "SERVICE": svc.name,
                "ENVIRONMENT": env.name,
                **image,
                cred: f"${{{{ secrets.{cred} }}}}",
            },
            "run": script_body("gitops-record.sh"),
        }
    )
    steps.append(
        {
            "name": f"Wait until Argo CD reports {dep.app_name} healthy",
            "id": "wait",
            "env": {
                "ARGOCD_SERVER": "${{ secrets.ARGOCD_SERVER }}",
                "ARGOCD_AUTH_TOKEN": "${{ secrets.ARGOCD_AUTH_TOKEN }}",
                "ARGOCD_APP": dep.app_name,
                "SERVICE": svc.name,
                "ENVIRONMENT": env.name,
                "IMAGE_DIGEST": image["IMAGE_DIGEST"],
                "WAIT_SECONDS": str(dep.wait_minutes * 60),
                "OUTCOME_FILE": outcome_file,
                **({"PROMOTION": "manual"} if manual_promotion(dep) else {}),
            },
            "run": script_body("wait-healthy.sh"),
        }
    )
    minutes = 15 + dep.wait_minutes
    granted = {"id_token": "write"}
    if ir.chart_source:
        granted["contents"] = "read"
    if env.approval:
        granted["actions"] = "read"  # the run's approvals: who approved this deploy
        steps.append(
            {
                "name": "Look up who approved",
                "id": "approver",
                "if": "always()",
                "env": {"GITHUB_TOKEN": "${{ github.token }}", "ENVIRONMENT": env.name},
                "run": script_body("approver-github.sh"),
            }
        )
    if ir.deployments_table:
        steps.append(
            {
                "name": "Write the audit row",
                "if": "always()",
                "env": {
                    "DEPLOYMENTS_TABLE": ir.deployments_table,
                    "SERVICE": svc.name,
                    "ENVIRONMENT": env.name,
                    "COMMIT": "${{ github.sha }}",
                    **image,
                    "APPROVER": "${{ steps.approver.outputs.approver }}"
                    if env.approval
                    else "none (no approval)",
                    "OUTCOME_FILE": outcome_file,
                    # the audit's outcome names (succeeded, failed, cancelled, ...), never
                    # the runner's job status words (success, failure)
                    "DEPLOY_STATUS": "${{ job.status == 'success' && 'succeeded' || "
                    "job.status == 'cancelled' && 'cancelled' || 'failed' }}",
                    "RUN": "${{ github.server_url }}/${{ github.repository }}/actions/runs/"
                    "${{ github.run_id }}",
                },
                "run": script_body("audit-row.sh"),
            }
        )
    if "failed" in ir.notifications.slack_events:
        steps.append(
            slack_step(
                ir,
                f"Rollout of {svc.name} to {env.name} was ABORTED and rolled back "
                "(${{ needs.build.outputs.digest }})",
                "failure() && steps.wait.outputs.outcome == 'rolled-back'",
            )
        )
    return {
        "name": f"Deploy {svc.name} to {env.name}",
        "needs": needs,
        "if": f"needs.route.outputs.{env.name} == 'true'",
        "runs-on": RUNNER,
        "timeout-minutes": minutes,
        "permissions": permissions(**granted),
        # one deployment of a service to an environment at a time, whichever branch
        # pushed: a running one is never cancelled, the next waits (GitHub keeps the
        # newest waiting run, like CodePipeline's QUEUED mode keeps the order)
        "concurrency": {"group": f"deploy-{svc.name}-{env.name}", "cancel-in-progress": False},
        # every deploy job runs in its GitHub environment: its secrets are scoped
        # there, and an approval environment's required reviewers gate it
        "environment": env.name,
        "steps": steps,
    }


def _dast_job(ir: IR, svc: Service, env: Environment) -> dict[str, Any]:
    """The scan after the DAST environment's deploy, in a job of its own: its GitHub
    environment holds no deploy secret, and its role only reads the images and tags a
    digest that passed (no signing key, no layer upload, no GitOps credential)."""
    dast = ir.security.dast
    assert dast is not None
    return {
        "name": f"DAST of {svc.name} in {env.name}",
        "needs": ["route", "build", f"deploy-{env.name}"],
        "if": f"needs.route.outputs.{env.name} == 'true'",
        "runs-on": RUNNER,
        "timeout-minutes": 60,
        "permissions": permissions(id_token="write"),
        "concurrency": {"group": f"dast-{svc.name}-{env.name}", "cancel-in-progress": False},
        "environment": dast.github_environment,
        "steps": [
            aws_credentials(ir, dast.github_role_arn),
            {
                "name": f"OWASP ZAP baseline scan of {env.name}; fail at {dast.fail_on}",
                "env": {
                    **_image_env(ir, svc, env),
                    "DAST_ENVIRONMENT": env.name,
                    "DAST_URL": dast.url,
                    "ZAP_IMAGE": ir.pins.zap_image,
                    "ZAP_MIN_RISK": str(ZAP_RISK[dast.fail_on]),
                },
                "run": script_body("dast-scan.sh"),
            },
        ],
    }


def _notify_job(ir: IR, svc: Service, deploy_ids: list[str]) -> dict[str, Any] | None:
    """One message for the run: succeeded only if every deploy reached healthy."""
    events = ir.notifications.slack_events
    failed = "contains(needs.*.result, 'failure')"
    cancelled = "contains(needs.*.result, 'cancelled')"
    steps = []
    if "succeeded" in events:
        steps.append(
            slack_step(
                ir,
                f"Delivery of {svc.name} succeeded: healthy in every environment it "
                "targeted (${{ github.sha }})",
                f"${{{{ !{failed} && !{cancelled} }}}}",
            )
        )
    if "failed" in events:
        steps += [
            slack_step(
                ir, f"Delivery of {svc.name} FAILED (${{{{ github.sha }}}})", f"${{{{ {failed} }}}}"
            ),
            slack_step(
                ir,
                f"Delivery of {svc.name} was CANCELLED (${{{{ github.sha }}}})",
                f"${{{{ {cancelled} && !{failed} }}}}",
            ),
        ]
    if not steps:
        return None
    return {
        "name": "Notify",
        "needs": ["route", "ci", "build", *deploy_ids],
        "if": "${{ always() && needs.route.outputs.any == 'true' }}",
        "runs-on": RUNNER,
        "timeout-minutes": 5,
        "permissions": {},
        "environment": NOTIFY_ENVIRONMENT,
        "steps": steps,
    }


def deliver_workflow(ir: IR, svc: Service) -> dict[str, Any]:
    jobs: dict[str, Any] = {
        "route": _route_job(ir),
        "ci": _ci_job(ir, svc),
        "build": _build_job(ir, svc),
    }
    deploy_ids = []
    for dep in svc.deployments:
        env = ir.environment(dep.environment)
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
                "environment": NOTIFY_ENVIRONMENT,
                "steps": [
                    slack_step(
                        ir,
                        f"Approval needed: deploy {svc.name} to {env.name} (${{{{ github.sha }}}})",
                    )
                ],
            }
            needs.append(ask)
        job_id = f"deploy-{env.name}"
        jobs[job_id] = _deploy_job(ir, svc, dep, needs)
        deploy_ids.append(job_id)
        if env.dast and ir.security.dast is not None:
            jobs[f"dast-{env.name}"] = _dast_job(ir, svc, env)
            deploy_ids.append(f"dast-{env.name}")
    notify = _notify_job(ir, svc, deploy_ids)
    if notify:
        jobs["notify"] = notify
    return {
        "name": f"deliver / {svc.name}",
        "on": {
            "push": {
                "branches": list(ir.deploy_branches),
                **paths_filter(ir, svc, svc.deliver_workflow, svc.ci_workflow),
            }
        },
        # one run per commit: a group per branch would hold every later push while a
        # production approval is pending (and GitHub keeps only the newest waiting run);
        # each deploy job has its own group per service x environment
        "permissions": {},
        "concurrency": {
            "group": f"deliver-{svc.name}-${{{{ github.sha }}}}",
            "cancel-in-progress": False,
        },
        "jobs": jobs,
    }
