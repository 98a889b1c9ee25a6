"""The CodeBuild projects the CodePipelines run (codebuild.tf): each service's build
project (and its release tier's), the sign projects, one deploy project per environment
and the DAST project, each with its log group; and the policy checks the user's own
settings decline (``choices``).  The pipelines that run them are in :mod:`.pipelines`."""

from __future__ import annotations

import posixpath
from typing import Any

from ...ir import IR
from ...serialize.hcl import Block, Call, Ref, Template
from ..common import (
    BUILD_BUILDSPEC,
    DAST_BUILDSPEC,
    DEPLOY_BUILDSPEC,
    SIGN_BUILDSPEC,
    build_project_variables,
    codebuild_parameters,
    rollback_notifies,
)
from .blocks import aws_constants, resource
from .compute import compute_type
from .iam import bucket_label
from .network import vpc_config


def _project(
    ir: IR,
    label: str,
    project_name: str,
    description: str,
    buildspec: str,
    log_label: str,
    privileged: bool,
    timeout: int,
    cache: str,
    role: str = "codebuild",
    trusted: bool = False,
    variables: tuple[tuple[str, Any, str], ...] = (),
) -> Block:
    """A CodeBuild project. ``trusted``: it holds a deploy secret, the release key or a
    gate's marker right, so its buildspec comes from Terraform (the generated file, read
    at apply time), never from the branch it builds."""
    p = resource("aws_codebuild_project", label)
    if privileged:
        p.comment("checkov:skip=CKV_AWS_316: docker builds need privileged mode")
    p.attr("name", project_name)
    p.attr("description", description)
    p.attr("service_role", Ref(f"aws_iam_role.{role}.arn"))
    p.attr("build_timeout", timeout)
    p.attr("encryption_key", Ref("aws_kms_key.cicd.arn"))
    p.block("artifacts").attr("type", "CODEPIPELINE")
    src = p.block("source")
    src.attr("type", "CODEPIPELINE")
    if trusted:
        src.comment("the buildspec as applied, not the branch's: a push cannot rewrite it")
        rel = posixpath.relpath(buildspec, ir.output("terraform"))
        src.attr("buildspec", Call("file", (Template((Ref("path.module"), f"/{rel}")),)))
    else:
        src.attr("buildspec", buildspec)
    env = p.block("environment")
    compute = compute_type(ir.build.vcpu, ir.build.memory_gb)[0]
    env.attr("compute_type", compute if privileged else "BUILD_GENERAL1_SMALL")
    env.attr("image", aws_constants()["build_image"])
    env.attr("type", "LINUX_CONTAINER")
    env.attr("image_pull_credentials_type", "CODEBUILD")
    env.attr("privileged_mode", privileged)
    for var_name, value, kind in variables:  # (name, value, PLAINTEXT | SECRETS_MANAGER)
        v = env.block("environment_variable")
        v.attr("name", var_name)
        v.attr("value", value)
        if kind != "PLAINTEXT":
            v.attr("type", kind)
    if cache == "s3":
        c = p.block("cache")
        c.attr("type", "S3")
        bucket = bucket_label(role == "codebuild_release")
        c.attr(
            "location",
            Template((Ref(f"aws_s3_bucket.{bucket}.bucket"), f"/codebuild-cache/{label}")),
        )
    elif cache == "local":
        c = p.block("cache")
        c.attr("type", "LOCAL")
        c.attr("modes", ["LOCAL_DOCKER_LAYER_CACHE", "LOCAL_SOURCE_CACHE"])
    logs = p.block("logs_config")
    cw = logs.block("cloudwatch_logs")
    cw.attr("group_name", Ref(f"aws_cloudwatch_log_group.{log_label}.name"))
    cw.attr("status", "ENABLED")
    return p


# checkov's one-year minimum for log retention, and the pipeline field that lowers it
MIN_LOG_RETENTION_DAYS = 365
RETENTION_CHOICE = (
    "CKV_AWS_338",
    ("audit", "log_retention_days"),
    "retention chosen in pipeline.yaml audit.log_retention_days",
)


def choices(ir: IR) -> list[tuple[str, tuple[str, ...], str]]:
    """Policy checks the user's own settings decline: (check, pipeline field, why)."""
    if ir.delivery == "codepipeline" and ir.log_retention_days < MIN_LOG_RETENTION_DAYS:
        return [RETENTION_CHOICE]
    return []


def _log_group(ir: IR, label: str, group: str) -> Block:
    lg = resource("aws_cloudwatch_log_group", label)
    for check, _, why in choices(ir):
        lg.comment(f"checkov:skip={check}: {why}")
    lg.attr("name", group)
    lg.attr("retention_in_days", ir.log_retention_days)
    lg.attr("kms_key_id", Ref("aws_kms_key.cicd.arn"))
    return lg


def _sonar_secret(ir: IR, name: str) -> tuple[tuple[str, str, str], ...]:
    """The SonarQube server and token a build project reads from the secret ``name``."""
    if not ir.security.sast_fail_on:
        return ()
    return (
        ("SONAR_HOST_URL", f"{name}:host_url", "SECRETS_MANAGER"),
        ("SONAR_TOKEN", f"{name}:token", "SECRETS_MANAGER"),
    )


def codebuild(ir: IR) -> list[Block]:
    folder = ir.buildspec_folder
    blocks: list[Block] = []
    # each tier's SonarQube secret, which only its role may read: not in the shared
    # buildspec, whose secrets-manager entries CodeBuild reads with the project's role
    # (the rehearsal's IAM check, tests/rehearsal/iam_calls.py, found the release role
    # reading the dev tier's secret)
    dev_sonar = _sonar_secret(ir, ir.aws.sonar_secret_name)
    release_sonar = _sonar_secret(ir, ir.aws.release_sonar_secret_name)
    for svc in ir.services:
        label = f"build-{svc.name}"
        # one build buildspec for every service: its projects set the service's values
        own = tuple((k, v, "PLAINTEXT") for k, v in build_project_variables(ir, svc).items())
        blocks.append(_log_group(ir, label, svc.build_log_group))
        blocks.append(
            _project(
                ir,
                label,
                svc.build_project,
                f"Build and push {svc.name}",
                f"{folder}/{BUILD_BUILDSPEC}",
                label,
                True,
                ir.build.timeout_minutes,
                ir.build.cache,
                variables=own + dev_sonar,
            )
        )
        if ir.release_branches:  # the same build for approval environments, its own role
            blocks.append(_log_group(ir, f"{label}-release", svc.release_build_log_group))
            blocks.append(
                _project(
                    ir,
                    f"{label}-release",
                    svc.release_build_project,
                    f"Build and push {svc.name} for approval environments (release key)",
                    f"{folder}/{BUILD_BUILDSPEC}",
                    f"{label}-release",  # its own log group: the dev tier cannot write it
                    True,
                    ir.build.timeout_minutes,
                    ir.build.cache,
                    role="codebuild_release",
                    trusted=True,
                    variables=own + release_sonar,
                )
            )
    blocks += _sign_projects(ir)
    for env in ir.environments:
        label = f"deploy-{env.name}"
        waits = [dep.wait_minutes for svc in ir.services for dep in svc.deployments]
        blocks.append(_log_group(ir, label, env.deploy_log_group))
        # one deploy buildspec for every environment: this project sets what differs
        # by environment (the plan's "environment" parameters, its own secrets)
        blocks.append(
            _project(
                ir,
                label,
                env.deploy_project,
                f"Deploy to {env.name}: verify, record the digest in GitOps, wait until healthy",
                f"{folder}/{DEPLOY_BUILDSPEC}",
                label,
                False,
                15 + max(waits, default=0),
                "none",
                role="deploy_" + env.name.replace("-", "_"),  # its own role and secrets
                trusted=True,
                variables=environment_parameters(ir, env.name) + rollback_topic(ir),
            )
        )
        if env.deploy_network:  # it reaches a private Argo CD API from inside the VPC
            vpc_config(blocks[-1], env.deploy_network, "deploy_" + env.name.replace("-", "_"))
    dast = ir.security.dast
    if dast is not None:
        blocks.append(_log_group(ir, "dast", dast.log_group))
        blocks.append(
            _project(
                ir,
                "dast",
                dast.project,
                f"OWASP ZAP scan of {dast.environment}; a pass lets the image on",
                f"{folder}/{DAST_BUILDSPEC}",
                "dast",
                True,
                60,
                "none",
                role="codebuild_dast",
                trusted=True,
                variables=dast_parameters(ir),
            )
        )
    return blocks


def rollback_topic(ir: IR) -> tuple[tuple[str, Any, str], ...]:
    """A manual rollback tells the pipeline topic how it ended (the deploy buildspec's
    rollback-notify.sh): the topic, for the deploy project."""
    if not rollback_notifies(ir):
        return ()
    return (("TOPIC_ARN", Ref("aws_sns_topic.events.arn"), "PLAINTEXT"),)


def sign_label(release: bool) -> str:
    """The sign project of a tier (and its log group)."""
    return "sign-release" if release else "sign"


def signing(ir: IR) -> bool:
    """Whether the pipelines sign (the plan's builds have a signing session)."""
    return bool(ir.services) and bool(ir.plan.build(ir.services[0].name).sign)


def _sign_projects(ir: IR) -> list[Block]:
    """One sign project per build tier: its own role, the only CodePipeline principal that
    may use the tier's key; its buildspec from Terraform, and no branch command runs in
    it (the build session runs the branch's CI steps and Dockerfile: it holds no key)."""
    if not signing(ir):
        return []
    blocks: list[Block] = []
    for tier in ir.plan.build(ir.services[0].name).tiers:
        release = tier.name == "release"
        label = sign_label(release)
        name = ir.aws.release_sign_project if release else ir.aws.sign_project
        blocks.append(_log_group(ir, label, f"/aws/codebuild/{name}"))
        blocks.append(
            _project(
                ir,
                label,
                name,
                f"Check, sign and attest the {tier.name} tier's images (no branch code runs here)",
                f"{ir.buildspec_folder}/{SIGN_BUILDSPEC}",
                label,
                True,  # the SBOM: syft runs as a container
                # and it may wait for the registry's scan of the digest it signs
                30
                + (ir.security.image_scan_timeout_minutes if ir.security.image_scan_fail_on else 0),
                "none",
                role="codebuild_sign_release" if release else "codebuild_sign",
                trusted=True,
                variables=(
                    ("SIGNING_KEY", tier.signing_key, "PLAINTEXT"),
                    ("TAG_PREFIX", tier.tag_prefix, "PLAINTEXT"),
                ),
            )
        )
    return blocks


def environment_parameters(ir: IR, environment: str) -> tuple[tuple[str, str, str], ...]:
    """The deploy project's variables: the plan's parameters that vary by environment only,
    as ``environment`` has them (secrets by their Secrets Manager reference; a switch only
    where it is on, the buildspec says false)."""
    stage = next(s for s in ir.plan.stages if s.environment == environment)
    secrets = {i.name for s in ir.plan.deploy for i in s.step.inputs if i.source == "secret"}
    out = []
    for name in codebuild_parameters(ir, "environment"):
        value = ir.plan.value(stage, name)
        if value and value != "false":
            out.append((name, value, "SECRETS_MANAGER" if name in secrets else "PLAINTEXT"))
    return tuple(out)


def dast_parameters(ir: IR) -> tuple[tuple[str, str, str], ...]:
    """The DAST project's variables: the environment it scans (each service's pipeline
    passes that service's URL, and the buildspec refuses a start without one)."""
    scan = next(s.dast[0] for s in ir.plan.stages if s.dast)
    return (("DAST_ENVIRONMENT", scan.value("DAST_ENVIRONMENT"), "PLAINTEXT"),)
