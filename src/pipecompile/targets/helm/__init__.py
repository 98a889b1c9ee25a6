"""One Helm chart every service deploys with, and each service's values per environment.

``_chart/`` (``ir.chart_source``) holds ``Chart.yaml``, ``values.yaml`` (defaults)
and ``templates/`` (the same templates for every service, shipped in
``pipecompile/targets/helm/chart``: a
Rollout, or a Deployment for 'rolling'; stable and canary/preview Services; an
ALB Ingress that Argo Rollouts splits by weight; the AnalysisTemplate of
``rollback``; one ExternalSecret per secret; a ServiceAccount; a
PodDisruptionBudget; probes); ``<service>/`` holds ``values-<env>.yaml``.  Each values file is
complete on its own (Helm replaces lists rather than merging them, so canary
steps are never split across files).  The image is deliberately absent: the
deployer copies the chart into ``<gitops.path>/<service>/<env>/`` of the GitOps
repository with ``image-<env>.yaml`` (repository, tag, digest), a file
pipecompile never generates, and the Argo CD Application reads both there.
"""

from __future__ import annotations

import hashlib
import posixpath
from functools import cache
from importlib import resources
from typing import Any

from ..._version import __version__
from ...ir import CHART_SOURCE, IR, SERVICE_VALUES, Service
from ...serialize.emit import yaml_document
from .. import Finding, gitops_required
from ..chart import analysis as _analysis
from ..chart.values import conventions, https, tls, values

name = "helm"
default_folder = "kubernetes/apps"  # under outputs: when the pipeline names no folder
cost = 53  # ms to render per 1000 services (bench/bench.py); balances parallel rendering

# The one chart every service deploys with, in the output folder (a service name is a
# DNS label, so it never collides with this folder's name).
CHART_FOLDER = "_chart"


def publishes(folder: str, enabled: bool) -> dict[str, str]:
    """The chart's folder and each service's values folder, for the deployers and the
    Applications (through the IR); nothing when the helm output is off."""
    if not enabled:
        return {}
    return {
        CHART_SOURCE: posixpath.join(folder, CHART_FOLDER),
        SERVICE_VALUES: posixpath.join(folder, "{service}"),
    }


def describe(ir: IR) -> list[str]:
    """What each cluster needs for the charts to deploy and judge releases."""
    out: list[str] = []
    stores = {env.secret_store.kind for env in ir.environments}
    for svc in ir.services:
        if svc.secrets:
            keys = ", ".join(key for dep in svc.deployments for _, key in dep.secret_keys)
            out.append(f"Secrets Manager secrets read by {svc.name}: {keys}")
    # group.name only where services have hosts (values.py _ingress: two '/' rules on
    # any host collide), so an environment without a domain has one ALB per service
    shared = [e.name for e in ir.environments if e.exposure.domain]
    alone = [e.name for e in ir.environments if not e.exposure.domain]
    albs = "; ".join(
        [
            *(
                [f"one ALB per environment through IngressGroups in {', '.join(shared)}"]
                if shared
                else []
            ),
            *(
                [f"one ALB per service in {', '.join(alone)} (no domain: no host per service)"]
                if alone
                else []
            ),
        ]
    )
    controllers = [
        "the Argo Rollouts controller (v1.9)",
        "the AWS Load Balancer Controller (ingressClassName alb; canary weights are its "
        f"traffic split; {albs})",
    ]
    if any(svc.secrets for svc in ir.services):
        store = (
            "a SecretStore of each service's own"
            if stores == {"SecretStore"}
            else f"{' or '.join(sorted(stores))} stores"
        )
        controllers.append(
            f"the External Secrets Operator ({store}; a SecretStore authenticates as its "
            "ServiceAccount <service>-secrets through IRSA: the controller may create "
            "serviceaccounts/token, as its chart grants with rbac.serviceAccountTokenCreate "
            "(the default), and the cluster's IAM OIDC provider is the one the "
            "environments' secrets roles trust), and Stakater "
            "Reloader with --is-Argo-Rollouts=true --reload-strategy=annotations to roll "
            "out pods whose secrets rotate (its default env-vars strategy adds a container "
            "variable, which Argo CD's self-heal reverts; an annotation it ignores)"
        )
    out.append("In each cluster: " + ", ".join(controllers))
    for env in ir.environments:
        hosts = ", ".join(h for svc in ir.services for h in _hosts(svc, env.name))
        cert = env.exposure.certificate_arn
        if cert and hosts:
            out.append(
                f"ACM certificate {cert} covering {hosts} (the {env.name} HTTPS listener "
                "presents it for every host)"
            )
        elif https(env.url) and hosts:
            out.append(
                f"An issued ACM certificate in {ir.aws.region} covering {hosts} "
                f"({env.name}'s url is https and no exposure.certificate_arn is set: the "
                "AWS Load Balancer Controller discovers it for the HTTPS listener, and the "
                "Ingress fails when no certificate covers a host)"
            )
    out.append(
        "Pods run as user 10001 under Pod Security 'restricted' (non-root, no privilege "
        "escalation, no capabilities, RuntimeDefault seccomp)"
    )
    rb = ir.rollback
    if rb and (rb.max_error_rate is not None or rb.max_p90_latency) and rb.provider == "prometheus":
        out.append(
            f"Prometheus at {rb.prometheus_url}"
            + (
                " with the Prometheus Operator (each chart's ServiceMonitor scrapes /metrics "
                f"on port http and copies the pod label {_analysis.HASH_POD_LABEL} "
                f"into '{_analysis.HASH_LABEL}'; the Prometheus resource's "
                "serviceMonitorSelector must select them: kube-prometheus-stack selects "
                "only its own release's unless prometheus.prometheusSpec."
                "serviceMonitorSelectorNilUsesHelmValues is false)"
                if rb.service_monitor
                else " scraping the services' /metrics, the pod label "
                f"{_analysis.HASH_POD_LABEL} kept as '{_analysis.HASH_LABEL}'"
            )
            + f": {rb.requests_metric} with the "
            f"status code in label '{rb.status_label}' and the histogram "
            f"{rb.latency_metric}, labelled '{rb.service_label}' and '{rb.namespace_label}' "
            "(rollback analysis; rollback.prometheus_metrics renames them)"
        )
    elif rb and (rb.max_error_rate is not None or rb.max_p90_latency):
        out.append(
            "The Argo Rollouts controller run with --aws-verify-target-group (it then "
            "records the canary's target group and its ALB in each Rollout's status.alb, "
            "which the CloudWatch analysis reads the ALB's own metrics RequestCount, "
            "HTTPCode_Target_5XX_Count and TargetResponseTime of, namespace "
            f"{_analysis.ALB_NAMESPACE}; nothing in the cluster publishes metrics), its "
            "ServiceAccount annotated eks.amazonaws.com/role-arn with the role that may "
            "call cloudwatch:GetMetricData and the elasticloadbalancing:Describe* calls of "
            "that verification (Terraform output argo_rollouts_cloudwatch_role_arn; the "
            f"controller reads region {ir.aws.region} from AWS_REGION; rollback analysis)"
        )
    out.append(
        "Each service answers GET /healthz on its port (startup and readiness probes; "
        "liveness checks that the port accepts connections)"
    )
    return out


def _hosts(svc: Service, env: str) -> list[str]:
    dep = next(d for d in svc.deployments if d.environment == env)
    return [*dep.hosts, *([dep.preview_host] if dep.preview_host else [])]


def check(ir: IR) -> list[Finding]:
    return gitops_required(ir) + unjudged_canary_steps(ir) + plain_http_on_the_internet(ir)


def plain_http_on_the_internet(ir: IR) -> list[Finding]:
    """A warning for each internet-facing environment whose ALB has no HTTPS listener
    (no exposure.certificate_arn, no https url): the chart then renders listen-ports
    HTTP 80 only, so its services answer on the internet unencrypted."""
    out: list[Finding] = []
    for env in ir.environments:
        deployed = [
            s.name for s in ir.services if any(d.environment == env.name for d in s.deployments)
        ]
        if env.exposure.scheme != "internet-facing" or tls(env) or not deployed:
            continue
        out.append(
            Finding(
                ("environments", env.name, "exposure", "scheme"),
                f"{env.name}: the internet-facing ALB of {', '.join(deployed)} listens on "
                "plain HTTP (port 80) only: no exposure.certificate_arn and no https url; "
                f"give environments.{env.name}.url an https URL (the ALB then listens on "
                "443 and redirects 80 to it), set exposure.certificate_arn, or set "
                "exposure.scheme: internal",
                severity="warning",
                code="PC310",
            )
        )
    return out


def unjudged_canary_steps(ir: IR) -> list[Finding]:
    """A warning for each environment's canary step that its analysis never judges."""
    rb = ir.rollback
    if rb is None or (rb.max_error_rate is None and rb.max_p90_latency_ms is None):
        return []  # nothing judges any step: rollback says so (explain)
    out: list[Finding] = []
    for env in ir.environments:
        dep = next(
            (d for s in ir.services for d in s.deployments if d.environment == env.name), None
        )
        if dep is None or dep.strategy.kind != "canary":
            continue
        first = _analysis.initial_delay_minutes(rb)
        for i in _analysis.unjudged_steps(rb, dep.strategy):
            step = dep.strategy.steps[i]
            out.append(
                Finding(
                    ("environments", env.name, "strategy"),
                    f"{env.name}: step {i + 1} of canary strategy '{dep.strategy.name}' "
                    f"(weight {step.weight}, pause {step.pause or 'none'}) is never judged: "
                    f"the traffic moves on before the rollback analysis measures it (its first "
                    f"measurement comes {first}m after step 1 starts, then one a minute); "
                    "pause the "
                    "step until a measurement is taken "
                    f"(strategies.{dep.strategy.name}.steps[{i}].pause)",
                    severity="warning",
                    code="PC309",
                )
            )
    return out


CHART_RELEASE = "1.0.0"  # raised by hand when the values' interface changes incompatibly


def chart_yaml(ir: IR) -> dict[str, Any]:
    """Chart.yaml (specification 3.4, issue 29 item 11).  ``version`` is derived from the
    chart's content: CHART_RELEASE with the first 12 hex digits of a SHA-256 over every
    other file of the chart and the other Chart.yaml fields as SemVer 2 build metadata
    (``1.0.0+<hash>``, which Helm's loader accepts), so any change to a template, the
    defaults or the metadata gives a new version and an unchanged chart keeps its own.
    ``appVersion`` is the pipecompile version that generated it: one chart serves every
    service, so no image can be its app; the version each deployment runs is the image
    tag and digest in its image-<env>.yaml."""
    meta: dict[str, Any] = {
        "apiVersion": "v2",
        "name": "service",
        "description": f"A service of {ir.project} (generated by pipecompile); every object "
        "is named after the values' name",
        "type": "application",
        "appVersion": __version__,
    }
    digest = hashlib.sha256()
    for name, text in (
        ("Chart.yaml", yaml_document(meta)),
        ("values.yaml", yaml_document(default_values())),
        *((f"templates/{f}", t) for f, t in templates()),
    ):
        digest.update(f"{name}\0{len(text.encode())}\0".encode() + text.encode())
    return {**meta, "version": f"{CHART_RELEASE}+{digest.hexdigest()[:12]}"}


def default_values() -> dict[str, Any]:
    """What every service shares; values-<env>.yaml and image-<env>.yaml add the rest."""
    conv = conventions()
    return {
        "name": "",
        "environment": "",
        "image": {"repository": "", "tag": "", "digest": ""},
        "replicaCount": 1,
        "service": {"port": 8080},
        "probes": dict(conv["probes"]),
        # Pod Security "restricted": non-root (a numeric user, so the kubelet can check
        # it whatever the image's USER), no privilege escalation, no capabilities,
        # the runtime's seccomp profile
        "securityContext": {"runAsUser": conv["run_as_user"]},
        "resources": conv["resources"],
        # zero-downtime: the ALB stops sending a terminating pod requests before it exits
        "shutdown": dict(conv["shutdown"]),
        "ingress": {
            "enabled": True,
            "scheme": "internal",
            "group": "",
            "hosts": [],
            "preview": None,
            "tls": False,
            "certificateArn": "",
        },
        "serviceMonitor": {"enabled": False, **conv["metrics"]},
        "serviceAccount": {"roleArn": ""},
        "rollout": {"type": "rolling", "strategy": {}, "progressDeadlineSeconds": 600},
        "analysis": None,
        "externalSecrets": None,
    }


@cache
def templates() -> tuple[tuple[str, str], ...]:
    """The chart's templates, shipped in targets/helm/chart/templates."""
    folder = resources.files(__name__) / "chart" / "templates"
    return tuple(
        sorted((f.name, f.read_text("utf-8")) for f in folder.iterdir() if f.name[0] != ".")
    )


def render(ir: IR) -> dict[str, str]:
    # one chart for every service (the IR names its folder: the deployers copy it)
    chart = posixpath.relpath(ir.chart_source or "", ir.output(name))
    out = {
        f"{chart}/Chart.yaml": yaml_document(chart_yaml(ir)),
        f"{chart}/values.yaml": yaml_document(default_values()),
    }
    for file, text in templates():
        out[f"{chart}/templates/{file}"] = text
    for svc in ir.services:
        for dep in svc.deployments:
            out[dep.values_file] = yaml_document(values(ir, svc, dep))
    return out
