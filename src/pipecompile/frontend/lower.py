"""Lower a validated :class:`~pipecompile.model.Pipeline` into the frozen IR.

This is where every rule that spans fields lives (cross-references, canary
order, platform limits) and where every default and derived name is decided.
The sections are mixins: :mod:`.lower_rules` (the rules), :mod:`.lower_sections` (the
settings), :mod:`.lower_environments` (the environments); this module holds the services
and puts the IR together.
"""

from __future__ import annotations

import dataclasses
import posixpath
from pathlib import Path

from .. import ir
from ..errors import Diagnostic, Path_, PipelineError, did_you_mean
from .defaults import DEFAULT_STEPS, SECRET_STORE
from .loader import Document
from .lower_environments import Environments
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
from .model import Pipeline
from .plan import lower_plan


def _hosts(domain: str | None, service: str, *, first: bool) -> tuple[str, ...]:
    """<service>.<domain>, and the domain itself for the first service."""
    if domain is None:
        return ()
    return (domain, f"{service}.{domain}") if first else (f"{service}.{domain}",)


class _Lowering(Environments):
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
        self.repository_ids_used()
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
            repository_ids=None
            if model.source.repository_ids is None
            else (model.source.repository_ids.owner, model.source.repository_ids.repository),
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

    def repository_ids_used(self) -> None:
        """source.repository_ids names the OIDC subject of GitHub delivery's roles only."""
        if self.m.source.repository_ids is not None and self.m.delivery == "codepipeline":
            self.warn(
                "PC304",
                ("source", "repository_ids"),
                "delivery is codepipeline: repository_ids names the OIDC subject that "
                "GitHub delivery's roles trust, and no role here is assumed with a GitHub "
                "token, so it changes nothing; remove it, or deliver with GitHub Actions",
                key=True,
            )

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
