"""The values the generated chart reads, per service and environment: its contract.

The helm target ships the chart and writes these values for each environment; the
local target deploys the same chart into a developer's cluster with the first
environment's values, changed for a local cluster.  Both take them from here, so
neither imports the other (pyproject.toml: each target is its own package).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ...ir import IR, Deployment, Environment, Exposure, Service, Strategy
from .. import data
from . import analysis as _analysis


def conventions() -> dict[str, Any]:
    table: dict[str, Any] = data("chart", "conventions.json")
    return table


def rollout_strategy(ir: IR, svc: Service, dep: Deployment, analysis: str | None) -> dict[str, Any]:
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
        if analysis:  # background analysis from the first step on
            ref = _analysis.reference(ir, _analysis.measured_service(svc, dep), analysis)
            canary["analysis"] = {**ref, "startingStep": 1}
        return {"canary": canary}
    if s.kind == "blue-green":
        bg: dict[str, Any] = {
            "activeService": svc.name,
            "previewService": f"{svc.name}-preview",
            "autoPromotionEnabled": s.auto_promote,
            "previewReplicaCount": s.preview_replicas,
            "scaleDownDelaySeconds": s.scale_down_delay_seconds,
        }
        if analysis:  # the preview before the switch, the active Service after it
            bg["prePromotionAnalysis"] = _analysis.reference(
                ir, _analysis.measured_service(svc, dep), analysis
            )
            bg["postPromotionAnalysis"] = _analysis.reference(ir, svc.name, analysis)
            # the controller cancels post-promotion analysis when scaleDownDelaySeconds
            # ends (argo-rollouts v1.9.0 docs/features/bluegreen.md): keep the old
            # version until every measurement is taken, so an abort can switch back
            assert ir.rollback is not None
            bg["scaleDownDelaySeconds"] = max(
                s.scale_down_delay_seconds, (_analysis.run_minutes(ir.rollback) + 1) * 60
            )
        return {"blueGreen": bg}
    # rolling: a plain Deployment's rolling update
    return {"type": "RollingUpdate", "rollingUpdate": dict(conventions()["rolling"])}


def k8s_secret_name(secret: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", secret.lower()).strip("-")[:63].strip("-")
    return base or "secret"


def _ingress(ir: IR, dep: Deployment) -> dict[str, Any]:
    """The service's rules on its environment's shared ALB (one IngressGroup per
    environment: the AWS Load Balancer Controller merges every Ingress of the group)."""
    env = ir.environment(dep.environment)
    exp = env.exposure
    return {
        "enabled": True,
        "scheme": exp.scheme,
        # a shared ALB needs a host per service (two rules for '/' on any host collide)
        "group": exp.group if dep.hosts else "",
        "hosts": list(dep.hosts),
        # blue-green: the preview's host on an internal ALB of its own
        "preview": {"host": dep.preview_host, "group": preview_group(exp)}
        if dep.preview_host
        else None,
        # an https url is answered on 443: with exposure.certificate_arn, else with the
        # certificate the controller discovers in ACM for the rules' hosts
        "tls": tls(env),
        "certificateArn": exp.certificate_arn or "",
    }


def preview_group(exp: Exposure) -> str:
    """The IngressGroup of an environment's previews: the environment's own when it is
    internal, else one beside it (an IngressGroup's members share one scheme)."""
    if exp.scheme == "internal":
        return exp.group
    name = f"{exp.group}-preview"
    if len(name) <= 63:  # alb.ingress.kubernetes.io/group.name: at most 63 characters
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def https(url: str | None) -> bool:
    return (url or "").lower().startswith("https://")


def tls(env: Environment) -> bool:
    """The environment's ALB listens on 443 (and 80 redirects to it)."""
    return bool(env.exposure.certificate_arn) or https(env.url)


def _secrets(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any] | None:
    if not svc.secrets:
        return None
    env = ir.environment(dep.environment)
    names: dict[str, int] = {}
    entries = []
    for secret, key in dep.secret_keys:
        k8s = k8s_secret_name(secret)
        names[k8s] = names.get(k8s, 0) + 1
        if names[k8s] > 1:
            k8s = f"{k8s[:60]}-{names[k8s]}"
        env_name = re.sub(r"[^A-Z0-9]+", "_", secret.rsplit("/", 1)[-1].upper()).strip("_")
        entries.append({"name": k8s, "envName": env_name or "SECRET", "remoteRef": {"key": key}})
    store = env.secret_store
    own = store.kind == "SecretStore"
    return {
        "secretStoreRef": {
            "kind": store.kind,
            "name": store.of(svc.name) if own else store.name,
        },
        # a SecretStore of the service's own, in its namespace: External Secrets takes a
        # token of the store's ServiceAccount and assumes the role of its IRSA annotation,
        # which only that ServiceAccount of this namespace may assume and which reads
        # only this environment's keys
        "store": {
            "create": own,
            "serviceAccount": store.of(svc.name) if own else "",
            "roleArn": env.secrets_role_arn if own else "",
        },
        "provider": {"service": "SecretsManager", "region": ir.aws.region},
        "refreshInterval": conventions()["secret_refresh_interval"],
        "mountPath": conventions()["secret_mount_path"],
        "secrets": entries,
    }


def values(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any]:
    analysis = _analysis.template(ir, svc, dep)
    if analysis is not None and not analysis["metrics"]:
        template = None  # health checks alone: probes and the progress deadline
    else:
        template = analysis["templateName"] if analysis else None
    rb = ir.rollback
    out: dict[str, Any] = {
        "name": svc.name,
        "environment": dep.environment,
        "image": {"repository": ir.image_of(svc, ir.environment(dep.environment))[1]},
        "replicaCount": dep.replicas,
        "service": {"port": svc.port},
        "ingress": _ingress(ir, dep),
        "rollout": {
            "type": dep.strategy.kind,
            "strategy": rollout_strategy(ir, svc, dep, template),
            "progressDeadlineSeconds": _analysis.progress_deadline_seconds(
                rb if template else None, dep.strategy.kind
            ),
        },
        "serviceMonitor": {
            "enabled": rb is not None and rb.provider == "prometheus" and rb.service_monitor
        },
    }
    if analysis:
        out["analysis"] = analysis
    secrets = _secrets(ir, svc, dep)
    if secrets:
        out["externalSecrets"] = secrets
    return out
