"""Zero-downtime with the AWS Load Balancer Controller (issue 27): a pod leaves the ALB
before it stops serving, and a new pod is Ready only once its ALB target is healthy.

* aws-load-balancer-controller v2 docs/deploy/pod_readiness_gate.md: the webhook injects
  a readiness gate into pods of a namespace labelled
  ``elbv2.k8s.aws/pod-readiness-gate-inject: enabled``; Argo CD v3.5 applies an
  Application's ``managedNamespaceMetadata`` only with ``CreateNamespace=true``
  (docs/user-guide/sync-options.md, "Namespace Metadata").
* docs/guide/ingress/annotations.md ``target-group-attributes``: the ALB's
  ``deregistration_delay.timeout_seconds`` (default 300) is how long a deregistered target
  keeps its in-flight requests; a terminating pod is deregistered only after the
  controller saw it leave the Endpoints, which the preStop pause covers.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, SAMPLES
from tests.targets.helm.test_chart import by_kind, cases, ir_of, lookup, render

GATE = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}


def rendered(sample: str, service: str, env: str) -> list[dict[str, Any]]:
    ir, svc, dep = lookup(sample, service, env)
    chart = ROOT / "samples" / sample / (ir.chart_source or "")
    values = ROOT / "samples" / sample / (svc.values_source or "") / f"values-{env}.yaml"
    return render(chart, values, dep)


def attributes(ingress: dict[str, Any]) -> dict[str, str]:
    note = ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-group-attributes"]
    return dict(pair.split("=", 1) for pair in note.split(","))


@pytest.mark.parametrize(("sample", "service", "env"), cases())
def test_a_terminating_pod_serves_until_the_alb_has_drained_it(
    sample: str, service: str, env: str
) -> None:
    docs = rendered(sample, service, env)
    (workload,) = by_kind(docs, "Rollout") or by_kind(docs, "Deployment")
    pod = workload["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}  # the kubelet's own pause: no shell in the image
    pause = pre_stop["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    ingresses = by_kind(docs, "Ingress")
    assert ingresses
    for ingress in ingresses:
        drain = int(attributes(ingress)["deregistration_delay.timeout_seconds"])
        # the controller deregisters the target within the pause; its in-flight
        # requests drain for at most `drain`; the pod is killed only after `grace`
        assert 0 < pause < drain and pause + drain <= grace, (pause, drain, grace)


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_namespace_injects_the_alb_readiness_gate(sample: str) -> None:
    ir = ir_of(sample)
    folder = ROOT / "samples" / sample / ir.output("argocd")
    for svc in ir.services:
        for dep in svc.deployments:
            app = yaml.safe_load((folder / f"{dep.app_name}.yaml").read_text())
            sync = app["spec"]["syncPolicy"]
            if "CreateNamespace=true" in sync.get("syncOptions", []):
                assert sync["managedNamespaceMetadata"] == {"labels": GATE}
            else:  # Argo CD would ignore it: explain asks for the label instead
                assert "managedNamespaceMetadata" not in sync
