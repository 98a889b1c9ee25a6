"""The generated charts (issue 16), rendered by Helm's own engine (helm-python-sdk,
offline) for every sample x service x environment, validated by kubernetes-validate
(strict) and the Argo Rollouts / External Secrets CRD schemas; and every path and
value file an Argo CD Application names exists in a GitOps repository that the
deployer's own script filled."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from helm_python import Chart

from pipecompile.frontend.read import compile_bytes
from pipecompile.ir import IR, Deployment, Service
from pipecompile.targets.common import script_path

from .conftest import ROOT, SAMPLES, folder, git, scratch_gitops, validator

# kubernetes-validate reads its (large) definitions file on every call: read each once
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)  # type: ignore[method-assign]

DIGEST = "sha256:" + "cd" * 32
K8S = kubernetes_validate.latest_version()
CRDS = {
    "Rollout": "argo-rollouts-rollout-v1alpha1.json",
    "AnalysisTemplate": "argo-rollouts-analysistemplate-v1alpha1.json",
    "ExternalSecret": "external-secrets-externalsecret-v1.json",
}


@cache
def ir_of(sample: str) -> IR:
    path = ROOT / "samples" / sample / "pipeline.yaml"
    return compile_bytes(str(path), path.read_bytes())


def cases() -> list[tuple[str, str, str]]:
    return [
        (sample, svc.name, dep.environment)
        for sample in SAMPLES
        for svc in ir_of(sample).services
        for dep in svc.deployments
    ]


def render(chart_dir: Path, values_file: Path, dep: Deployment) -> list[dict[str, Any]]:
    """helm template with values-<env>.yaml and a deployer's image-<env>.yaml."""
    values = yaml.safe_load(values_file.read_text())
    values["image"] = {**values["image"], "tag": "src-0123", "digest": DIGEST}
    out = Chart.load(str(chart_dir)).render(values, name=dep.app_name, namespace=dep.namespace)
    docs = [d for text in out.values() for d in yaml.safe_load_all(text) if d]
    assert docs
    return docs


def bound(provider: str, limit: str) -> str:
    if provider == "prometheus":
        return f"result[0] <= {limit}"
    return f"all(result[0].Values, {{# <= {limit}}})"


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def lookup(sample: str, service: str, env: str) -> tuple[IR, Service, Deployment]:
    ir = ir_of(sample)
    svc = next(s for s in ir.services if s.name == service)
    return ir, svc, next(d for d in svc.deployments if d.environment == env)


@pytest.mark.parametrize(("sample", "service", "env"), cases())
def test_every_chart_renders_valid_manifests_for_every_environment(
    sample: str, service: str, env: str
) -> None:
    ir, svc, dep = lookup(sample, service, env)
    chart = ROOT / "samples" / sample / (ir.chart_source or "")  # one chart for every service
    values = ROOT / "samples" / sample / (svc.values_source or "") / f"values-{env}.yaml"
    docs = render(chart, values, dep)
    for d in docs:
        if d["kind"] in CRDS:
            validator(CRDS[d["kind"]]).validate(d)
        else:
            kubernetes_validate.validate(d, K8S, strict=True)

    workload = by_kind(docs, "Rollout") or by_kind(docs, "Deployment")
    assert len(workload) == 1
    spec = workload[0]["spec"]
    assert spec["replicas"] == dep.replicas
    container = spec["template"]["spec"]["containers"][0]
    # deployed by digest, an approval environment's from the release repository
    uri = ir.image_of(svc, ir.environment(env))[1]
    assert container["image"] == f"{uri}@{DIGEST}"
    assert container["readinessProbe"] and container["livenessProbe"]
    strategy = dep.strategy
    if strategy.kind == "rolling":
        assert workload[0]["kind"] == "Deployment"
    else:
        assert workload[0]["kind"] == "Rollout"
    if strategy.kind == "canary":
        canary = spec["strategy"]["canary"]
        steps = []
        for step in strategy.steps:
            steps.append({"setWeight": step.weight})
            if step.pause:
                steps.append({"pause": {"duration": step.pause}})
        assert canary["steps"] == steps  # pipeline.yaml's strategy, step for step
        assert canary["trafficRouting"]["alb"]["ingress"] == svc.name  # weights = traffic
        services = {s["metadata"]["name"] for s in by_kind(docs, "Service")}
        assert {canary["canaryService"], canary["stableService"]} <= services
        ingress = by_kind(docs, "Ingress")[0]
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": svc.name, "port": {"name": "use-annotation"}}

    rb = ir.rollback
    templates = by_kind(docs, "AnalysisTemplate")
    if rb is None or strategy.kind == "rolling" or not (rb.max_error_rate or rb.max_p90_latency):
        assert templates == []
    else:
        (template,) = templates
        conditions = {m["name"]: m["successCondition"] for m in template["spec"]["metrics"]}
        expected = {}
        if rb.max_error_rate is not None:
            expected["error-rate"] = bound(rb.provider, repr(rb.max_error_rate))
        if rb.max_p90_latency_ms is not None:
            expected["p90-latency-ms"] = bound(rb.provider, str(rb.max_p90_latency_ms))
        assert conditions == expected  # rollback's thresholds, exactly
        for metric in template["spec"]["metrics"]:
            if rb.provider == "prometheus":
                assert metric["provider"]["prometheus"]["query"]
            else:
                queries = metric["provider"]["cloudWatch"]["metricDataQueries"]
                assert sum(q.get("returnData", True) for q in queries) == 1
        analysis = spec["strategy"].get("canary", spec["strategy"].get("blueGreen", {}))
        refs = analysis.get("analysis") or analysis.get("prePromotionAnalysis")
        assert refs["templates"][0]["templateName"] == template["metadata"]["name"]

    secrets = {e["spec"]["data"][0]["remoteRef"]["key"] for e in by_kind(docs, "ExternalSecret")}
    assert secrets == set(svc.secrets)  # one ExternalSecret per secret
    for es in by_kind(docs, "ExternalSecret"):
        assert es["spec"]["secretStoreRef"] == {
            "kind": ir.secret_store.kind,
            "name": ir.secret_store.name,
        }
    assert by_kind(docs, "ServiceAccount") and by_kind(docs, "PodDisruptionBudget")


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_application_finds_its_chart_where_argo_cd_reads(
    sample: str, built: dict[str, Path], tmp_path: Path
) -> None:
    """Apply the deployer's own file operations to a scratch GitOps repository, then
    resolve every Application's path and value files there, and render from it."""
    ir = ir_of(sample)
    root = built[sample]
    remote = scratch_gitops(tmp_path)
    for svc in ir.services:
        for dep in svc.deployments:
            env = {
                **os.environ,
                "HOME": str(tmp_path),
                "GITOPS_REPOSITORY": f"file://{remote}",
                "GITOPS_REVISION": "HEAD",
                "GITOPS_DIR": dep.gitops_dir,
                "CHART_SOURCE": ir.chart_source or "",
                "VALUES_SOURCE": svc.values_source or "",
                "SERVICE": svc.name,
                "ENVIRONMENT": dep.environment,
                "IMAGE_URI": ir.image_of(svc, ir.environment(dep.environment))[1],
                "IMAGE_TAG": "src-0123",
                "IMAGE_DIGEST": DIGEST,
                "GITOPS_AUTH": ir.gitops.auth,
                ir.gitops.credential: "not a credential",
            }
            res = subprocess.run(
                ["bash", str(script_path("gitops-record.sh"))],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert res.returncode == 0, res.stderr
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(remote), str(checkout))
    apps = sorted((root / folder(sample, "argocd")).glob("*.yaml"))
    checked = 0
    for path in apps:
        app = yaml.safe_load(path.read_text())
        if app["kind"] != "Application":
            continue
        source = app["spec"]["source"]
        assert source["repoURL"] == ir.gitops.repository
        chart = checkout / source["path"]
        assert (chart / "Chart.yaml").is_file(), source["path"]
        for value_file in source["helm"]["valueFiles"]:
            assert (chart / value_file).is_file(), (source["path"], value_file)
        dep, svc = next(
            (d, s)
            for s in ir.services
            for d in s.deployments
            if d.app_name == app["metadata"]["name"]
        )
        assert chart.parent.name == svc.name
        values: dict[str, Any] = yaml.safe_load((chart / "values.yaml").read_text())
        for value_file in source["helm"]["valueFiles"]:
            layer = yaml.safe_load((chart / value_file).read_text())
            for key, value in layer.items():
                if isinstance(value, dict) and isinstance(values.get(key), dict):
                    values[key] = {**values[key], **value}
                else:
                    values[key] = value
        out = Chart.load(str(chart)).render(values, name=dep.app_name, namespace=dep.namespace)
        images = [
            c["image"]
            for text in out.values()
            for d in yaml.safe_load_all(text)
            if d and d["kind"] in ("Rollout", "Deployment")
            for c in d["spec"]["template"]["spec"]["containers"]
        ]
        assert images == [f"{ir.image_of(svc, ir.environment(dep.environment))[1]}@{DIGEST}"]
        checked += 1
    assert checked == sum(len(s.deployments) for s in ir.services)
