"""Lower a validated :class:`~pipecompile.model.Pipeline` into the frozen IR.

This is where every rule that spans fields lives (cross-references, canary
order, platform limits) and where every default and derived name is decided.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .. import ir
from ..errors import Diagnostic, Path_, PipelineError, did_you_mean
from .defaults import DEFAULT_STEPS, IN_CLUSTER, SECRET_STORE
from .loader import Document
from .lower_rules import (
    TargetLayout,
    nested_folders,
    rollout_minutes,
    runtime_of,
    service_ci,
)
from .lower_rules import (
    short as _short,
)
from .lower_sections import Sections
from .model import Pipeline
from .plan import key_uri, lower_plan
from .references import GITHUB_ENVIRONMENTS, reserved_message


def _hosts(domain: str | None, service: str, *, first: bool) -> tuple[str, ...]:
    """<service>.<domain>, and the domain itself for the first service."""
    if domain is None:
        return ()
    return (domain, f"{service}.{domain}") if first else (f"{service}.{domain}",)


class _Lowering(Sections):
    def __init__(
        self,
        doc: Document,
        model: Pipeline,
        pins: ir.Pins,
        layout: TargetLayout,
        root: Path | None,
    ) -> None:
        self.doc = doc
        self.layout = layout
        self.m = model
        self.pins = pins
        self.root = root
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self._kinds: dict[str, str] = {}  # path prefix -> link | other | missing
        self.sources: dict[str, str] = {}  # every path named, and where a link leads it
        self._hotfix: tuple[str | None, tuple[str, ...]] = (None, ())

    def err(self, code: str, path: Path_, message: str, *, key: bool = False) -> None:
        self.errors.append(self.doc.error(code, path, message, key=key))

    def warn(self, code: str, path: Path_, message: str, *, key: bool = False) -> None:
        line, col = self.doc.pos(path, key=key)
        d = Diagnostic(self.doc.file, line, col, path, message, severity="warning", code=code)
        self.warnings.append(d)

    def run(self) -> ir.IR:
        """Resolve the model into the IR, one section at a time; errors are collected."""
        model = self.m
        outputs = self.outputs()
        self.deliverer_enabled(outputs)
        strategies = self.strategies()
        envs = self.environments(strategies)
        runtime, steps = self.ci()
        gitops_path = self.rel_path(("gitops", "path"), model.gitops.path, "path")
        facts = self.layout.facts(dict(outputs))
        services = self.services(envs, strategies, gitops_path, facts, (runtime, steps))
        build = self.build()
        security = self.security(envs)
        gitops = self.gitops(gitops_path)
        notifications = self.notifications()
        aws = self.aws_names(notifications.sns_topic)
        secrets = ir.Secrets(
            sonar_token="SONAR_TOKEN" if security.sast_fail_on else None,
            sonar_host_url="SONAR_HOST_URL" if security.sast_fail_on else None,
            slack_webhook="SLACK_WEBHOOK_URL" if notifications.slack_channel else None,
            gitops_credential=None if gitops.repository is None else gitops.credential,
        )
        backend = self.backend()
        rollback = self.rollback()
        if self.errors:
            raise PipelineError(self.errors)
        result = ir.IR(
            pipeline_file=Path(self.doc.file).name,
            project=model.project,
            delivery=model.delivery,
            repository=model.source.repository,
            default_branch=model.source.default_branch,
            environments=tuple(
                dataclasses.replace(env, accepted_keys=self.accepted_keys(env, aws, envs))
                for env in envs
            ),
            chart_source=facts.get(ir.CHART_SOURCE),
            service_values=facts.get(ir.SERVICE_VALUES),
            deploy_branches=tuple(dict.fromkeys(b for e in envs for b in e.includes)),
            release_branches=tuple(
                dict.fromkeys(b for e in envs if e.approval for b in e.includes)
            ),
            hotfix=self._hotfix,
            services=tuple(services),
            runtime=runtime,
            steps=steps,
            build=build,
            security=security,
            gitops=gitops,
            rollback=rollback,
            notifications=notifications,
            deployments_table=model.audit.deployments_table,
            log_retention_days=model.audit.log_retention_days,
            cloudtrail=model.audit.cloudtrail,
            secret_rotation=(
                (model.terraform.secret_rotation.function_arn, model.terraform.secret_rotation.days)
                if model.terraform.secret_rotation
                else None
            ),
            outputs=tuple(outputs),
            buildspec_folder=facts.get(ir.BUILDSPEC_FOLDER, ""),
            buildspecs_generated=ir.BUILDSPECS_GENERATED in facts,
            aws=aws,
            github_oidc_provider=model.aws.github_oidc_provider,
            texts=self.texts(),
            backend=backend,
            secrets=secrets,
            secret_store=SECRET_STORE,
            pins=self.pins,
            warnings=(),
            sources=tuple(sorted(self.sources.items())),
        )
        self.shared_gitops(result)
        result = dataclasses.replace(result, warnings=tuple(self.warnings))
        # the deploy plan: the delivery lowered once, for every orchestrator
        return dataclasses.replace(result, plan=lower_plan(result))

    @staticmethod
    def accepted_keys(
        env: ir.Environment, aws: ir.AwsNames, envs: list[ir.Environment]
    ) -> tuple[str, ...]:
        """The signing keys an environment admits: an approval environment only the
        release key; the others the development key, and the release key too when a
        release tier exists (an image released to staging may come back down)."""
        release = key_uri(aws.release_key_alias)  # the plan's contract: awskms:///alias/...
        if env.approval:
            return (release,)
        dev = key_uri(aws.signing_key_alias)
        return (release, dev) if any(e.approval and e.includes for e in envs) else (dev,)

    def deliverer_enabled(self, outputs: list[tuple[str, str]]) -> None:
        """The orchestrator named by ``delivery`` must be generated."""
        delivery = self.m.delivery
        needed = self.layout.deliverer(delivery)
        if needed is not None and needed not in dict(outputs):
            self.warn(
                "PC304",
                ("delivery",) if "delivery" in self.m.model_fields_set else ("outputs",),
                f"delivery is {delivery}, but the {needed} output that generates it is off: "
                "nothing generated here delivers; turn it on"
                + (", or set delivery: github-actions" if delivery == "codepipeline" else ""),
            )

    def environments(self, strategies: dict[str, ir.Strategy]) -> list[ir.Environment]:
        """The environments in promotion order, with their names and branch patterns."""
        project = self.m.project
        envs: list[ir.Environment] = []
        names = list(self.m.environments)
        dast = self.m.security.dast
        # an unknown DAST environment is reported by security(); then nothing is gated
        dast_index = names.index(dast.environment) if dast and dast.environment in names else None
        hotfix_env, hotfix_branches = self._hotfix = self.hotfix_route()
        for index, (name, env) in enumerate(self.m.environments.items()):
            where: Path_ = ("environments", name)
            namespace = env.namespace or f"{project}-{name}"
            if env.namespace is None and len(namespace) > 63:
                self.err(
                    "PC205",
                    where,
                    f"the default namespace '{namespace}' is longer than 63 "
                    "characters; set 'namespace'",
                    key=True,
                )
            if self.m.delivery != "codepipeline" and name in GITHUB_ENVIRONMENTS:
                self.err("PC213", where, reserved_message(name), key=True)
            self.strategy_ref((*where, "strategy"), env.strategy, strategies)
            includes = [b for b in env.branches if not b.startswith("!")]
            excludes = [b[1:] for b in env.branches if b.startswith("!")]
            if name == hotfix_env:  # hotfixes follow the release path (LANGUAGE.md 1.2)
                includes += [b for b in hotfix_branches if b not in includes]
            if not includes:
                self.err(
                    "PC107",
                    (*where, "branches"),
                    "needs at least one branch pattern that is not a '!' exclusion",
                )
            literal = [b for b in includes if not re.search(r"[*?\[\]+!]", b)]
            envs.append(
                ir.Environment(
                    name=name,
                    index=index,
                    branches=tuple(env.branches)
                    + (tuple(hotfix_branches) if name == hotfix_env else ()),
                    includes=tuple(includes),
                    excludes=tuple(excludes),
                    approval=env.approval,
                    namespace=namespace,
                    cluster=env.cluster,
                    url=env.url,
                    deploy_project=f"{project}-{name}-deploy",
                    deploy_log_group=f"/aws/codebuild/{project}-{name}-deploy",
                    # a manual "Release change" builds BranchName (CodePipeline user guide,
                    # pipelines-filter); where only patterns deploy here, the pattern
                    # itself: git refuses it as a branch, so a manual start without a
                    # source revision override fails at Source instead of building
                    # another branch (never the default branch into this environment)
                    manual_start_branch=literal[0] if literal else (includes or [""])[0],
                    github_role_name=_short(f"{project}-deploy-{name}", 64),
                    github_role_arn=f"arn:aws:iam::{self.m.aws.account_id}:role/"
                    + _short(f"{project}-deploy-{name}", 64),
                    codebuild_role_name=_short(f"{project}-codebuild-deploy-{name}", 64),
                    gitops_secret_name=f"{project}/{name}/gitops-credential",
                    argocd_secret_name=f"{project}/{name}/argocd",
                    argocd_project=_short(f"{project}-{name}", 63),
                    sync=env.sync,
                    sync_window=(env.sync_window.schedule, env.sync_window.duration)
                    if env.sync_window
                    else None,
                    dast=index == dast_index,
                    after_dast=dast_index is not None and index > dast_index,
                    approver_role_name=_short(f"{project}-approve-{name}", 64),
                    approval_topic=f"{project}-{name}-approvals",
                    approvers=tuple(env.approvers),
                    # default: one role of that name, which the operator creates (or
                    # not: then nobody approves); never the account as a whole
                    approver_principals=tuple(env.approver_principals)
                    or (
                        (
                            f"arn:aws:iam::{self.m.aws.account_id}:role/"
                            + _short(f"{project}-{name}-approvers", 64),
                        )
                        if env.approval
                        else ()
                    ),
                    approver_variable="approvers_" + name.replace("-", "_"),
                    gitops_repository=env.gitops.repository
                    if env.gitops
                    else self.m.gitops.repository,
                    gitops_revision=(env.gitops.revision if env.gitops else None)
                    or self.m.gitops.revision,
                    eks_cluster=env.eks_cluster
                    or (project if env.cluster == IN_CLUSTER else f"{project}-{name}"),
                    kube_context=f"{project}-{name}",
                    deploy_network=self.deploy_network(name, env),
                    **self.environment_access(name, env),
                )
            )
        return envs

    def deploy_network(self, name: str, env: Any) -> ir.DeployNetwork | None:
        """The deploy project's VPC (CodePipeline only: a GitHub deploy job runs on its
        runner, whose network is the runner's own)."""
        net = env.deploy_network
        if net is None:
            return None
        if self.m.delivery != "codepipeline":
            self.warn(
                "PC304",
                ("environments", name, "deploy_network"),
                f"delivery is {self.m.delivery}: deploy_network places only CodePipeline's "
                "deploy projects in a VPC, so it changes nothing here (a GitHub deploy job "
                "reaches a private Argo CD API from a self-hosted runner inside the VPC); "
                "remove it, or set delivery: codepipeline",
                key=True,
            )
            return None
        return ir.DeployNetwork(net.vpc_id, tuple(net.subnets), tuple(net.security_groups))

    def environment_access(self, name: str, env: Any) -> dict[str, Any]:
        """How the environment is reached (its ALB) and which secrets it may read."""
        project, account = self.m.project, self.m.aws.account_id
        exp = env.exposure
        scheme: Literal["internal", "internet-facing"] = exp.scheme or (
            "internet-facing" if env.approval else "internal"
        )
        domain = exp.domain or (urlsplit(env.url).hostname if env.url else None)
        role = _short(f"{project}-{name}-secrets", 64)
        prefix = env.secret_prefix or f"{project}/{name}/services/"
        deployer = [
            f"{project}/{e}/{kind}"
            for e in self.m.environments
            for kind in ("gitops-credential", "argocd")
        ] + [f"{project}/sonarqube", f"{project}/sonarqube-release"]
        covered = [d for d in deployer if d.startswith(prefix)]
        if covered:
            self.err(
                "PC207",
                ("environments", name, "secret_prefix"),
                f"'{prefix}' would let the services' secret stores read {covered[0]} "
                "(a deploy credential); choose a prefix such as "
                f"'{project}/{name}/services/'",
            )
        return {
            "exposure": ir.Exposure(
                scheme, exp.certificate_arn, domain, _short(f"{project}-{name}", 63)
            ),
            # not <project>/<env>/ itself: the deployer's GitOps and Argo CD secrets
            # live there, and a pod's store must not read them
            "secret_prefix": prefix,
            "secret_store": SECRET_STORE
            if env.secret_store == "cluster"
            else ir.SecretStore("SecretStore", "secrets"),
            "secrets_role_name": role,
            "secrets_role_arn": f"arn:aws:iam::{account}:role/{role}",
        }

    def ci(self) -> tuple[ir.Runtime, tuple[ir.Step, ...]]:
        """The runtime, and the steps written or the runtime's default steps."""
        ci = self.m.ci
        runtime = runtime_of(ci.runtime)
        if ci.steps is not None:
            return runtime, tuple(ir.Step(step.name, step.run) for step in ci.steps)
        return runtime, tuple(ir.Step(n, r) for n, r in DEFAULT_STEPS[runtime.language])

    def services(
        self,
        envs: list[ir.Environment],
        strategies: dict[str, ir.Strategy],
        gitops_path: str,
        facts: dict[str, str],
        ci: tuple[ir.Runtime, tuple[ir.Step, ...]],
    ) -> list[ir.Service]:
        """Every service with its deployments (one per environment) and derived names."""
        model = self.m
        project = model.project
        registry = f"{model.aws.account_id}.dkr.ecr.{model.aws.region}.amazonaws.com"
        env_names = [e.name for e in envs]
        services: list[ir.Service] = []
        images: dict[str, str] = {}
        app_names: dict[str, str] = {}
        for name, svc in model.services.items():
            where: Path_ = ("services", name)
            image = svc.image or f"{project}/{name}"
            if image in images:
                self.err(
                    "PC202",
                    (*where, "image") if svc.image else where,
                    f"image '{image}' is already used by service '{images[image]}'",
                    key=svc.image is None,
                )
            images.setdefault(image, name)
            values = facts.get(ir.SERVICE_VALUES)  # a folder per service, "{service}" in it
            values_source = ir.values_source(values, name) if values else None
            path = self.rel_path((*where, "path"), svc.path, "path")
            dockerfile = self.rel_path(
                (*where, "dockerfile"), posixpath.join(path, svc.dockerfile), "path"
            )
            if isinstance(svc.replicas, dict):
                for env_name in svc.replicas:
                    if env_name not in env_names:
                        self.err(
                            "PC201",
                            (*where, "replicas", env_name),
                            f"unknown environment '{env_name}'{did_you_mean(env_name, env_names)}"
                            f"; known: {', '.join(env_names)}",
                            key=True,
                        )
            own_strategy = (
                self.strategy_ref((*where, "strategy"), svc.strategy, strategies)
                if svc.strategy
                else None
            )
            deployments = []
            for env in envs:
                replicas = (
                    svc.replicas.get(env.name, 1)
                    if isinstance(svc.replicas, dict)
                    else svc.replicas
                )
                strategy = own_strategy or strategies.get(
                    model.environments[env.name].strategy, strategies["rolling"]
                )
                self.cloudwatch_fits(name, env.name, strategy)
                app = ir.app_name(name, env.name)
                if app in app_names:
                    self.err(
                        "PC202",
                        where,
                        f"Argo CD application name '{app}' is also produced by "
                        f"{app_names[app]}; rename the service or the environment",
                        key=True,
                    )
                app_names.setdefault(app, f"service '{name}' in '{env.name}'")
                pipeline_name = f"{project}-{name}-{env.name}"
                deployments.append(
                    ir.Deployment(
                        service=name,
                        environment=env.name,
                        replicas=replicas,
                        strategy=strategy,
                        namespace=env.namespace,
                        cluster=env.cluster,
                        app_name=app,
                        pipeline_name=pipeline_name,
                        notification_rule_name=_short(pipeline_name, 64),
                        values_file=f"{name}/values-{env.name}.yaml",
                        image_tag_file=f"{name}/image-{env.name}.yaml",
                        wait_minutes=rollout_minutes(strategy),
                        gitops_dir=ir.gitops_dir(gitops_path, name, env.name),
                        hosts=_hosts(env.exposure.domain, name, first=not services),
                        preview_host=f"{name}-preview.{env.exposure.domain}"
                        if env.exposure.domain and strategy.kind == "blue-green"
                        else None,
                        secret_keys=tuple(
                            (secret, env.secret_prefix + secret.removeprefix(f"{project}/"))
                            for secret in svc.secrets
                        ),
                    )
                )
            services.append(
                ir.Service(
                    name=name,
                    image=image,
                    image_uri=ir.image_uri(registry, image),
                    path=path,
                    dockerfile=dockerfile,
                    port=svc.port,
                    secrets=tuple(svc.secrets),
                    deployments=tuple(deployments),
                    build_project=f"{project}-{name}-build",
                    release_build_project=f"{project}-{name}-build-release",
                    release_image=f"{image}-release",
                    release_image_uri=ir.image_uri(registry, f"{image}-release"),
                    build_log_group=f"/aws/codebuild/{project}-{name}-build",
                    release_build_log_group=f"/aws/codebuild/{project}-{name}-build-release",
                    scan_report_group=f"{project}-{name}-build-ecr-image-scan",
                    # its folder, its values and the chart (a change there deploys it again)
                    trigger_includes=()
                    if path == "."
                    else (
                        f"{path}/**",
                        *(f"{values}/**" for values in [values_source] if values),
                        *(f"{chart}/**" for chart in [facts.get(ir.CHART_SOURCE)] if chart),
                    ),
                    trigger_excludes=(),  # set below, once every path is known
                    chart_path=posixpath.join(gitops_path, name),
                    values_source=values_source,
                    runtime=(own := service_ci(svc, ci))[0],
                    steps=own[1],
                    local_port=svc.local_port or svc.port,
                )
            )
        return [
            dataclasses.replace(svc, trigger_excludes=nested_folders(svc, services))
            for svc in services
        ]


def lower(
    doc: Document,
    model: Pipeline,
    pins: ir.Pins,
    layout: TargetLayout,
    root: Path | None = None,
) -> ir.IR:
    """Resolve ``model`` into the IR; ``root`` (the pipeline's folder) enables symlink checks.

    ``layout`` is the targets' side (the registry's, passed in by
    :mod:`pipecompile.compiler`): their default folders, which one generates the
    delivery, which follow which, and the facts they publish for each other.
    Lowering imports no target and names none."""
    return _Lowering(doc, model, pins, layout, root).run()
