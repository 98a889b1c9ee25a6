"""Helm values per service x environment, with the rollout in Argo Rollouts form.

Each ``<service>/values-<env>.yaml`` is complete on its own (Helm replaces
lists rather than merging them, so canary steps are never split across
files).  The image *tag* is deliberately absent: the deploy pipelines write
it to ``<service>/image-<env>.yaml`` in the GitOps repository, a file
pipecompile never generates, and the Argo CD Application lists both.
"""

from __future__ import annotations

import re
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
    """``spec.strategy`` of an Argo Rollouts Rollout."""
    s: Strategy = dep.strategy
    if s.kind == "canary":
        steps: list[dict[str, Any]] = []
        for st in s.steps:
            steps.append({"setWeight": st.weight})
            if st.pause:
                steps.append({"pause": {"duration": st.pause}})
        canary: dict[str, Any] = {"steps": steps}
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
    # rolling: a canary without steps is Argo Rollouts' rolling update
    return {"canary": dict(_conventions()["rolling"])}


def _analysis(ir: IR, dep: Deployment) -> dict[str, Any] | None:
    rb = ir.rollback
    if rb is None:
        return None
    metrics: list[dict[str, Any]] = []
    if rb.max_error_rate is not None:
        metrics.append(
            {
                "name": "error-rate",
                "interval": "1m",
                "failureLimit": 1,
                "successCondition": f"result[0] <= {rb.max_error_rate!r}",
                "threshold": rb.max_error_rate,
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
    analysis = _analysis(ir, dep)
    out: dict[str, Any] = {
        "environment": dep.environment,
        "image": {"repository": svc.image_uri},
        "replicaCount": dep.replicas,
        "service": {"port": svc.port},
        "rollout": {
            "type": dep.strategy.kind,
            "strategy": rollout_strategy(svc, dep, analysis["templateName"] if analysis else None),
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
            entries.append({"name": k8s, "remoteRef": {"key": secret}})
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
    return [
        f"Secrets Manager secrets read by {svc.name}: "
        + ", ".join(svc.secrets)
        + f" (and a {store.kind} '{store.name}')"
        for svc in ir.services
        if svc.secrets
    ]


def check(ir: IR) -> list[Finding]:
    return gitops_required(ir)


def render(ir: IR) -> dict[str, str]:
    out = {}
    for svc in ir.services:
        for dep in svc.deployments:
            out[dep.values_file] = yaml_document(values(ir, svc, dep))
    return out
