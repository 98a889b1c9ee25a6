"""A Helm chart per service, and its values per environment.

``<service>/`` holds ``Chart.yaml``, ``values.yaml`` (defaults), ``templates/``
(the same templates for every service, shipped in ``targets/helm/chart``: a
Rollout, or a Deployment for 'rolling'; stable and canary/preview Services; an
ALB Ingress that Argo Rollouts splits by weight; the AnalysisTemplate of
``rollback``; one ExternalSecret per secret; a ServiceAccount; a
PodDisruptionBudget; probes) and ``values-<env>.yaml``.  Each values file is
complete on its own (Helm replaces lists rather than merging them, so canary
steps are never split across files).  The image is deliberately absent: the
deployer copies the chart into ``<gitops.path>/<service>/<env>/`` of the GitOps
repository with ``image-<env>.yaml`` (repository, tag, digest), a file
pipecompile never generates, and the Argo CD Application reads both there.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from ...emit import yaml_document
from ...ir import IR, Deployment, Service, Strategy
from .. import Finding, data, gitops_required

name = "helm"
default_folder = "kubernetes/apps"  # under outputs: when the pipeline names no folder
cost = 53  # ms to render per 1000 services (bench/bench.py); balances parallel rendering


def _conventions() -> dict[str, Any]:
    table: dict[str, Any] = data("helm", "conventions.json")
    return table


def rollout_strategy(svc: Service, dep: Deployment, analysis: str | None) -> dict[str, Any]:
    """``spec.strategy`` of the Rollout (of the Deployment, for 'rolling')."""
    s: Strategy = dep.strategy
    if s.kind == "canary":
        steps: list[dict[str, Any]] = []
        for st in s.steps:
            steps.append({"setWeight": st.weight})
            if st.pause:
                steps.append({"pause": {"duration": st.pause}})
        # weights are traffic percentages: the ALB splits requests between the
        # stable and canary Services, whatever the number of pods
        canary: dict[str, Any] = {
            "canaryService": f"{svc.name}-canary",
            "stableService": svc.name,
            "trafficRouting": {"alb": {"ingress": svc.name, "servicePort": svc.port}},
            "steps": steps,
        }
        if analysis:
            canary["analysis"] = {"templates": [{"templateName": analysis}], "startingStep": 1}
        return {"canary": canary}
    if s.kind == "blue-green":
        bg: dict[str, Any] = {
            "activeService": svc.name,
            "previewService": f"{svc.name}-preview",
            "autoPromotionEnabled": s.auto_promote,
            "previewReplicaCount": s.preview_replicas,
            "scaleDownDelaySeconds": s.scale_down_delay_seconds,
        }
        if analysis:
            bg["prePromotionAnalysis"] = {"templates": [{"templateName": analysis}]}
        return {"blueGreen": bg}
    # rolling: a plain Deployment's rolling update
    return {"type": "RollingUpdate", "rollingUpdate": dict(_conventions()["rolling"])}


def _analysis(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any] | None:
    """The rollback thresholds as Prometheus queries on the new version's Service."""
    rb = ir.rollback
    if rb is None or dep.strategy.kind == "rolling":
        return None
    suffix = "canary" if dep.strategy.kind == "canary" else "preview"
    sel = f'namespace="{dep.namespace}",service="{svc.name}-{suffix}"'
    metrics: list[dict[str, Any]] = []
    if rb.max_error_rate is not None:
        metrics.append(
            {
                "name": "error-rate",
                "interval": "1m",
                "failureLimit": 1,
                "successCondition": f"result[0] <= {rb.max_error_rate!r}",
                "threshold": rb.max_error_rate,
                "query": f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[2m])) / '
                f"clamp_min(sum(rate(http_requests_total{{{sel}}}[2m])), 1e-9)",
            }
        )
    if rb.max_p90_latency_ms is not None:
        metrics.append(
            {
                "name": "p90-latency-ms",
                "interval": "1m",
                "failureLimit": 1,
                "successCondition": f"result[0] <= {rb.max_p90_latency_ms}",
                "threshold": rb.max_p90_latency_ms,
                "query": "1000 * histogram_quantile(0.9, sum by (le) "
                f"(rate(http_request_duration_seconds_bucket{{{sel}}}[2m])))",
            }
        )
    return {
        "templateName": f"{dep.app_name}-rollback",
        "healthChecks": rb.health_checks,
        "prometheus": {"address": rb.prometheus_url},
        "metrics": metrics,
    }


def k8s_secret_name(secret: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", secret.lower()).strip("-")[:63].strip("-")
    return base or "secret"


def values(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any]:
    analysis = _analysis(ir, svc, dep)
    if analysis is not None and not analysis["metrics"]:
        template = None  # health checks alone: probes and the progress deadline
    else:
        template = analysis["templateName"] if analysis else None
    out: dict[str, Any] = {
        "environment": dep.environment,
        "image": {"repository": svc.image_uri},
        "replicaCount": dep.replicas,
        "service": {"port": svc.port},
        "ingress": {"enabled": True, "host": dep.host or ""},
        "rollout": {
            "type": dep.strategy.kind,
            "strategy": rollout_strategy(svc, dep, template),
        },
    }
    if analysis:
        out["analysis"] = analysis
    if svc.secrets:
        names: dict[str, int] = {}
        entries = []
        for secret in svc.secrets:
            k8s = k8s_secret_name(secret)
            names[k8s] = names.get(k8s, 0) + 1
            if names[k8s] > 1:
                k8s = f"{k8s[:60]}-{names[k8s]}"
            env_name = re.sub(r"[^A-Z0-9]+", "_", secret.rsplit("/", 1)[-1].upper()).strip("_")
            entries.append(
                {"name": k8s, "envName": env_name or "SECRET", "remoteRef": {"key": secret}}
            )
        out["externalSecrets"] = {
            "secretStoreRef": {"kind": ir.secret_store.kind, "name": ir.secret_store.name},
            "provider": {"service": "SecretsManager", "region": ir.aws.region},
            "refreshInterval": _conventions()["secret_refresh_interval"],
            "secrets": entries,
        }
    return out


def describe(ir: IR) -> list[str]:
    """The Secrets Manager secrets the services read, and the store the charts name."""
    store = ir.secret_store
    out = [
        f"Secrets Manager secrets read by {svc.name}: "
        + ", ".join(svc.secrets)
        + f" (and a {store.kind} '{store.name}')"
        for svc in ir.services
        if svc.secrets
    ]
    out.append(
        "In each cluster: the Argo Rollouts controller, the AWS Load Balancer Controller "
        "(ingressClassName alb; canary weights are its traffic split), the External "
        f"Secrets Operator with the {store.kind} '{store.name}'"
    )
    if ir.rollback and (ir.rollback.max_error_rate is not None or ir.rollback.max_p90_latency):
        out.append(
            f"Prometheus at {ir.rollback.prometheus_url} scraping the services' "
            "http_requests_total and http_request_duration_seconds_bucket, labelled by "
            "namespace and service (rollback analysis)"
        )
    out.append("Each service answers GET /healthz on its port (readiness and liveness probes)")
    return out


def check(ir: IR) -> list[Finding]:
    return gitops_required(ir)


def chart_yaml(ir: IR, svc: Service) -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": svc.name,
        "description": f"{svc.name} of {ir.project} (generated by pipecompile)",
        "type": "application",
        "version": "1.0.0",
    }


def default_values(svc: Service) -> dict[str, Any]:
    """What every environment shares; values-<env>.yaml and image-<env>.yaml add the rest."""
    return {
        "name": svc.name,
        "environment": "",
        "image": {"repository": svc.image_uri, "tag": "", "digest": ""},
        "replicaCount": 1,
        "service": {"port": svc.port},
        "probes": dict(_conventions()["probes"]),
        "ingress": {"enabled": True, "host": "", "scheme": _conventions()["alb_scheme"]},
        "serviceAccount": {"roleArn": ""},
        "rollout": {"type": "rolling", "strategy": {}},
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
    out = {}
    for svc in ir.services:
        out[f"{svc.name}/Chart.yaml"] = yaml_document(chart_yaml(ir, svc))
        out[f"{svc.name}/values.yaml"] = yaml_document(default_values(svc))
        for file, text in templates():
            out[f"{svc.name}/templates/{file}"] = text
        for dep in svc.deployments:
            out[dep.values_file] = yaml_document(values(ir, svc, dep))
    return out
