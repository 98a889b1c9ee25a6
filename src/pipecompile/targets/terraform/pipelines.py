"""The V2 CodePipelines (codepipeline.tf, one per service x environment): their stages
and actions, and the values each action passes its CodeBuild project (the
EnvironmentVariables JSON and its encoded length).  The projects they run are in
:mod:`.build_projects`."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Deployment, Service
from ...serialize.hcl import Block, Call, Ref
from ..common import build_values, codebuild_parameters, sonar_key
from .blocks import pipeline_label, resource
from .build_projects import sign_label, signing
from .iam import bucket_label


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
    if ir.security.sast_fail_on:
        # the release tier's own SonarQube project; its server and token are the release
        # project's own variables (build_projects.py: the release secret, which only its
        # role may read), which no value here overrides
        values["SONAR_PROJECT_KEY"] = sonar_key(ir, svc.name, True)
    return {
        "ProjectName": Ref(f"aws_codebuild_project.build-{svc.name}-release.name"),
        "EnvironmentVariables": environment_variables({k: v for k, v in values.items() if v}),
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


def environment_variables(values: dict[str, str]) -> Call:
    """A CodeBuild action's EnvironmentVariables: ``jsonencode`` of data, every value an
    escaped HCL string (a pipeline value never becomes Terraform code).  Plain text only:
    a secret a build reads is its project's own variable, read with its project's role."""
    rows = [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in values.items()]
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
