"""Lower a validated :class:`~pipecompile.model.Pipeline` into the frozen IR.

This is where every rule that spans fields lives (cross-references, canary
order, platform limits) and where every default and derived name is decided.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import Literal

from . import ir
from .errors import Diagnostic, Path_, PipelineError, did_you_mean
from .loader import Document
from .model import DEFAULT_OUTPUTS, TARGET_NAMES, Compute, Pipeline

# CodeBuild on-demand Linux compute types: (name, vCPU, GiB), smallest first.
COMPUTE_TYPES = (
    ("BUILD_GENERAL1_SMALL", 2, 4),
    ("BUILD_GENERAL1_MEDIUM", 4, 8),
    ("BUILD_GENERAL1_LARGE", 8, 16),
    ("BUILD_GENERAL1_XLARGE", 36, 72),
    ("BUILD_GENERAL1_2XLARGE", 72, 144),
)

DEFAULT_STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "node": (
        ("Install dependencies", "npm ci"),
        ("Lint code", "npm run lint"),
        ("Run unit tests", "npm run test"),
    ),
    "python": (
        ("Install dependencies", "python -m pip install -r requirements.txt"),
        ("Lint code", "python -m ruff check ."),
        ("Run unit tests", "python -m pytest"),
    ),
    "java": (
        ("Install dependencies", "./mvnw -B dependency:go-offline"),
        ("Lint code", "./mvnw -B checkstyle:check"),
        ("Run unit tests", "./mvnw -B test"),
    ),
    "go": (
        ("Install dependencies", "go mod download"),
        ("Lint code", "go vet ./..."),
        ("Run unit tests", "go test ./..."),
    ),
}

BUILTIN_CANARY = (ir.CanaryStep(10, "5m"), ir.CanaryStep(50, "5m"), ir.CanaryStep(100, None))

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def duration_ms(text: str) -> int:
    """``"10m"`` -> 600000."""
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h)?", text)
    assert m, text  # the model's pattern guarantees the shape
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def _short(name: str, limit: int) -> str:
    """``name`` if it fits, else a prefix and a stable hash that keep it unique."""
    if len(name) <= limit:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def compute_type(vcpu: int, memory_gb: int) -> tuple[str, int, int]:
    for name, cpus, mem in COMPUTE_TYPES:
        if cpus >= vcpu and mem >= memory_gb:
            return name, cpus, mem
    return COMPUTE_TYPES[-1]  # pragma: no cover - the model caps vcpu/memory at the largest


class _Lowering:
    def __init__(self, doc: Document, model: Pipeline, pins: ir.Pins, root: Path | None) -> None:
        self.doc = doc
        self.m = model
        self.pins = pins
        self.root = root
        self.errors: list[Diagnostic] = []
        self.warnings: list[str] = []
        self._kinds: dict[str, str] = {}  # path prefix -> link | other | missing

    def err(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.errors.append(self.doc.error(path, message, key=key))

    def warn(self, path: Path_, message: str) -> None:
        line, col = self.doc.pos(path)
        d = Diagnostic(self.doc.file, line, col, path, message, severity="warning")
        self.warnings.append(str(d))

    # -- paths -----------------------------------------------------------------------------
    def rel_path(self, path: Path_, value: str, what: str) -> str:
        """Normalise a path inside the root; report one that escapes it."""
        if value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value) or "\\" in value:
            self.err(
                path,
                f"'{value}' must be a relative {what} using '/' inside the folder "
                "holding the pipeline file",
            )
            return "."
        norm = posixpath.normpath(value)
        if norm == ".." or norm.startswith("../"):
            self.err(path, f"'{value}' points outside the folder holding the pipeline file")
            return "."
        if self.root is not None and norm != "." and self._through_link(norm):
            real_root = self.root.resolve()
            target = (self.root / norm).resolve()
            if target != real_root and real_root not in target.parents:
                self.err(
                    path,
                    f"'{value}' resolves outside the folder holding the pipeline "
                    f"file (through a symbolic link, to {target})",
                )
                return "."
        return norm

    def output_folder(self, path: Path_, value: str) -> str | None:
        """A folder pipecompile may own: inside the root, not the root, not in .git or
        .pipecompile, and reached without a symbolic link (writes never follow one)."""
        from .output.paths import folder_problem

        reported = len(self.errors)
        norm = self.rel_path(path, value, "folder")
        if len(self.errors) > reported:
            return None
        problem = folder_problem(norm)
        if norm == ".":
            problem = "is the folder holding the pipeline file itself; name a subfolder"
        if problem is None and self.root is not None:
            link = self._link_in(norm)
            if link is not None:
                problem = (
                    f"is reached through the symbolic link '{link}'; pipecompile writes "
                    "only into real folders (replace the link by a folder)"
                )
        if problem is not None:
            self.err(path, f"'{value}' {problem}")
            return None
        return norm

    def _link_in(self, norm: str) -> str | None:
        """The first component of ``root/norm`` that is a symbolic link, if any."""
        prefix = ""
        for part in norm.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            if self._through_link(prefix):
                return prefix
        return None

    def _through_link(self, norm: str) -> bool:
        """Whether an existing part of ``root/norm`` is a symbolic link.

        Only then can a normalised relative path lead outside the root.  One
        lstat per distinct prefix, cached: a thousand services share 'services/'.
        """
        assert self.root is not None
        base = str(self.root)
        prefix = ""
        for part in norm.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            kind = self._kinds.get(prefix)
            if kind is None:
                try:
                    mode = os.lstat(os.path.join(base, prefix)).st_mode
                    kind = "link" if stat.S_ISLNK(mode) else "other"
                except OSError:
                    kind = "missing"
                self._kinds[prefix] = kind
            if kind == "link":
                return True
            if kind == "missing":  # nothing below a missing folder exists
                return False
        return False

    # -- strategies ------------------------------------------------------------------------
    def strategies(self) -> dict[str, ir.Strategy]:
        out: dict[str, ir.Strategy] = {
            "rolling": ir.Strategy("rolling", "rolling"),
            "canary": ir.Strategy("canary", "canary", steps=BUILTIN_CANARY),
            "blue-green": ir.Strategy("blue-green", "blue-green", auto_promote=False),
        }
        for name, s in self.m.strategies.items():
            p: Path_ = ("strategies", name)
            if name == "rolling":
                self.err(p, "'rolling' is built in and takes no parameters", key=True)
                continue
            kind = s.type or (name if name in ("canary", "blue-green") else None)
            if kind is None:
                self.err(
                    p,
                    f"custom strategy '{name}' needs 'type: canary' or 'type: blue-green'",
                    key=True,
                )
                continue
            if name in ("canary", "blue-green") and s.type and s.type != name:
                self.err((*p, "type"), f"strategy '{name}' cannot have type '{s.type}'")
                continue
            if kind == "canary":
                for field in ("auto_promote", "preview_replicas", "scale_down_delay"):
                    if getattr(s, field) is not None:
                        self.err(
                            (*p, field),
                            f"'{field}' is a blue-green setting; a canary takes 'steps'",
                            key=True,
                        )
                if not s.steps:
                    self.err(p, "a canary strategy needs 'steps' (a list of {weight, pause})")
                    continue
                prev = 0
                for i, step in enumerate(s.steps):
                    if step.weight < prev:
                        self.err(
                            (*p, "steps", i, "weight"),
                            f"canary weight {step.weight} is below the previous step's "
                            f"{prev}; a canary never goes backwards",
                        )
                    prev = max(prev, step.weight)
                steps = tuple(ir.CanaryStep(st.weight, st.pause) for st in s.steps)
                out[name] = ir.Strategy(name, "canary", steps=steps)
            else:
                if s.steps is not None:
                    self.err(
                        (*p, "steps"),
                        "'steps' is a canary setting; a blue-green "
                        "strategy takes auto_promote, preview_replicas, "
                        "scale_down_delay",
                        key=True,
                    )
                strategy = ir.Strategy(name, "blue-green", auto_promote=bool(s.auto_promote))
                # unset values keep the IR's defaults (one table: ir.Strategy)
                if s.preview_replicas is not None:
                    strategy = replace(strategy, preview_replicas=s.preview_replicas)
                if s.scale_down_delay:
                    delay = duration_ms(s.scale_down_delay) // 1000
                    strategy = replace(strategy, scale_down_delay_seconds=delay)
                out[name] = strategy
        return out

    def strategy_ref(self, path: Path_, name: str, known: dict[str, ir.Strategy]) -> ir.Strategy:
        if name in known:
            return known[name]
        self.err(
            path,
            f"unknown strategy '{name}'{did_you_mean(name, known)}; "
            f"known: {', '.join(sorted(known))}",
        )
        return known["rolling"]

    # -- the whole pipeline ------------------------------------------------------------------
    def run(self) -> ir.IR:
        m = self.m
        project = m.project
        account, region = m.aws.account_id, m.aws.region
        registry = f"{account}.dkr.ecr.{region}.amazonaws.com"

        # outputs
        outputs_given = m.outputs is not None
        out_map = (
            m.outputs.model_dump(by_alias=True, exclude_none=True)
            if m.outputs
            else dict(DEFAULT_OUTPUTS)
        )
        outputs: list[tuple[str, str]] = []
        for target in TARGET_NAMES:
            if target in out_map:
                where = ("outputs", target) if outputs_given else ("outputs",)
                folder = self.output_folder(where, out_map[target])
                if folder is not None:
                    outputs.append((target, folder))

        strategies = self.strategies()

        # environments
        envs: list[ir.Environment] = []
        env_names = list(m.environments)
        for i, (name, e) in enumerate(m.environments.items()):
            p: Path_ = ("environments", name)
            namespace = e.namespace or f"{project}-{name}"
            if e.namespace is None and len(namespace) > 63:
                self.err(
                    p,
                    f"the default namespace '{namespace}' is longer than 63 "
                    "characters; set 'namespace'",
                    key=True,
                )
            self.strategy_ref((*p, "strategy"), e.strategy, strategies)
            includes = [b for b in e.branches if not b.startswith("!")]
            excludes = [b[1:] for b in e.branches if b.startswith("!")]
            if not includes:
                self.err(
                    (*p, "branches"),
                    "needs at least one branch pattern that is not a '!' exclusion",
                )
            literal = [b for b in includes if not re.search(r"[*?\[\]+!]", b)]
            envs.append(
                ir.Environment(
                    name=name,
                    index=i,
                    branches=tuple(e.branches),
                    includes=tuple(includes),
                    excludes=tuple(excludes),
                    approval=e.approval,
                    namespace=namespace,
                    cluster=e.cluster,
                    url=e.url,
                    deploy_project=f"{project}-{name}-deploy",
                    deploy_buildspec=f"deploy-{name}.yml",
                    deploy_log_group=f"/aws/codebuild/{project}-{name}-deploy",
                    manual_start_branch=literal[0] if literal else m.source.default_branch,
                )
            )
        env_by_name = {e.name: e for e in envs}

        # ci
        rt_name = next(
            k for k in ("node", "python", "java", "go") if getattr(m.ci.runtime, k) is not None
        )
        runtime = ir.Runtime(rt_name, getattr(m.ci.runtime, rt_name))  # type: ignore[arg-type]
        if m.ci.steps is not None:
            steps = tuple(ir.Step(s.name, s.run) for s in m.ci.steps)
        else:
            steps = tuple(ir.Step(n, r) for n, r in DEFAULT_STEPS[rt_name])

        # services
        services: list[ir.Service] = []
        images: dict[str, str] = {}
        app_names: dict[str, str] = {}
        gitops_path = self.rel_path(("gitops", "path"), m.gitops.path, "path")
        for sname, s in m.services.items():
            p = ("services", sname)
            image = s.image or f"{project}/{sname}"
            if image in images:
                self.err(
                    (*p, "image") if s.image else p,
                    f"image '{image}' is already used by service '{images[image]}'",
                    key=s.image is None,
                )
            images.setdefault(image, sname)
            spath = self.rel_path((*p, "path"), s.path, "path")
            dockerfile = self.rel_path(
                (*p, "dockerfile"), posixpath.join(spath, s.dockerfile), "path"
            )
            if isinstance(s.replicas, dict):
                for env_name in s.replicas:
                    if env_name not in env_by_name:
                        self.err(
                            (*p, "replicas", env_name),
                            f"unknown environment '{env_name}'{did_you_mean(env_name, env_names)}",
                            key=True,
                        )
            svc_strategy = (
                self.strategy_ref((*p, "strategy"), s.strategy, strategies) if s.strategy else None
            )
            deployments = []
            for env in envs:
                replicas = (
                    s.replicas.get(env.name, 1) if isinstance(s.replicas, dict) else s.replicas
                )
                strat = svc_strategy or strategies.get(
                    m.environments[env.name].strategy, strategies["rolling"]
                )
                app = f"{sname}-{env.name}"
                if app in app_names:
                    self.err(
                        p,
                        f"Argo CD application name '{app}' is also produced by "
                        f"{app_names[app]}; rename the service or the environment",
                        key=True,
                    )
                app_names.setdefault(app, f"service '{sname}' in '{env.name}'")
                pipeline_name = f"{project}-{sname}-{env.name}"
                deployments.append(
                    ir.Deployment(
                        service=sname,
                        environment=env.name,
                        replicas=replicas,
                        strategy=strat,
                        namespace=env.namespace,
                        cluster=env.cluster,
                        app_name=app,
                        pipeline_name=pipeline_name,
                        notification_rule_name=_short(pipeline_name, 64),
                        values_file=f"{sname}/values-{env.name}.yaml",
                        image_tag_file=f"{sname}/image-{env.name}.yaml",
                    )
                )
            services.append(
                ir.Service(
                    name=sname,
                    image=image,
                    image_uri=f"{registry}/{image}",
                    path=spath,
                    dockerfile=dockerfile,
                    port=s.port,
                    secrets=tuple(s.secrets),
                    deployments=tuple(deployments),
                    build_project=f"{project}-{sname}-build",
                    buildspec=f"build-{sname}.yml",
                    ci_workflow=f"ci-{sname}.yml",
                    deliver_workflow=f"deliver-{sname}.yml",
                    build_log_group=f"/aws/codebuild/{project}-{sname}-build",
                    scan_report_group=f"{project}-{sname}-build-ecr-image-scan",
                    build_trigger_paths=() if spath == "." else (f"{spath}/**",),
                    chart_path=posixpath.join(gitops_path, sname),
                )
            )

        # build
        b = m.build
        compute = b.compute or Compute()  # the model's defaults, in one place
        vcpu, mem = compute.vcpu, compute.memory_gb
        ctype, cpus, gib = compute_type(vcpu, mem)
        if (cpus, gib) != (vcpu, mem):
            self.warn(
                ("build", "compute"),
                f"no CodeBuild compute type has exactly {vcpu} vCPU / {mem} GiB; "
                f"using {ctype} ({cpus} vCPU / {gib} GiB)",
            )
        build = ir.Build(
            vcpu, mem, ctype, b.timeout_minutes, b.cache, b.keep_images, b.artifact_retention_days
        )

        # security
        sec = m.security
        dast = None
        if sec.dast is not None:
            p = ("security", "dast", "environment")
            target_env = env_by_name.get(sec.dast.environment)
            if target_env is None:
                self.err(
                    p,
                    f"unknown environment '{sec.dast.environment}'"
                    f"{did_you_mean(sec.dast.environment, env_names)}",
                )
            elif target_env.url is None:
                self.err(
                    p,
                    f"environment '{target_env.name}' has no 'url' for DAST to scan; "
                    f"set environments.{target_env.name}.url",
                )
            else:
                cron = {"daily": "0 3 * * *", "weekly": "0 3 * * 1"}.get(
                    sec.dast.schedule, sec.dast.schedule
                )
                dast = ir.Dast(target_env.name, target_env.url, cron)
        security = ir.Security(
            sast_fail_on=sec.sast.fail_on if sec.sast else None,
            dependencies_fail_on=sec.dependencies.fail_on if sec.dependencies else None,
            image_scan_fail_on=sec.image_scan.fail_on if sec.image_scan else None,
            image_scanning=sec.image_scan.scanning if sec.image_scan else "auto",
            image_scan_timeout_minutes=sec.image_scan.timeout_minutes if sec.image_scan else 20,
            dast=dast,
            sign_images=sec.sign_images,
        )

        # gitops (the targets that deploy through it require the repository)
        g = m.gitops
        https = (g.repository or "").startswith("https://")
        auth: Literal["ssh", "https"] = "https" if https else "ssh"
        gitops = ir.Gitops(
            repository=g.repository,
            auth=auth,
            credential="GITOPS_TOKEN" if auth == "https" else "GITOPS_DEPLOY_KEY",
            revision=g.revision,
            path=gitops_path,
            prune=g.sync.prune,
            self_heal=g.sync.self_heal,
            options=tuple(g.sync.options),
            retry_limit=g.sync.retry.limit,
            backoff_duration=g.sync.retry.backoff.duration,
            backoff_factor=g.sync.retry.backoff.factor,
            backoff_max_duration=g.sync.retry.backoff.max_duration,
        )

        rb = m.rollback
        rollback = (
            None
            if rb is None
            else ir.Rollback(
                rb.health_checks,
                rb.max_error_rate,
                rb.max_p90_latency,
                duration_ms(rb.max_p90_latency) if rb.max_p90_latency else None,
            )
        )

        n = m.notifications
        topic = n.sns.topic if n.sns else f"{project}-pipeline-events"
        notifications = ir.Notifications(
            slack_channel=n.slack.channel if n.slack else None,
            slack_events=tuple(
                e
                for e in ("started", "approval-needed", "succeeded", "failed")
                if n.slack and e in n.slack.on
            ),
            sns_topic=topic,
            sns_events=(
                ()
                if n.sns is None
                else tuple(
                    e
                    for e in ("started", "approval-needed", "succeeded", "failed")
                    if e in (n.slack.on if n.slack else ("failed", "approval-needed"))
                )
            ),
        )

        aws = ir.AwsNames(
            region=region,
            account_id=account,
            ecr_registry=registry,
            github_role_name=f"{project}-github-actions",
            github_role_arn=f"arn:aws:iam::{account}:role/{project}-github-actions",
            pipeline_role_name=f"{project}-codepipeline",
            build_role_name=f"{project}-codebuild",
            artifact_bucket=f"{project}-artifacts-{account}",
            kms_alias=f"alias/{project}-cicd",
            signing_key_alias=f"alias/{project}-image-signing",
            connection_name=project[:25].rstrip("-") + "-github",
            sns_topic_arn=f"arn:aws:sns:{region}:{account}:{topic}",
            gitops_secret_name=f"{project}/gitops-credential",
        )
        secrets = ir.Secrets(
            sonar_token="SONAR_TOKEN" if security.sast_fail_on else None,
            sonar_host_url="SONAR_HOST_URL" if security.sast_fail_on else None,
            slack_webhook="SLACK_WEBHOOK_URL" if notifications.slack_channel else None,
            gitops_credential=None if g.repository is None else gitops.credential,
        )

        backend = self.backend()
        if self.errors:
            raise PipelineError(self.errors)
        return ir.IR(
            pipeline_file=Path(self.doc.file).name,
            project=project,
            repository=m.source.repository,
            default_branch=m.source.default_branch,
            environments=tuple(envs),
            deploy_branches=tuple(dict.fromkeys(b for e in envs for b in e.includes)),
            services=tuple(services),
            runtime=runtime,
            steps=steps,
            build=build,
            security=security,
            gitops=gitops,
            rollback=rollback,
            notifications=notifications,
            deployments_table=m.audit.deployments_table,
            log_retention_days=m.audit.log_retention_days,
            outputs=tuple(outputs),
            buildspec_folder=dict(outputs).get("codebuild", DEFAULT_OUTPUTS["codebuild"]),
            aws=aws,
            github_oidc_provider=m.aws.github_oidc_provider,
            texts=self.texts(),
            backend=backend,
            secrets=secrets,
            pins=self.pins,
            warnings=tuple(self.warnings),
        )

    def backend(self) -> ir.Backend:
        """Terraform's state backend; S3 settings only with ``type: s3``."""
        be = self.m.terraform.backend
        where = ("terraform", "backend")
        if be.type == "local":
            for key in ("bucket", "key", "region", "dynamodb_table"):
                if getattr(be, key) is not None:
                    self.err((*where, key), f"'{key}' applies only to 'type: s3'")
            return ir.Backend("local")
        if be.bucket is None:
            self.err((*where, "type"), "an S3 backend needs 'bucket' (the state bucket)")
        if be.lock == "dynamodb" and be.dynamodb_table is None:
            self.err((*where, "lock"), "'lock: dynamodb' needs 'dynamodb_table'")
        if be.lock == "lockfile" and be.dynamodb_table is not None:
            self.err(
                (*where, "dynamodb_table"),
                "a DynamoDB lock table applies only to 'lock: dynamodb'",
            )
        return ir.Backend(
            "s3",
            bucket=be.bucket,
            key=be.key or f"{self.m.project}/cicd.tfstate",
            region=be.region or self.m.aws.region,
            lock_table=be.dynamodb_table if be.lock == "dynamodb" else None,
        )

    def texts(self) -> tuple[tuple[Path_, str], ...]:
        """Every string the user wrote, with its field path, for the targets' rules."""
        out: list[tuple[Path_, str]] = []

        def walk(value: object, path: Path_) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, (*path, k))
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(v, (*path, i))
            elif isinstance(value, str):
                out.append((path, value))

        walk(self.doc.data, ())
        return tuple(out)


def lower(doc: Document, model: Pipeline, pins: ir.Pins, root: Path | None = None) -> ir.IR:
    """Resolve ``model`` into the IR; ``root`` (the pipeline's folder) enables symlink checks."""
    return _Lowering(doc, model, pins, root).run()
