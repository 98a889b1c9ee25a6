"""CodeBuild projects and the V2 CodePipelines (one per service x environment)."""

from __future__ import annotations

import posixpath
from typing import Any

from ...ir import IR, Deployment, Service
from ...serialize.hcl import Block, Call, Ref, Template
from ..common import (
    BUILD_BUILDSPEC,
    DAST_BUILDSPEC,
    DEPLOY_BUILDSPEC,
    SIGN_BUILDSPEC,
    build_project_variables,
    build_values,
    codebuild_parameters,
    rollback_notifies,
    sonar_key,
)
from .blocks import (
    aws_constants,
    pipeline_label,
    resource,
)
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


def _build_configuration(ir: IR, svc: Service, release: bool) -> dict[str, Any]:
    """An approval environment's pipeline builds with the release project: its own role,
    the release key, rel-<tree> tags (a dev build's image is never released)."""
    if not release:
        return {"ProjectName": Ref(f"aws_codebuild_project.build-{svc.name}.name")}
    plan = ir.plan.build(svc.name)
    tier = next(t for t in plan.tiers if t.name == "release")
    # the plan's tier inputs (TAG_PREFIX, the release repository, the release key, ...)
    tiered = {i.name: i.value for s in plan.steps for i in s.inputs if i.source == "tier"}
    values = {name: getattr(tier, field) for name, field in tiered.items()}
    secrets = {}
    if ir.security.sast_fail_on:  # the release tier's own SonarQube token and project
        name = ir.aws.release_sonar_secret_name
        secrets = {"SONAR_HOST_URL": f"{name}:host_url", "SONAR_TOKEN": f"{name}:token"}
        values["SONAR_PROJECT_KEY"] = sonar_key(ir, svc.name, True)
    return {
        "ProjectName": Ref(f"aws_codebuild_project.build-{svc.name}-release.name"),
        "EnvironmentVariables": environment_variables(
            {k: v for k, v in values.items() if v}, secrets
        ),
    }


def _approved_repository(ir: IR, svc: Service) -> str:
    """The repository an approval environment's build pushes to (the release tier's)."""
    tiers = ir.plan.build(svc.name).tiers
    return next((t for t in tiers if t.name == "release"), tiers[0]).repository


def _scan_link(ir: IR, svc: Service) -> str:
    r, a = ir.aws.region, ir.aws.account_id
    repo = _approved_repository(ir, svc)
    return f"https://{r}.console.aws.amazon.com/ecr/repositories/private/{a}/{repo}?region={r}"


BUILD_NAMESPACE = "BuildVariables"
SIGN_NAMESPACE = "SignVariables"


def image_namespace(ir: IR) -> str:
    """Where the later actions read the image: the Sign action's variables when it runs
    (it found the tag and digest itself and exports them checked by pattern), never the
    build's: the build session runs the branch's code and CodePipeline pastes its exported
    values into the EnvironmentVariables JSON as plain text (a quote in a value adds
    variables; aws-cdk issues #8458, #31213).  Without signing the build's, which each
    consumer's buildspec checks by pattern (see README, "Not refused yet")."""
    return SIGN_NAMESPACE if signing(ir) else BUILD_NAMESPACE


def _image(ir: IR) -> dict[str, str]:
    ns = image_namespace(ir)
    return {"IMAGE_TAG": f"#{{{ns}.IMAGE_TAG}}", "IMAGE_DIGEST": f"#{{{ns}.IMAGE_DIGEST}}"}


def _approval_text(ir: IR, svc: Service, environment: str) -> str:
    """What the approver reads (CodePipeline's approval page and the SNS message): the
    image, and where the scan gate's findings are (issue 29, item 9)."""
    image = _image(ir)
    text = (
        f"Approve deploying {svc.name} to {environment}: image {image['IMAGE_TAG']} "
        f"({image['IMAGE_DIGEST']})."
    )
    if ir.security.image_scan_fail_on and signing(ir):
        # the Sign action's gate read them (the build session, which runs the branch's
        # code, has none: it could fake it)
        project = ir.aws.release_sign_project if ir.release_branches else ir.aws.sign_project
        text += (
            " Its scan findings: the link (ECR, the image's vulnerabilities) and the Sign "
            f"action's report (CodeBuild report group {project}-ecr-image-scan)."
        )
    elif ir.security.image_scan_fail_on:
        project = svc.release_build_project if ir.release_branches else svc.build_project
        text += (
            " Its scan findings: the link (ECR, the image's vulnerabilities) and the Build "
            f"action's report (CodeBuild report group {project}-ecr-image-scan)."
        )
    return text


def deploy_variables(ir: IR, svc: Service, dep: Deployment) -> dict[str, str]:
    """What the pipeline passes its Deploy action: the plan's parameters that vary by
    service, and the build's image (one configuration value, 1000 characters in all)."""
    stage = ir.plan.stage(svc.name, dep.environment)
    out = {}
    for name in codebuild_parameters(ir, "deployment"):
        value = ir.plan.value(stage, name)
        if value:  # only when set: a switch that is off, an empty value stay out
            out[name] = value
    out.update(_image(ir))
    # the buildspec derives PIPELINE_NAME from CODEBUILD_INITIATOR (codepipeline/<name>)
    out["PIPELINE_EXECUTION_ID"] = "#{codepipeline.PipelineExecutionId}"
    return out


def sign_variables(ir: IR, svc: Service, release: bool) -> dict[str, str]:
    """What the Sign action passes its tier's sign project: the service's values and who
    built it (the provenance's builder, and the pipeline's execution as its invocation: a
    CodePipeline variable, not the build's).  Nothing of the build action's: the project
    finds the tag and digest itself (verify-build.sh)."""
    tiers = ir.plan.build(svc.name).tiers
    tier = next((t for t in tiers if t.name == ("release" if release else "dev")), tiers[0])
    project = svc.release_build_project if tier.name == "release" else svc.build_project
    r, a = ir.aws.region, ir.aws.account_id
    return {
        "IMAGE_URI": tier.image_uri,
        "SERVICE_PATH": svc.path,
        "IMAGE_EXCLUDES": build_values(ir, svc)["IMAGE_EXCLUDES"],
        "BUILDER_ID": f"arn:aws:codebuild:{r}:{a}:project/{project}",
        "BUILD_INVOCATION": "#{codepipeline.PipelineExecutionId}",
    }


def dast_variables(ir: IR, svc: Service, dep: Deployment) -> dict[str, str]:
    """What the DAST action passes: the service's URL (its own Ingress host), and the
    image it scans and marks."""
    _, uri = ir.image_of(svc, ir.environment(dep.environment))
    scan = ir.plan.stage(svc.name, dep.environment).dast[0]
    out = {
        "DAST_URL": scan.value("DAST_URL"),
        "IMAGE_URI": uri,  # the buildspec derives ECR_REPOSITORY from it
        **_image(ir),
    }
    if ir.deployments_table:  # dast-mark.sh checks the environment's newest deploy of it
        out["SERVICE"] = svc.name
    return out


def environment_variables(values: dict[str, str], secrets: dict[str, str] | None = None) -> Call:
    """A CodeBuild action's EnvironmentVariables: ``jsonencode`` of data, every value an
    escaped HCL string (a pipeline value never becomes Terraform code). ``secrets``:
    Secrets Manager references (secret:json-key), which override the buildspec's own
    (a start-build value takes precedence over the buildspec's)."""
    rows = [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in values.items()]
    rows += [{"name": k, "value": v, "type": "SECRETS_MANAGER"} for k, v in (secrets or {}).items()]
    return Call("jsonencode", (rows,))


def encoded_length(variables: dict[str, str]) -> int:
    """The length of the value terraform's jsonencode() gives CodePipeline: keys sorted,
    no spaces, and <, >, & escaped as \\u003c, \\u003e, \\u0026 (Terraform's
    jsonencode documentation)."""
    import json

    text = json.dumps(
        [{"name": k, "type": "PLAINTEXT", "value": v} for k, v in variables.items()],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return len(text) + 5 * sum(text.count(c) for c in "<>&")


def _pipeline(ir: IR, svc: Service, dep: Deployment) -> Block:
    env = ir.environment(dep.environment)
    p = resource("aws_codepipeline", pipeline_label(ir, dep))
    p.attr("name", dep.pipeline_name)
    p.attr("role_arn", Ref("aws_iam_role.codepipeline.arn"))
    p.attr("pipeline_type", "V2")
    p.attr("execution_mode", "QUEUED")
    store = p.block("artifact_store")
    # an approval environment's artifacts: the release bucket, out of the dev tier's reach
    store.attr("location", Ref(f"aws_s3_bucket.{bucket_label(env.approval)}.bucket"))
    store.attr("type", "S3")
    key = store.block("encryption_key")
    key.attr("id", Ref("aws_kms_key.cicd.arn"))
    key.attr("type", "KMS")
    trig = p.block("trigger")
    trig.attr("provider_type", "CodeStarSourceConnection")
    git = trig.block("git_configuration")
    git.attr("source_action_name", "Source")
    push = git.block("push")
    br = push.block("branches")
    br.attr("includes", list(env.includes))
    excludes = list(env.excludes)
    if excludes:
        br.attr("excludes", excludes)
    if svc.trigger_includes or svc.trigger_excludes:
        # path isolation: other services' folders inside this one never start it
        paths = push.block("file_paths")
        paths.attr("includes", list(svc.trigger_includes or ("**",)))
        if svc.trigger_excludes:
            paths.attr("excludes", list(svc.trigger_excludes))

    def action(stage_name: str, **attrs: Any) -> Block:
        st = p.block("stage")
        st.attr("name", stage_name)
        a = st.block("action")
        config = attrs.pop("configuration")
        for k, v in attrs.items():
            a.attr(k, v)
        a.attr("configuration", config)
        return a

    action(
        "Source",
        name="Source",
        category="Source",
        owner="AWS",
        provider="CodeStarSourceConnection",
        version="1",
        output_artifacts=["source_output"],
        configuration={
            "ConnectionArn": Ref("aws_codestarconnections_connection.github.arn"),
            "FullRepositoryId": ir.repository,
            "BranchName": env.manual_start_branch,
            # a git clone: the build keys the image by the service folder's tree hash
            "OutputArtifactFormat": "CODEBUILD_CLONE_REF",
        },
    )
    action(
        "Build",
        name="Build",
        category="Build",
        owner="AWS",
        provider="CodeBuild",
        version="1",
        input_artifacts=["source_output"],
        output_artifacts=["image_output"],
        namespace=BUILD_NAMESPACE,
        configuration=_build_configuration(ir, svc, env.approval),
    )
    if signing(ir):  # in a session of its own: the build ran the branch's commands
        release = env.approval and bool(ir.release_branches)
        action(
            "Sign",
            name="Sign",
            category="Build",
            owner="AWS",
            provider="CodeBuild",
            version="1",
            input_artifacts=["source_output"],  # the same clone: its tree keys the image
            namespace=SIGN_NAMESPACE,
            configuration={
                "ProjectName": Ref(f"aws_codebuild_project.{sign_label(release)}.name"),
                "EnvironmentVariables": environment_variables(sign_variables(ir, svc, release)),
            },
        )
    if env.approval:
        action(
            "Approval",
            name="Approve",
            category="Approval",
            owner="AWS",
            provider="Manual",
            version="1",
            configuration={
                # its approvers are subscribed there; only its approver role may approve
                "NotificationArn": Ref(f"aws_sns_topic.approvals_{env.name.replace('-', '_')}.arn"),
                "CustomData": _approval_text(ir, svc, env.name),
                # the image's scan findings in the ECR console (its Vulnerabilities)
                "ExternalEntityLink": _scan_link(ir, svc),
            },
        )
    variables = environment_variables(deploy_variables(ir, svc, dep))
    action(
        "Deploy",
        name="Deploy",
        category="Build",
        owner="AWS",
        provider="CodeBuild",
        version="1",
        input_artifacts=["source_output"],
        configuration={
            "ProjectName": Ref(f"aws_codebuild_project.deploy-{env.name}.name"),
            "EnvironmentVariables": variables,
        },
    )
    if ir.plan.stage(svc.name, env.name).dast:  # the plan's DAST, after the deploy
        action(
            "Dast",
            name="OwaspZap",
            category="Build",
            owner="AWS",
            provider="CodeBuild",
            version="1",
            input_artifacts=["source_output"],
            configuration={
                "ProjectName": Ref("aws_codebuild_project.dast.name"),
                "EnvironmentVariables": environment_variables(dast_variables(ir, svc, dep)),
            },
        )
    return p


def codepipeline(ir: IR) -> list[Block]:
    conn = resource("aws_codestarconnections_connection", "github")
    conn.comment(
        "Created PENDING: confirm it once in the AWS console (Developer Tools > Connections)."
    )
    conn.attr("name", ir.aws.connection_name)
    conn.attr("provider_type", "GitHub")
    blocks = [conn]
    for svc in ir.services:
        for dep in svc.deployments:
            blocks.append(_pipeline(ir, svc, dep))
    return blocks
