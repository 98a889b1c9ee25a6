"""What the cluster's other controllers do with the rendered charts (issue 27): Prometheus
Operator with the ServiceMonitor, the disruption controller with the
PodDisruptionBudget, Argo CD's diff with what Stakater Reloader changes, and the IAM
role the Argo Rollouts controller reads CloudWatch with. Each behaviour is that of the
cited source; where no controller runs here, the test follows its code."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipecompile.targets import helm
from pipecompile.targets.chart import analysis
from tests.conftest import ROOT, SAMPLES
from tests.targets.helm.test_chart import by_kind, ir_of, lookup, render


def cases() -> list[tuple[str, str, str]]:
    return [
        (sample, svc.name, dep.environment)
        for sample in SAMPLES
        for svc in ir_of(sample).services
        for dep in svc.deployments
    ]


def rendered(sample: str, service: str, env: str) -> list[dict[str, Any]]:
    ir, svc, dep = lookup(sample, service, env)
    chart = ROOT / "samples" / sample / (ir.chart_source or "")
    values = ROOT / "samples" / sample / (svc.values_source or "") / f"values-{env}.yaml"
    return render(chart, values, dep)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # what the charts use
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# ---------------------------------------------------------------- Prometheus Operator


def sanitize(label: str) -> str:
    """prometheus-operator v0.93.0 pkg/prometheus/promcfg.go sanitizeLabelName: what a
    podTargetLabels entry is called on the scraped series."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


@pytest.mark.parametrize(("sample", "service", "env"), cases())
def test_the_service_monitor_scrapes_every_service_of_its_chart_with_the_pod_hash(
    sample: str, service: str, env: str
) -> None:
    """Prometheus Operator (pkg/prometheus/promcfg.go generateServiceMonitorConfig):
    the ServiceMonitor's selector picks the Services of its namespace by their labels,
    each endpoint names a Service port, and every podTargetLabels entry is copied from
    the pod onto the series. The analysis queries need the Service ('service') and the
    pod's rollouts-pod-template-hash, which the Rollouts controller sets on every pod
    of a ReplicaSet (argo-rollouts v1.9.0 pkg/apis/rollouts/v1alpha1/types.go
    DefaultRolloutUniqueLabelKey)."""
    ir = ir_of(sample)
    docs = rendered(sample, service, env)
    monitors = by_kind(docs, "ServiceMonitor")
    rb = ir.rollback
    if not (rb and rb.provider == "prometheus" and rb.service_monitor):
        assert monitors == []
        return
    (monitor,) = monitors
    spec = monitor["spec"]
    assert "namespaceSelector" not in spec  # its own namespace: the release's
    own = by_kind(docs, "Service")
    assert own and all(selects(spec["selector"], s["metadata"]["labels"]) for s in own)
    # no other service's Services of the same namespace (every chart of the environment)
    for other in ir.services:
        if other.name != service:
            for s in by_kind(rendered(sample, other.name, env), "Service"):
                assert not selects(spec["selector"], s["metadata"]["labels"]), s
    for endpoint in spec["endpoints"]:
        for s in own:
            assert endpoint["port"] in [p["name"] for p in s["spec"]["ports"]]
    assert analysis.HASH_POD_LABEL == "rollouts-pod-template-hash"  # the controller's key
    assert analysis.HASH_POD_LABEL in spec["podTargetLabels"]
    assert sanitize(analysis.HASH_POD_LABEL) == analysis.HASH_LABEL
    for template in by_kind(docs, "AnalysisTemplate"):
        for metric in template["spec"]["metrics"]:
            if "prometheus" not in metric["provider"]:
                continue  # smoke-requests asks the measured Service, not Prometheus
            query = metric["provider"]["prometheus"]["query"]
            assert query.count(f'{analysis.HASH_LABEL}="{{{{args.') == query.count("[")


# ---------------------------------------------------------------- node drains


def disruptions_allowed(pdb: dict[str, Any], scales: list[int], healthy: int) -> int:
    """kubernetes pkg/controller/disruption/disruption.go: getExpectedPodCount (with
    maxUnavailable, expectedCount is the sum of the pods' controllers' scales,
    getExpectedScale: for a Rollout's pods each ReplicaSet; desiredHealthy =
    expectedCount - maxUnavailable, at least 0) and updatePdbStatus (disruptionsAllowed =
    currentHealthy - desiredHealthy, 0 when negative or expectedCount is 0)."""
    spec = pdb["spec"]
    assert "minAvailable" not in spec and isinstance(spec["maxUnavailable"], int)
    expected = sum(scales)
    desired = max(0, expected - spec["maxUnavailable"])
    allowed = healthy - desired
    return 0 if expected <= 0 or allowed <= 0 else allowed


@pytest.mark.parametrize(("sample", "service", "env"), cases())
def test_a_node_drain_can_always_evict_a_pod(sample: str, service: str, env: str) -> None:
    """The eviction API (pkg/registry/core/pod/storage/eviction.go) evicts a healthy pod
    only while the budget's disruptionsAllowed is above 0, and an unready one under
    unhealthyPodEvictionPolicy AlwaysAllow whatever the budget (IfHealthyBudget, the
    default, only while the budget is met): with every replica healthy, one replica
    included, and in the middle of a canary (two ReplicaSets), a drain goes on."""
    _, _, dep = lookup(sample, service, env)
    docs = rendered(sample, service, env)
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    (workload,) = by_kind(docs, "Rollout") or by_kind(docs, "Deployment")
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"], labels)
    replicas = dep.replicas
    if replicas == 0:
        return
    assert disruptions_allowed(pdb, [replicas], replicas) >= 1
    canary = max(1, replicas // 2)  # a canary ReplicaSet beside the stable one
    assert disruptions_allowed(pdb, [replicas, canary], replicas + canary) >= 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# ---------------------------------------------------------------- Argo CD and Reloader


def merge_patch(a: Any, b: Any) -> Any:
    """RFC 7386 (evanphx/json-patch CreateMergePatch): the merge patch from a to b."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return copy.deepcopy(b)
    out: dict[str, Any] = dict.fromkeys(a.keys() - b.keys())
    for key, value in b.items():
        if key not in a:
            out[key] = copy.deepcopy(value)
        elif a[key] != value:
            out[key] = merge_patch(a[key], value)
    return out


def apply_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_patch(out.get(key), value)
    return out


def keep(patch: dict[str, Any], nulls: bool) -> dict[str, Any]:
    """apimachinery jsonmergepatch keepOrDeleteNullInJsonPatch."""
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if isinstance(value, dict) and value:
            sub = keep(value, nulls)
            if sub:
                out[key] = sub
        elif (value is None) == nulls:
            out[key] = value
    return out


def remove_fields(config: Any, live: Any) -> Any:
    """gitops-engine pkg/utils/json/json.go RemoveMapFields / RemoveListFields."""
    if isinstance(config, dict) and isinstance(live, dict):
        return {k: remove_fields(v, live[k]) for k, v in config.items() if k in live}
    if isinstance(config, list) and isinstance(live, list):
        return [remove_fields(config[i], v) if i < len(config) else v for i, v in enumerate(live)]
    return live


def argocd_out_of_sync(last_applied: dict[str, Any], live: dict[str, Any]) -> bool:
    """Argo CD v3.5.1 gitops-engine pkg/diff/diff.go ThreeWayDiff for a custom resource
    (threeWayMergePatch: no registered scheme): the live object less the fields absent
    from last-applied-configuration, a three-way JSON merge patch (apimachinery
    CreateThreeWayJSONMergePatch: additions and changes from live to config, deletions
    from last-applied to config), applied to the live object; a difference is OutOfSync,
    which self-heal syncs back."""
    config = last_applied  # the chart did not change: Git is what was applied
    stripped = remove_fields(last_applied, live)
    changes = keep(merge_patch(stripped, config), nulls=False)
    deletions = keep(merge_patch(last_applied, config), nulls=True)
    predicted = apply_patch(live, apply_patch(deletions, changes))
    return bool(predicted != live)


def reloader(workload: dict[str, Any], strategy: str) -> dict[str, Any]:
    """What Stakater Reloader v1.4.21 changes when a Secret the workload uses rotates
    (internal/pkg/handler/upgrade.go invokeReloadStrategy): env-vars appends
    STAKATER_<SECRET>_SECRET to the container that uses it (updateContainerEnvVars);
    annotations sets the pod template annotation reloader.stakater.com/last-reloaded-from
    (updatePodAnnotations). For a Rollout, UpdateRollout then writes the object
    (internal/pkg/callbacks/rolling_upgrade.go, rollout-strategy 'rollout')."""
    live = copy.deepcopy(workload)
    template = live["spec"]["template"]
    if strategy == "env-vars":
        container = template["spec"]["containers"][0]
        container.setdefault("env", []).append({"name": "STAKATER_X_SECRET", "value": "9f2c"})
    else:
        notes = template["metadata"].setdefault("annotations", {})
        source = {"type": "SECRET", "name": "x", "hash": "9f2c"}
        notes["reloader.stakater.com/last-reloaded-from"] = json.dumps(source)
    return live


def test_the_argocd_diff_model_sees_what_it_must() -> None:
    applied = {"spec": {"a": 1, "list": [{"n": 1}], "map": {"k": "v"}}}
    assert not argocd_out_of_sync(applied, copy.deepcopy(applied))
    assert argocd_out_of_sync(applied, {"spec": {"a": 2, "list": [{"n": 1}], "map": {"k": "v"}}})
    longer = {"spec": {"a": 1, "list": [{"n": 1}, {"n": 2}], "map": {"k": "v"}}}
    assert argocd_out_of_sync(applied, longer)  # a list is replaced whole
    extra = {"spec": {"a": 1, "list": [{"n": 1}], "map": {"k": "v", "x": "y"}}}
    assert not argocd_out_of_sync(applied, extra)  # a key nobody applied is not a diff


@pytest.mark.parametrize(
    ("sample", "service", "env"),
    [c for c in cases() if lookup(*c)[1].secrets and lookup(*c)[2].strategy.kind != "rolling"],
)
def test_reloader_as_documented_does_not_fight_argo_cd_self_heal(
    sample: str, service: str, env: str
) -> None:
    """Reloader's default env-vars strategy changes the Rollout's containers, which
    Argo CD's diff of a custom resource sees (the containers list is replaced whole):
    self-heal reverts it, a new pod template each time. The annotations strategy the
    charts document adds a map key no one applied: no diff."""
    docs = rendered(sample, service, env)
    (workload,) = by_kind(docs, "Rollout")
    assert workload["metadata"]["annotations"]["secret.reloader.stakater.com/reload"]
    # the default Rollout strategy of Reloader (a pod template update), not 'restart'
    assert "reloader.stakater.com/rollout-strategy" not in workload["metadata"]["annotations"]
    assert argocd_out_of_sync(workload, reloader(workload, "env-vars"))
    assert not argocd_out_of_sync(workload, reloader(workload, "annotations"))
    needs = " ".join(helm.describe(ir_of(sample)))
    assert "--reload-strategy=annotations" in needs and "--is-Argo-Rollouts=true" in needs


# ---------------------------------------------------------------- CloudWatch access


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_rollouts_controller_may_read_cloudwatch_and_nothing_else(
    sample: str, built: dict[str, Path]
) -> None:
    """metricproviders/cloudwatch/cloudwatch.go (argo-rollouts v1.9.0) calls
    GetMetricData with the SDK's default credentials: the controller's ServiceAccount,
    through IRSA, assumes a role that allows exactly that; no other ServiceAccount may."""
    from tests.iam_eval import Account

    ir = ir_of(sample)
    folder = built[sample] / ir.output("terraform")
    rb = ir.rollback
    cloudwatch = rb is not None and rb.provider == "cloudwatch"
    assert (folder / "argo_rollouts.tf").is_file() == cloudwatch
    if not cloudwatch:
        return
    issuer = "oidc.eks.eu-central-1.amazonaws.com/id/0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    clusters = {
        ir.environment(d.environment).eks_cluster for s in ir.services for d in s.deployments
    }
    account = Account(folder, ir.aws.account_id, {f"eks_oidc_issuer_{c}": issuer for c in clusters})
    role = account.roles["argo_rollouts_cloudwatch"]
    provider = ("Federated", f"arn:aws:iam::{ir.aws.account_id}:oidc-provider/{issuer}")

    def token(namespace: str, name: str) -> dict[str, str]:
        return {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{name}",
            f"{issuer}:aud": "sts.amazonaws.com",
        }

    assert account.may_assume(role.label, provider, **token("argo-rollouts", "argo-rollouts"))
    for namespace, name in (("argo-rollouts", "default"), ("storefront-production", "web")):
        assert not account.may_assume(role.label, provider, **token(namespace, name))
    assert account.can(role.label, "cloudwatch:GetMetricData", "*")
    for action in ("cloudwatch:PutMetricData", "logs:GetLogEvents", "sts:AssumeRole"):
        assert not account.can(role.label, action, "*")
    assert account.decision(role.label, "codepipeline:PutApprovalResult", "*") == "Deny"
