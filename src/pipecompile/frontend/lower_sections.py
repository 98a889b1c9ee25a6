"""Lowering, the sections after environments and services: build settings, security
(scanners, DAST), the GitOps repository, rollback analysis, notifications and the
AWS names every target uses.  Mixed into :class:`.lower._Lowering`."""

from __future__ import annotations

from typing import Literal

from .. import ir
from ..errors import Path_, did_you_mean
from .lower_rules import Rules, duration_ms, sync_options
from .lower_rules import short as _short
from .model import ImageScan
from .model_base import Compute


class Sections(Rules):
    """Needs ``warn`` besides what :class:`Rules` needs."""

    def warn(self, code: str, path: Path_, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def hotfix_route(self) -> tuple[str | None, tuple[str, ...]]:
        """(the environment that verifies hotfix branches, their patterns); (None, []) when
        hotfixes are off, no approval environment precedes production, or an environment
        already names a hotfix pattern itself (then the user routed them)."""
        hot = self.m.hotfixes
        if hot is False:
            return None, ()
        names = list(self.m.environments)
        envs = self.m.environments
        where: Path_ = ("hotfixes", "environment")
        if hot.environment is not None:
            if hot.environment not in envs:
                self.err(
                    "PC201",
                    where,
                    f"unknown environment '{hot.environment}'"
                    + did_you_mean(hot.environment, names)
                    + f" (known: {', '.join(names)})",
                )
                return None, ()
            if hot.environment == names[-1]:
                self.err(
                    "PC212",
                    where,
                    f"'{hot.environment}' is the production environment (the last in promotion "
                    "order); hotfixes are verified in an environment before it",
                )
                return None, ()
            target: str | None = hot.environment
        else:
            target = next((n for n in reversed(names[:-1]) if envs[n].approval), None)
        routed = {b for e in envs.values() for b in e.branches}
        if target is None or routed & set(hot.branches):
            return None, ()
        return target, tuple(hot.branches)

    def build(self) -> ir.Build:
        """Build settings (the compute type that fits is the terraform target's choice)."""
        settings = self.m.build
        compute = settings.compute or Compute()  # the model's defaults, in one place
        return ir.Build(
            compute.vcpu,
            compute.memory_gb,
            settings.timeout_minutes,
            settings.cache,
            settings.keep_images,
            settings.artifact_retention_days,
        )

    def security(self, envs: list[ir.Environment]) -> ir.Security:
        """The gates; DAST must target an environment that exists and has a URL."""
        sec = self.m.security
        dast = None
        if sec.dast is not None:
            where: Path_ = ("security", "dast", "environment")
            target = next((e for e in envs if e.name == sec.dast.environment), None)
            if target is None:
                self.err(
                    "PC201",
                    where,
                    f"unknown environment '{sec.dast.environment}'"
                    f"{did_you_mean(sec.dast.environment, [e.name for e in envs])}"
                    f"; known: {', '.join(e.name for e in envs)}",
                )
            elif target.url is None:
                self.err(
                    "PC205",
                    where,
                    f"environment '{target.name}' has no 'url' for DAST to scan; "
                    f"set environments.{target.name}.url",
                )
            else:
                if f"{target.name}-dast" in self.m.environments:
                    self.err(
                        "PC213",
                        ("environments", f"{target.name}-dast"),
                        f"'{target.name}-dast' is the GitHub environment of the DAST job "
                        f"(it scans {target.name}); rename this environment",
                        key=True,
                    )
                cron = {"daily": "0 3 * * *", "weekly": "0 3 * * 1"}.get(
                    sec.dast.schedule, sec.dast.schedule
                )
                level = sec.dast.fail_on
                dast = ir.Dast(
                    target.name,
                    target.url,
                    cron,
                    level,
                    project=f"{self.m.project}-{target.name}-dast",
                    log_group=f"/aws/codebuild/{self.m.project}-{target.name}-dast",
                    github_environment=f"{target.name}-dast",
                    github_role_name=_short(f"{self.m.project}-github-dast", 64),
                    github_role_arn=f"arn:aws:iam::{self.m.aws.account_id}:role/"
                    + _short(f"{self.m.project}-github-dast", 64),
                    **self.scheduled_dast(envs),
                )
        scan = sec.image_scan or ImageScan()  # its mode and wait keep the model's defaults
        return ir.Security(
            sast_fail_on=sec.sast.fail_on if sec.sast else None,
            dependencies_fail_on=sec.dependencies.fail_on if sec.dependencies else None,
            image_scan_fail_on=sec.image_scan.fail_on if sec.image_scan else None,
            image_scanning=scan.scanning,
            image_scan_timeout_minutes=scan.timeout_minutes,
            dast=dast,
            sign_images=sec.sign_images,
        )

    def scheduled_dast(self, envs: list[ir.Environment]) -> dict[str, str]:
        """security.dast.schedule scans production (the last environment) at its url (1.2)."""
        dast = self.m.security.dast
        assert dast is not None
        production = envs[-1]
        if production.url is not None:
            return {"scheduled_environment": production.name, "scheduled_url": production.url}
        explicit = "schedule" in dast.model_fields_set
        self.warn(
            "PC205",
            ("security", "dast", "schedule") if explicit else ("security", "dast"),
            f"the scheduled DAST scan targets '{production.name}' (last in promotion order), "
            f"which has no 'url': it scans nothing; set environments.{production.name}.url",
        )
        return {}

    def gitops(self, path: str) -> ir.Gitops:
        """The GitOps repository (the targets that deploy through it require it)."""
        g = self.m.gitops
        auth: Literal["ssh", "https"] = (
            "https" if (g.repository or "").startswith("https://") else "ssh"
        )
        return ir.Gitops(
            repository=g.repository,
            auth=auth,
            credential="GITOPS_TOKEN" if auth == "https" else "GITOPS_DEPLOY_KEY",
            revision=g.revision,
            path=path,
            prune=g.sync.prune,
            self_heal=g.sync.self_heal,
            options=sync_options(g.sync.options),
            retry_limit=g.sync.retry.limit,
            backoff_duration=g.sync.retry.backoff.duration,
            backoff_factor=g.sync.retry.backoff.factor,
            backoff_max_duration=g.sync.retry.backoff.max_duration,
        )

    def cloudwatch_fits(self, service: str, env: str, strategy: ir.Strategy) -> None:
        """CloudWatch analysis reads the canary's ALB target group, which the Argo
        Rollouts controller records (status.alb) only for canary traffic routing
        (argo-rollouts v1.9.0 rollout/trafficrouting/alb/alb.go VerifyWeight)."""
        rb = self.m.rollback
        if (
            rb is None
            or rb.metrics_provider != "cloudwatch"
            or (rb.max_error_rate is None and rb.max_p90_latency is None)
            or strategy.kind != "blue-green"
        ):
            return
        self.err(
            "PC204",
            ("rollback", "metrics_provider"),
            f"'cloudwatch' is a canary setting: it measures the canary's ALB target group, "
            f"which Argo Rollouts names only for canary traffic routing, and service "
            f"'{service}' is blue-green in '{env}'; use metrics_provider prometheus",
        )

    def rollback(self) -> ir.Rollback | None:
        rollback = self.m.rollback
        if rollback is None:
            return None
        latency = rollback.max_p90_latency
        window_ms = duration_ms(rollback.window)
        least = 300000 if rollback.metrics_provider == "cloudwatch" else 60000
        if window_ms < least or window_ms % 60000:
            self.err(
                "PC107",
                ("rollback", "window"),
                f"'{rollback.window}' is not a whole number of minutes of at least "
                f"{least // 60000}m"
                + (
                    " (CloudWatch needs five one-minute datapoints to judge)"
                    if least == 300000
                    else ""
                ),
            )
        pm = rollback.prometheus_metrics
        smoke = rollback.smoke_path
        if smoke is not None and rollback.max_error_rate is None and latency is None:
            self.err(
                "PC209",
                ("rollback", "smoke_path"),
                f"smoke requests to '{smoke}' would judge nothing: they are traffic for "
                "max_error_rate or max_p90_latency, and neither is set",
            )
        elif smoke is not None and smoke in pm.exclude:
            self.err(
                "PC209",
                ("rollback", "smoke_path"),
                f"smoke requests to '{smoke}' would judge nothing: "
                "rollback.prometheus_metrics.exclude takes that path's requests out of the "
                "analysis; request a path users request",
            )
        return ir.Rollback(
            rollback.health_checks,
            rollback.max_error_rate,
            latency,
            duration_ms(latency) if latency else None,
            rollback.prometheus_url,
            rollback.metrics_provider,
            rollback.service_monitor,
            f"{window_ms // 60000}m",
            rollback.no_traffic,
            rollback.measurements,
            pm.requests,
            pm.latency,
            pm.status_label,
            pm.service_label,
            pm.namespace_label,
            pm.path_label,
            tuple(pm.exclude),
            smoke,
        )

    def notifications(self) -> ir.Notifications:
        """Slack events in a fixed order; the SNS topic always exists (approvals use it)."""
        slack, sns = self.m.notifications.slack, self.m.notifications.sns
        order = ("started", "approval-needed", "succeeded", "failed")
        sns_on = slack.on if slack else ("failed", "approval-needed")
        events = () if sns is None and slack is None else tuple(e for e in order if e in sns_on)
        names = list(self.m.environments)
        # the daily summary (chatops.tf's project) publishes to the topic with status summary
        summary = self.m.delivery == "codepipeline" and bool(self.m.audit.deployments_table)
        sent = events + (("summary",) if summary and events else ())
        subs = []
        for i, sub in enumerate(sns.subscriptions if sns else []):
            for j, env in enumerate(sub.environments or []):
                if env not in names:
                    self.err(
                        "PC201",
                        ("notifications", "sns", "subscriptions", i, "environments", j),
                        f"unknown environment '{env}'{did_you_mean(env, names)}; "
                        f"known: {', '.join(names)}",
                    )
            for j, status in enumerate(sub.statuses or []):
                if status not in sent:
                    self.err(
                        "PC107",
                        ("notifications", "sns", "subscriptions", i, "statuses", j),
                        f"'{status}' is not sent to the topic; it sends: {', '.join(sent)}",
                    )
            subs.append(
                ir.Subscription(
                    sub.protocol,
                    sub.endpoint,
                    tuple(sub.environments or ()),
                    tuple(e for e in sent if e in (sub.statuses or sent)),
                )
            )
        return ir.Notifications(
            slack_channel=slack.channel if slack else None,
            slack_events=tuple(e for e in order if slack and e in slack.on),
            sns_topic=sns.topic if sns else f"{self.m.project}-pipeline-events",
            sns_events=events,
            subscriptions=tuple(subs),
            slack_users=tuple(slack.users.items()) if slack else (),
        )

    def aws_names(self, topic: str) -> ir.AwsNames:
        """Every AWS name the targets use, computed once."""
        project, account, region = self.m.project, self.m.aws.account_id, self.m.aws.region
        return ir.AwsNames(
            region=region,
            account_id=account,
            ecr_registry=f"{account}.dkr.ecr.{region}.amazonaws.com",
            github_build_role_name=f"{project}-github-build",
            github_build_role_arn=f"arn:aws:iam::{account}:role/{project}-github-build",
            pipeline_role_name=f"{project}-codepipeline",
            build_role_name=f"{project}-codebuild-build",
            artifact_bucket=f"{project}-artifacts-{account}",
            kms_alias=f"alias/{project}-cicd",
            signing_key_alias=f"alias/{project}-image-signing",
            release_key_alias=f"alias/{project}-release-signing",
            github_release_role_name=f"{project}-github-release",
            github_release_role_arn=f"arn:aws:iam::{account}:role/{project}-github-release",
            release_build_role_name=f"{project}-codebuild-release",
            release_artifact_bucket=f"{project}-release-{account}",
            dast_role_name=f"{project}-codebuild-dast",
            sign_project=f"{project}-sign",
            release_sign_project=f"{project}-sign-release",
            sign_role_name=f"{project}-codebuild-sign",
            release_sign_role_name=f"{project}-codebuild-sign-release",
            promotions_table=f"{project}-promotions",
            connection_name=project[:25].rstrip("-") + "-github",
            sns_topic_arn=f"arn:aws:sns:{region}:{account}:{topic}",
            sonar_secret_name=f"{project}/sonarqube",
            release_sonar_secret_name=f"{project}/sonarqube-release",
            nvd_secret_name=f"{project}/nvd",
        )
