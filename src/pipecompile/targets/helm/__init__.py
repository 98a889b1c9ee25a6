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

import posixpath
import re
from functools import cache
from importlib import resources
from typing import Any

from ...ir import IR, Deployment, Service, Strategy
from ...serialize.emit import yaml_document
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


def _cloudwatch(ns: str, dims: list[dict[str, str]], *queries: dict[str, Any]) -> dict[str, Any]:
    """An Argo Rollouts cloudWatch provider over the service's own metrics."""

    def stat(qid: str, metric: str, statistic: str) -> dict[str, Any]:
        return {
            "id": qid,
            "returnData": False,
            "metricStat": {
                "metric": {"namespace": ns, "metricName": metric, "dimensions": dims},
                "period": 60,
                "stat": statistic,
            },
        }

    built = [stat(*q["stat"]) if "stat" in q else q for q in queries]
    return {"cloudWatch": {"interval": "1m", "metricDataQueries": built}}


def _analysis(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any] | None:
    """The rollback thresholds as queries on the new version's Service, in the provider
    rollback.metrics_provider names."""
    rb = ir.rollback
    if rb is None or dep.strategy.kind == "rolling":
        return None
    suffix = "canary" if dep.strategy.kind == "canary" else "preview"
    target = f"{svc.name}-{suffix}"
    sel = f'namespace="{dep.namespace}",service="{target}"'
    dims = [{"name": "Service", "value": target}, {"name": "Namespace", "value": dep.namespace}]
    prometheus = rb.provider == "prometheus"
    metrics: list[dict[str, Any]] = []

    def condition(limit: str) -> str:
        # prometheus returns a vector; cloudWatch a series of values, each must hold
        return f"result[0] <= {limit}" if prometheus else f"all(result[0].Values, {{# <= {limit}}})"

    if rb.max_error_rate is not None:
        if prometheus:
            provider: dict[str, Any] = {
                "prometheus": {
                    "address": rb.prometheus_url,
                    "query": f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[2m])) / '
                    f"clamp_min(sum(rate(http_requests_total{{{sel}}}[2m])), 1e-9)",
                }
            }
        else:
            provider = _cloudwatch(
                rb.cloudwatch_namespace,
                dims,
                {"stat": ("errors", "Errors5xx", "Sum")},
                {"stat": ("requests", "Requests", "Sum")},
                {"id": "rate", "expression": "errors / MAX([requests, 1])", "returnData": True},
            )
        metrics.append(
            {
                "name": "error-rate",
                "interval": "1m",
                "failureLimit": 1,
                "successCondition": condition(repr(rb.max_error_rate)),
                "threshold": rb.max_error_rate,
                "provider": provider,
            }
        )
    if rb.max_p90_latency_ms is not None:
        if prometheus:
            provider = {
                "prometheus": {
                    "address": rb.prometheus_url,
                    "query": "1000 * histogram_quantile(0.9, sum by (le) "
                    f"(rate(http_request_duration_seconds_bucket{{{sel}}}[2m])))",
                }
            }
        else:
            query = {"stat": ("p90", "LatencyMs", "p90")}
            provider = _cloudwatch(rb.cloudwatch_namespace, dims, query)
            provider["cloudWatch"]["metricDataQueries"][0]["returnData"] = True
        metrics.append(
            {
                "name": "p90-latency-ms",
                "interval": "1m",
                "failureLimit": 1,
                "successCondition": condition(str(rb.max_p90_latency_ms)),
                "threshold": rb.max_p90_latency_ms,
                "provider": provider,
            }
        )
    return {
        "templateName": f"{dep.app_name}-rollback",
        "healthChecks": rb.health_checks,
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
        "name": svc.name,
        "environment": dep.environment,
        "image": {"repository": ir.image_of(svc, ir.environment(dep.environment))[1]},
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
    rb = ir.rollback
    if rb and (rb.max_error_rate is not None or rb.max_p90_latency) and rb.provider == "prometheus":
        out.append(
            f"Prometheus at {rb.prometheus_url} scraping the services' "
            "http_requests_total and http_request_duration_seconds_bucket, labelled by "
            "namespace and service (rollback analysis)"
        )
    elif rb and (rb.max_error_rate is not None or rb.max_p90_latency):
        out.append(
            f"CloudWatch metrics Requests, Errors5xx and LatencyMs in namespace "
            f"{rb.cloudwatch_namespace}, by Service and Namespace, published by the services "
            "(e.g. embedded metric format); the Argo Rollouts controller may call "
            "cloudwatch:GetMetricData (rollback analysis)"
        )
    out.append("Each service answers GET /healthz on its port (readiness and liveness probes)")
    return out


def check(ir: IR) -> list[Finding]:
    return gitops_required(ir)


def chart_yaml(ir: IR) -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": "service",
        "description": f"A service of {ir.project} (generated by pipecompile); every object "
        "is named after the values' name",
        "type": "application",
        "version": "1.0.0",
    }


def default_values() -> dict[str, Any]:
    """What every service shares; values-<env>.yaml and image-<env>.yaml add the rest."""
    return {
        "name": "",
        "environment": "",
        "image": {"repository": "", "tag": "", "digest": ""},
        "replicaCount": 1,
        "service": {"port": 8080},
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
