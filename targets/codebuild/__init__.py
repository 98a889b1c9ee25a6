"""AWS CodeBuild buildspecs (version 0.2).

  build-<service>.yml  ci.steps, image build and push (tag: short commit SHA),
                       ECR scan gate, signing; exports IMAGE_TAG and IMAGE_URI
                       for the deploy action (CodePipeline variables)
  deploy-<env>.yml     records the new image tag for one environment in the
                       GitOps repository (same script as the GitHub deploy job)

Every value from pipeline.yaml reaches the shell through ``env.variables``.
"""

from __future__ import annotations

from typing import Any

from ...emit import yaml_document
from ...ir import IR, Environment, Service
from .. import Finding, data, gitops_required
from ..common import ECR_SCAN_GATE, record_image_tag_script, scan_gate_env

name = "codebuild"
default_folder = "ci/codebuild"  # under outputs: when the pipeline names no folder
cost = 14  # ms to render per 1000 services (bench/bench.py); balances parallel rendering


def _runtimes() -> dict[str, Any]:
    table: dict[str, Any] = data("codebuild", "runtimes.json")
    return table


def build_spec(ir: IR, svc: Service) -> dict[str, Any]:
    sec = ir.security
    variables: dict[str, str] = {
        "SERVICE": svc.name,
        "SERVICE_PATH": svc.path,
        "DOCKERFILE": svc.dockerfile,
        "ECR_REGISTRY": ir.aws.ecr_registry,
        "ECR_REPOSITORY": svc.image,
        "IMAGE_URI": svc.image_uri,
    }
    if sec.image_scan_fail_on:
        variables.update(scan_gate_env(sec))
    if sec.sign_images:
        variables["SIGNING_KEY"] = f"awskms:///{ir.aws.signing_key_alias}"
    key, fmt = _runtimes()["runtime_versions"][ir.runtime.language]
    steps = ['cd "$CODEBUILD_SRC_DIR/$SERVICE_PATH"'] + [s.run for s in ir.steps]
    build = [
        'cd "$CODEBUILD_SRC_DIR"',
        'export IMAGE_TAG="${CODEBUILD_RESOLVED_SOURCE_VERSION:0:12}"',
        'aws ecr get-login-password --region "$AWS_REGION" '
        '| docker login --username AWS --password-stdin "$ECR_REGISTRY"',
        'docker build --file "$DOCKERFILE" --tag "$IMAGE_URI:$IMAGE_TAG" "$SERVICE_PATH"',
        'docker push "$IMAGE_URI:$IMAGE_TAG"',
    ]
    post: list[str] = []
    if sec.image_scan_fail_on:
        post.append(f"(\n{ECR_SCAN_GATE})")
    if sec.sign_images:
        post.append(
            'cosign sign --yes --tlog-upload=false --key "$SIGNING_KEY" '
            "\"$(docker inspect --format '{{index .RepoDigests 0}}' "
            '"$IMAGE_URI:$IMAGE_TAG")"'
        )
    post.append(
        'printf \'{"service":"%s","imageUri":"%s","imageTag":"%s"}\\n\' '
        '"$SERVICE" "$IMAGE_URI" "$IMAGE_TAG" > "$CODEBUILD_SRC_DIR/image.json"'
    )
    phases: dict[str, Any] = {
        "install": {"runtime-versions": {key: fmt.format(v=ir.runtime.version)}},
        "pre_build": {"on-failure": "ABORT", "commands": steps},
        "build": {"on-failure": "ABORT", "commands": build},
        "post_build": {"commands": post},
    }
    if sec.sign_images:
        phases["install"]["commands"] = [
            "curl -fsSL -o /usr/local/bin/cosign "
            '"https://github.com/sigstore/cosign/releases/download/${COSIGN_VERSION}/'
            'cosign-linux-amd64"',
            "chmod +x /usr/local/bin/cosign",
        ]
        variables["COSIGN_VERSION"] = ir.pins.cosign_version
    spec: dict[str, Any] = {
        "version": 0.2,
        "env": {
            "shell": "bash",
            "variables": variables,
            "exported-variables": ["IMAGE_TAG", "IMAGE_URI"],
        },
        "phases": phases,
        "artifacts": {"files": ["image.json"]},
    }
    if sec.image_scan_fail_on:
        # The scan gate writes a JUnit report (one test case per severity) that
        # CodeBuild publishes to the report group <project>-ecr-image-scan.
        spec["reports"] = {
            "ecr-image-scan": {
                "files": ["ecr-image-scan.xml"],
                "base-directory": "reports",
                "file-format": "JUNITXML",
            }
        }
    if ir.build.cache != "none":
        spec["cache"] = {"paths": list(_runtimes()["cache_paths"][ir.runtime.language])}
    return spec


def deploy_spec(ir: IR, env: Environment) -> dict[str, Any]:
    g = ir.gitops
    variables = {
        "ENVIRONMENT": env.name,
        "GITOPS_REPOSITORY": g.repository or "",
        "GITOPS_REVISION": g.revision,
        "GITOPS_PATH": g.path,
    }
    cred = ir.gitops.credential
    commands = [
        'test -n "${SERVICE:-}" && test -n "${IMAGE_TAG:-}"',
        f"(\n{record_image_tag_script(g.auth)})",
    ]
    if ir.deployments_table:
        variables["DEPLOYMENTS_TABLE"] = ir.deployments_table
        commands.append(
            'aws dynamodb put-item --table-name "$DEPLOYMENTS_TABLE" --item "$(jq -n '
            '--arg s "$SERVICE" --arg e "$ENVIRONMENT" --arg t "$IMAGE_TAG" '
            '--arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg b "$CODEBUILD_BUILD_ID" '
            "'{service: {S: $s}, deployed_at: {S: $at}, environment: {S: $e}, "
            "image_tag: {S: $t}, build_id: {S: $b}}')\""
        )
    return {
        "version": 0.2,
        "env": {
            "shell": "bash",
            "variables": variables,
            "secrets-manager": {cred: ir.aws.gitops_secret_name},
        },
        "phases": {"build": {"commands": commands}},
    }


def describe(ir: IR) -> list[str]:
    """Nothing of its own: the projects that run the buildspecs are terraform's."""
    return []


def check(ir: IR) -> list[Finding]:
    return gitops_required(ir)


def render(ir: IR) -> dict[str, str]:
    out = {}
    for svc in ir.services:
        out[svc.buildspec] = yaml_document(build_spec(ir, svc))
    for env in ir.environments:
        out[env.deploy_buildspec] = yaml_document(deploy_spec(ir, env))
    return out
