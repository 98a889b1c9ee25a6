"""The AnalysisTemplate of ``rollback`` and how a Rollout refers to it.

How Argo Rollouts v1.9.0 judges a measurement (cited, because every choice here
follows from it):

* ``utils/evaluate/evaluate.go`` EvaluateResult: with a successCondition and a
  failureCondition, a measurement is Failed when the failure condition holds,
  Successful when the success condition holds, and Inconclusive when neither does; an
  expression that cannot be evaluated (``result[0]`` of an empty vector) is an Error.
* ``analysis/analysis.go`` assessMetricStatus: more than ``failureLimit`` failures fail
  the metric; more than ``inconclusiveLimit`` (default 0) inconclusive measurements make
  it Inconclusive; more than ``consecutiveErrorLimit`` (default 4) errors in a row make it
  Error. ``rollout/analysis.go``: a Failed or Error run aborts the rollout; an
  Inconclusive one pauses it for a person.
* ``metricproviders/prometheus/prometheus.go`` processResponse: a vector becomes
  ``result``, a list of floats; ``metricproviders/cloudwatch/cloudwatch.go``: ``result``
  is the list of MetricDataResults, each with ``Values``; the provider's ``interval`` is
  the look-back of GetMetricData (default 5m).
* ``pkg/apis/rollouts/validation/validation_references.go``
  ValidateAnalysisTemplateWithType: a template used other than as background analysis
  (blue-green pre- and post-promotion) needs a ``count`` on every metric, else the
  Rollout is InvalidSpec ("runs indefinitely").

So every query returns exactly one sample: the value, or -1 when the version served no
request in the window (never "no data", never NaN); -1 satisfies neither condition
(Inconclusive: the rollout pauses) unless ``rollback.no_traffic`` is ``pass``.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Deployment, Rollback, Service

NO_TRAFFIC = -1  # what a query returns for a version that served no request


def _minutes(duration: str) -> int:
    return int(duration.removesuffix("m"))


def measured_service(svc: Service, dep: Deployment) -> str:
    """The Service whose traffic the canary / pre-promotion analysis measures."""
    return f"{svc.name}-{'canary' if dep.strategy.kind == 'canary' else 'preview'}"


def prometheus_queries(rb: Rollback, namespace: str, service: str) -> dict[str, str]:
    """metric name -> PromQL, for the Service ``service`` (``{{args.service}}`` in the
    template) in ``namespace``."""
    sel = f'{rb.namespace_label}="{namespace}",{rb.service_label}="{service}"'
    w = rb.window
    out: dict[str, str] = {}
    if rb.max_error_rate is not None:
        req = rb.requests_metric
        out["error-rate"] = (
            f'((sum(rate({req}{{{sel},{rb.status_label}=~"5.."}}[{w}])) or on() vector(0))'
            f" / (sum(rate({req}{{{sel}}}[{w}])) > 0)) or on() vector({NO_TRAFFIC})"
        )
    if rb.max_p90_latency_ms is not None:
        lat = rb.latency_metric
        out["p90-latency-ms"] = (
            f"(1000 * histogram_quantile(0.9, sum by (le) (rate({lat}_bucket{{{sel}}}[{w}])))"
            f" and on() (sum(rate({lat}_count{{{sel}}}[{w}])) > 0))"
            f" or on() vector({NO_TRAFFIC})"
        )
    return out


def min_datapoints(rb: Rollback) -> int:
    """CloudWatch: datapoints (one a minute) a measurement needs to judge: 3 of 5."""
    return -(-_minutes(rb.window) * 3 // 5)


def conditions(rb: Rollback, limit: str) -> tuple[str, str]:
    """(successCondition, failureCondition) for a threshold ``limit``."""
    if rb.provider == "prometheus":
        one = "len(result) == 1"
        if rb.no_traffic == "pass":
            return f"{one} && result[0] <= {limit}", f"{one} && result[0] > {limit}"
        return (
            f"{one} && result[0] >= 0 && result[0] <= {limit}",
            f"{one} && result[0] > {limit}",
        )
    values = "result[0].Values"
    if rb.no_traffic == "pass":
        return (
            f"len(result) == 1 && all({values}, {{# <= {limit}}})",
            f"len(result) == 1 && any({values}, {{# > {limit}}})",
        )
    enough = f"len(result) == 1 && len({values}) >= {min_datapoints(rb)}"
    return (
        f"{enough} && all({values}, {{# <= {limit}}})",
        f"{enough} && any({values}, {{# > {limit}}})",
    )


def _cloudwatch(rb: Rollback, namespace: str, service: str, *queries: Any) -> dict[str, Any]:
    """An Argo Rollouts cloudWatch provider over the metrics the new pods publish: the
    PodTemplateHash dimension tells the new version from the stable one."""
    dims = [
        {"name": "Service", "value": service},
        {"name": "Namespace", "value": namespace},
        {"name": "PodTemplateHash", "value": "{{args.pod-template-hash}}"},
    ]

    def stat(qid: str, metric: str, statistic: str, returned: bool) -> dict[str, Any]:
        return {
            "id": qid,
            "returnData": returned,
            "metricStat": {
                "metric": {
                    "namespace": rb.cloudwatch_namespace,
                    "metricName": metric,
                    "dimensions": dims,
                },
                "period": 60,
                "stat": statistic,
            },
        }

    built = [stat(*q) if isinstance(q, tuple) else q for q in queries]
    return {"cloudWatch": {"interval": rb.window, "metricDataQueries": built}}


def template(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any] | None:
    """The values of the AnalysisTemplate ``<app>-rollback`` (None: no analysis)."""
    rb = ir.rollback
    if rb is None or dep.strategy.kind == "rolling":
        return None
    blue_green = dep.strategy.kind == "blue-green"
    prometheus = rb.provider == "prometheus"
    queries = prometheus_queries(rb, dep.namespace, "{{args.service}}") if prometheus else {}
    metrics: list[dict[str, Any]] = []
    thresholds: list[tuple[str, str, Any]] = []
    if rb.max_error_rate is not None:
        thresholds.append(("error-rate", repr(rb.max_error_rate), rb.max_error_rate))
    if rb.max_p90_latency_ms is not None:
        thresholds.append(("p90-latency-ms", str(rb.max_p90_latency_ms), rb.max_p90_latency_ms))
    for name, limit, threshold in thresholds:
        if prometheus:
            provider: dict[str, Any] = {
                "prometheus": {"address": rb.prometheus_url, "query": queries[name]}
            }
        elif name == "error-rate":
            provider = _cloudwatch(
                rb,
                dep.namespace,
                svc.name,
                ("errors", "Errors5xx", "Sum", False),
                ("requests", "Requests", "Sum", False),
                {"id": "rate", "expression": "FILL(errors, 0) / requests", "returnData": True},
            )
        else:
            provider = _cloudwatch(rb, dep.namespace, svc.name, ("p90", "LatencyMs", "p90", True))
        success, failure = conditions(rb, limit)
        metric: dict[str, Any] = {
            "name": name,
            "interval": "1m",
            "failureLimit": 1,
            "successCondition": success,
            "failureCondition": failure,
            "threshold": threshold,
            "provider": provider,
        }
        if blue_green:  # pre- and post-promotion analysis must end (see the module doc)
            metric["count"] = rb.measurements
        metrics.append(metric)
    args = [{"name": "service"}] if prometheus else [{"name": "pod-template-hash"}]
    return {
        "templateName": f"{dep.app_name}-rollback",
        "healthChecks": rb.health_checks,
        "args": args,
        "metrics": metrics,
    }


def reference(ir: IR, service: str, template_name: str) -> dict[str, Any]:
    """How the Rollout runs the template against the Service ``service``."""
    rb = ir.rollback
    assert rb is not None
    if rb.provider == "prometheus":
        args: list[dict[str, Any]] = [{"name": "service", "value": service}]
    else:  # the ReplicaSet the new pods belong to (the canary, the preview)
        args = [{"name": "pod-template-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]
    return {"templates": [{"templateName": template_name}], "args": args}
