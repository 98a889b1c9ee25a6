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

* ``analysis/analysis.go`` generateMetricTasks: a metric's first measurement waits
  ``initialDelay`` after the run starts; without one it is taken at once, when the new
  pods have just received their first requests (no scrape, no datapoint yet).
  assessMetricFailureInconclusiveOrError counts Inconclusive measurements over the whole
  run, not in a row.
* ``utils/analysis/factory.go`` BuildArgumentsForRolloutAnalysisRun: an argument
  ``valueFrom: podTemplateHashValue: Latest`` is the new ReplicaSet's
  ``rollouts-pod-template-hash``: the canary's, the preview's (and, after promotion, the
  active version's) pods and no others. An argument ``valueFrom: fieldRef`` of a
  ``status.`` path is read from the Rollout (extractValueFromRollout); a path not there
  yet fails the AnalysisRun's creation, which the controller retries.
* CloudWatch reads the ALB's own target-group metrics (namespace AWS/ApplicationELB),
  which nothing in the cluster has to publish. With ALB traffic routing the canary's
  requests go to the canary Service's target group, whose targets are only the canary
  pods (the controller points that Service's selector at the new ReplicaSet). Which
  target group and load balancer that is, the controller records in the Rollout's
  ``status.alb`` when it runs with ``--aws-verify-target-group``
  (rollout/trafficrouting/alb/alb.go VerifyWeight: without the flag it clears
  ``status.alb``; updateLoadBalancerStatus / updateTargetGroupStatus: ``fullName`` is the
  ARN after ``loadbalancer/app/`` resp. ``targetgroup/``), before the first setWeight
  step completes, so before background analysis starts (``startingStep: 1``). The
  dimensions are ``LoadBalancer: app/<fullName>`` and ``TargetGroup:
  targetgroup/<fullName>`` (Elastic Load Balancing User Guide, "CloudWatch metrics for
  your Application Load Balancer"). Blue-green has no traffic routing, so no
  ``status.alb``: the front end refuses CloudWatch analysis on a blue-green Rollout.

So every query returns exactly one sample: the value, or -1 when the version served no
request in the window (never "no data", never NaN); -1 satisfies neither condition
(Inconclusive) unless ``rollback.no_traffic`` is ``pass``. A run tolerates
``INCONCLUSIVE_LIMIT`` inconclusive measurements; one more pauses the rollout.

Prometheus selects the new version's pods by their pod-template hash (the ServiceMonitor
copies the pod label ``rollouts-pod-template-hash`` onto every series, which Prometheus
Operator names ``rollouts_pod_template_hash``), and through the Service the analysis
measures: a Service's name alone also covers the old pods' series of the window, from
before the controller pointed the Service at the new ReplicaSet.
"""

from __future__ import annotations

import re
from typing import Any

from ...ir import IR, Deployment, Rollback, Service, Strategy

NO_TRAFFIC = -1  # what a query returns for a version that served no request
HASH_ARG = "pod-template-hash"  # the template's argument: the new ReplicaSet's hash
# the label Prometheus Operator gives the pod label rollouts-pod-template-hash when a
# ServiceMonitor lists it in podTargetLabels (prometheus-operator v0.93.0
# pkg/prometheus/promcfg.go: target_label sanitizeLabelName(l), [^a-zA-Z0-9_] -> _)
HASH_POD_LABEL = "rollouts-pod-template-hash"
HASH_LABEL = "rollouts_pod_template_hash"
# CloudWatch: the ALB's target-group metrics and the Rollout status fields naming them
ALB_NAMESPACE = "AWS/ApplicationELB"
LB_ARG = "load-balancer"
TG_ARG = "canary-target-group"
ALB_STATUS = {
    LB_ARG: "status.alb.loadBalancer.fullName",
    TG_ARG: "status.alb.canaryTargetGroup.fullName",
}
FAILURE_LIMIT = 1  # failed measurements a run tolerates (the next one aborts)
INCONCLUSIVE_LIMIT = 2  # inconclusive measurements a run tolerates (the next one pauses)
# Measurements in a row that may fail to query the metrics (Prometheus restarting, a
# CloudWatch throttle) before the run is Error. argo-rollouts v1.9.0 rollout/analysis.go
# aborts the rollout on an Error run exactly as on a Failed one, and no limit turns
# errors into Inconclusive (analysis/analysis.go assessMetricFailureInconclusiveOrError:
# the error test is last and wins): so the limit is how long an outage of the metrics
# backend is ridden out, measurement by measurement (one a minute), before it aborts. An
# Error is not a measurement towards count (runMeasurements), so a counted run lasts that
# much longer. The default, 4, aborted healthy releases on a five-minute outage.
CONSECUTIVE_ERROR_LIMIT = 10
# Progress deadline of a Rollout whose analysis does not make it wait paused: the
# controller default (600 s), or one run plus the outage it rides out plus this margin.
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
PROGRESS_MARGIN_MINUTES = 5
# Prometheus: the new pods are scraped every 30 s from the moment they are endpoints;
# rate() needs two samples of requests they served. Two minutes give four.
PROMETHEUS_FIRST_MINUTES = 2
# CloudWatch: a minute's datapoint of the ALB's metrics (published every 60 s while
# requests flow) can be read up to this long after the minute ends; the query looks
# back this much further than the window, so a window's datapoints are there when it
# is judged.
CLOUDWATCH_LAG_MINUTES = 2
# CloudWatch: the error rate of the whole look-back, not of each minute (one bad minute
# is in every window that covers it: judged per minute, it failed up to seven
# measurements of a canary whose rate is well under the threshold). Metric math (Amazon
# CloudWatch User Guide, "Metric math syntax and functions"): FILL(errors, 0) gives the
# minutes without a 5xx a zero; SUM of one time series is a scalar, the window's total;
# requests / requests is 1 at each minute the new pods served a request, so every value
# returned is sum(errors) / sum(requests) and there are as many as minutes with traffic
# (the conditions' datapoint guard still counts them; no request at all: no value).
CLOUDWATCH_ERROR_RATE = "SUM(FILL(errors, 0)) / SUM(requests) * (requests / requests)"
# TargetResponseTime is in seconds; the threshold is in milliseconds
CLOUDWATCH_LATENCY_MS = "1000 * latency"
# CloudWatch: the p90 is judged on the window's per-minute p90s as a whole, as the
# error rate is: a measurement fails when most of its minutes (the median minute) are
# over the threshold. One slow minute (a warm-up right after setWeight) is in every
# window that covers it, up to seven; judged by any(...) it failed two measurements and
# aborted the canary (failureLimit 1). A p90 of p90s cannot be computed by metric math,
# so the conditions count the slow minutes (expr's count builtin).


def _minutes(duration: str) -> int:
    return int(duration.removesuffix("m"))


def initial_delay_minutes(rb: Rollback) -> int:
    """How long a run waits before its first measurement: until a healthy new version
    has enough data to be judged (a scrape pair; ``min_datapoints`` published minutes)."""
    if rb.provider == "prometheus":
        return PROMETHEUS_FIRST_MINUTES
    return min_datapoints(rb) + CLOUDWATCH_LAG_MINUTES + 1


def inconclusive_limit(rb: Rollback, counted: bool) -> int:
    """A counted run (blue-green) of ``measurements`` all inconclusive must still pause:
    the limit stays below the count (and the controller wants count >= inconclusiveLimit,
    utils/analysis/factory.go ValidateMetric)."""
    return min(INCONCLUSIVE_LIMIT, rb.measurements - 1) if counted else INCONCLUSIVE_LIMIT


def cloudwatch_interval_minutes(rb: Rollback) -> int:
    """GetMetricData's look-back: the window and the publication lag."""
    return _minutes(rb.window) + CLOUDWATCH_LAG_MINUTES


def lookback(rb: Rollback) -> str:
    """How far back a measurement reads, in words: the window (Prometheus' range), or
    CloudWatch's interval, the window and the publication lag."""
    if rb.provider == "prometheus":
        return rb.window
    return (
        f"{cloudwatch_interval_minutes(rb)}m ({rb.window} window + "
        f"{CLOUDWATCH_LAG_MINUTES}m for late datapoints)"
    )


def run_minutes(rb: Rollback) -> int:
    """How long a counted (blue-green) run takes: the delay, then one a minute."""
    return initial_delay_minutes(rb) + rb.measurements - 1


def progress_deadline_seconds(rb: Rollback | None, kind: str) -> int:
    """``progressDeadlineSeconds`` of the Rollout. argo-rollouts v1.9.0 utils/conditions/
    conditions.go RolloutTimedOut: the deadline runs from the Progressing condition's
    last update and stops only while the Rollout is paused (RolloutPausedReason). A
    blue-green Rollout is not paused while pre-promotion analysis runs (rollout/
    bluegreen.go reconcileBlueGreenPause waits for the analysis before it adds the pause),
    nor during post-promotion analysis: the deadline must outlast a whole run, errors
    included, or progressDeadlineAbort aborts a healthy release mid-analysis. A canary's
    background analysis runs through pause steps (paused: the clock stops)."""
    if (
        rb is None
        or kind != "blue-green"
        or (rb.max_error_rate is None and rb.max_p90_latency_ms is None)
    ):
        return DEFAULT_PROGRESS_DEADLINE_SECONDS
    minutes = run_minutes(rb) + CONSECUTIVE_ERROR_LIMIT + PROGRESS_MARGIN_MINUTES
    return max(DEFAULT_PROGRESS_DEADLINE_SECONDS, minutes * 60)


_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def _seconds(duration: str | None) -> float:
    """A pause as the language writes it ("10m", "90s"; a bare number is seconds)."""
    if not duration:
        return 0
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h)?", duration)
    assert m, duration  # the model's pattern guarantees the shape
    return int(m.group(1)) * _SECONDS[m.group(2) or "s"]


def unjudged_steps(rb: Rollback, strategy: Strategy) -> list[int]:
    """The canary steps (0-based) whose weight no measurement of the background analysis
    judges: the traffic moves on (or the rollout completes) before a measurement is taken
    at that weight. The analysis starts with the first step's pause (``startingStep: 1``),
    measures at ``initialDelay`` and then once a minute; a step holds its weight for its
    pause (setWeight itself takes no time). The last step without a pause is the
    promotion at 100 %, nothing left to judge."""
    first = initial_delay_minutes(rb) * 60
    out: list[int] = []
    start = 0.0
    for i, step in enumerate(strategy.steps):
        hold = _seconds(step.pause)
        if i == len(strategy.steps) - 1 and step.weight == 100 and not hold:
            break
        # the first measurement after the step's start (one due at the very moment the
        # weight changes may still see the previous weight: it is not counted)
        taken = first if start < first else first + ((start - first) // 60 + 1) * 60
        if taken >= start + hold:
            out.append(i)
        start += hold
    return out


def measured_service(svc: Service, dep: Deployment) -> str:
    """The Service whose traffic the canary / pre-promotion analysis measures."""
    return f"{svc.name}-{'canary' if dep.strategy.kind == 'canary' else 'preview'}"


def exclude_regex(paths: tuple[str, ...]) -> str:
    """An RE2 alternation of the literal paths, as a PromQL double-quoted string's
    content (the model allows only [A-Za-z0-9._~/-]: '.' is the one metacharacter, and
    its backslash is doubled for the string). A series without the label has it empty,
    which no path matches: it is kept."""
    return "|".join(p.replace(".", "\\\\.") for p in paths)


def prometheus_queries(rb: Rollback, namespace: str, service: str, pod_hash: str) -> dict[str, str]:
    """metric name -> PromQL, for the pods of hash ``pod_hash`` behind the Service
    ``service`` (``{{args.pod-template-hash}}``, ``{{args.service}}`` in the template)
    in ``namespace``."""
    sel = (
        f'{rb.namespace_label}="{namespace}",{rb.service_label}="{service}",'
        f'{HASH_LABEL}="{pod_hash}"'
    )
    if rb.exclude_paths:  # probes, health checks and scrapes are not traffic
        sel += f',{rb.path_label}!~"{exclude_regex(rb.exclude_paths)}"'

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


def conditions(rb: Rollback, limit: str, median: bool = False) -> tuple[str, str]:
    """(successCondition, failureCondition) for a threshold ``limit``; ``median``
    (CloudWatch): judge the window's values by their median, not each one."""
    if rb.provider == "prometheus":
        one = "len(result) == 1"
        if rb.no_traffic == "pass":
            return f"{one} && result[0] <= {limit}", f"{one} && result[0] > {limit}"
        return (
            f"{one} && result[0] >= 0 && result[0] <= {limit}",
            f"{one} && result[0] > {limit}",
        )
    values = "result[0].Values"
    if median:  # most minutes over the threshold fail, see CLOUDWATCH_LATENCY_MS
        slow = f"count({values}, {{# > {limit}}}) * 2"
        ok, bad = f"{slow} <= len({values})", f"{slow} > len({values})"
    else:
        ok, bad = f"all({values}, {{# <= {limit}}})", f"any({values}, {{# > {limit}}})"
    if rb.no_traffic == "pass":
        return f"len(result) == 1 && {ok}", f"len(result) == 1 && {bad}"
    enough = f"len(result) == 1 && len({values}) >= {min_datapoints(rb)}"
    return f"{enough} && {ok}", f"{enough} && {bad}"


def _cloudwatch(rb: Rollback, *queries: Any) -> dict[str, Any]:
    """An Argo Rollouts cloudWatch provider over the canary target group's metrics on
    its ALB (see the module doc: the arguments come from the Rollout's status.alb)."""
    dims = [
        {"name": "TargetGroup", "value": "targetgroup/{{args." + TG_ARG + "}}"},
        {"name": "LoadBalancer", "value": "app/{{args." + LB_ARG + "}}"},
    ]

    def stat(qid: str, metric: str, statistic: str, returned: bool) -> dict[str, Any]:
        return {
            "id": qid,
            "returnData": returned,
            "metricStat": {
                "metric": {
                    "namespace": ALB_NAMESPACE,
                    "metricName": metric,
                    "dimensions": dims,
                },
                "period": 60,
                "stat": statistic,
            },
        }

    built = [stat(*q) if isinstance(q, tuple) else q for q in queries]
    interval = f"{cloudwatch_interval_minutes(rb)}m"
    return {"cloudWatch": {"interval": interval, "metricDataQueries": built}}


def template(ir: IR, svc: Service, dep: Deployment) -> dict[str, Any] | None:
    """The values of the AnalysisTemplate ``<app>-rollback`` (None: no analysis)."""
    rb = ir.rollback
    if rb is None or dep.strategy.kind == "rolling":
        return None
    blue_green = dep.strategy.kind == "blue-green"
    prometheus = rb.provider == "prometheus"
    queries = (
        prometheus_queries(rb, dep.namespace, "{{args.service}}", "{{args." + HASH_ARG + "}}")
        if prometheus
        else {}
    )
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
                ("errors", "HTTPCode_Target_5XX_Count", "Sum", False),
                ("requests", "RequestCount", "Sum", False),
                {"id": "rate", "expression": CLOUDWATCH_ERROR_RATE, "returnData": True},
            )
        else:
            provider = _cloudwatch(
                rb,
                ("latency", "TargetResponseTime", "p90", False),
                {"id": "ms", "expression": CLOUDWATCH_LATENCY_MS, "returnData": True},
            )
        success, failure = conditions(rb, limit, median=name == "p90-latency-ms")
        metric: dict[str, Any] = {
            "name": name,
            # the first measurement once a healthy version has data (see the module doc)
            "initialDelay": f"{initial_delay_minutes(rb)}m",
            "interval": "1m",
            "failureLimit": FAILURE_LIMIT,
            "inconclusiveLimit": inconclusive_limit(rb, blue_green),
            # a metrics outage is ridden out this many minutes (see the constant)
            "consecutiveErrorLimit": CONSECUTIVE_ERROR_LIMIT,
            "successCondition": success,
            "failureCondition": failure,
            "threshold": threshold,
            "provider": provider,
        }
        if blue_green:  # pre- and post-promotion analysis must end (see the module doc)
            metric["count"] = rb.measurements
        metrics.append(metric)
    if blue_green and prometheus and rb.smoke_path and metrics:
        metrics.append(smoke_metric(rb, svc, dep))
    args = (
        [{"name": "service"}, {"name": HASH_ARG}]
        if prometheus
        else [{"name": LB_ARG}, {"name": TG_ARG}]
    )
    return {
        "templateName": f"{dep.app_name}-rollback",
        "healthChecks": rb.health_checks,
        "args": args,
        "metrics": metrics,
    }


SMOKE_TIMEOUT_SECONDS = 10  # the web provider's own default, written out


def smoke_metric(rb: Rollback, svc: Service, dep: Deployment) -> dict[str, Any]:
    """``smoke-requests``: the controller requests ``rollback.smoke_path`` once a minute
    through the Service the run measures (the preview, then the active one), so an
    otherwise idle preview has traffic for the other metrics to judge, and a version that
    does not answer is stopped. argo-rollouts v1.9.0 metricproviders/webmetric/
    webmetric.go Run: an answer that is not 2xx (or none within timeoutSeconds) is a
    measurement Error; parseResponse: a 2xx answer, JSON or not, with no conditions is
    Successful (utils/evaluate/evaluate.go: no success and no failure condition). So
    ``consecutiveErrorLimit: 1``: one lost request is ridden out, two in a row are an
    Error run, which aborts (a preview is never promoted, a promoted version switches
    back). Counted as the other metrics are: an Error is not a measurement towards
    ``count``."""
    url = f"http://{{{{args.service}}}}.{dep.namespace}.svc.cluster.local:{svc.port}{rb.smoke_path}"
    return {
        "name": "smoke-requests",
        "interval": "1m",
        "count": rb.measurements,
        "failureLimit": 0,
        "consecutiveErrorLimit": 1,
        "provider": {"web": {"url": url, "timeoutSeconds": SMOKE_TIMEOUT_SECONDS}},
    }


def reference(ir: IR, service: str, template_name: str) -> dict[str, Any]:
    """How the Rollout runs the template against the Service ``service``."""
    rb = ir.rollback
    assert rb is not None
    if rb.provider == "cloudwatch":  # the canary's target group on its ALB
        args: list[dict[str, Any]] = [
            {"name": arg, "valueFrom": {"fieldRef": {"fieldPath": path}}}
            for arg, path in ALB_STATUS.items()
        ]
    else:  # the Service, and the ReplicaSet the new pods belong to (canary, preview)
        args = [
            {"name": "service", "value": service},
            {"name": HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}},
        ]
    return {"templates": [{"templateName": template_name}], "args": args}
