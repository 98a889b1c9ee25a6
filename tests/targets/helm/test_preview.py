"""A blue-green preview that is measured (issue 27): before promotion nobody uses the
preview, so its error-rate and latency measurements had nothing to judge and every
release paused as inconclusive. ``rollback.smoke_path``: the controller itself requests
the path once a minute through the Service the run measures (web metric
``smoke-requests``), those requests are the preview's traffic, and a preview that does
not answer is never promoted.

* argo-rollouts v1.9.0 metricproviders/webmetric/webmetric.go Run: no answer within
  timeoutSeconds, or an answer that is not 2xx, is a measurement Error; parseResponse: a
  2xx answer, JSON or not, with no condition is Successful (utils/evaluate/evaluate.go
  EvaluateResult: "Always return success unless there is an error").
* The run's decision: tests/targets/helm/test_rollouts.py run_outcome (analysis/analysis.go).
* The requests reach Prometheus as the preview pods' own series: promtool proves the
  thresholds' queries then judge a value, not "no traffic".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.targets.chart import analysis
from pipecompile.targets.chart.analysis import HASH_LABEL
from tests.conftest import ROOT
from tests.targets.helm.test_chart import by_kind, lookup
from tests.targets.helm.test_rollouts import (
    LATEST_HASH,
    analysed,
    decide_all,
    evaluator,  # noqa: F401 - the session fixture
    promtool_values,
    references,
    rendered,
    resolve,
    run_outcome,
)


def smoked() -> list[tuple[str, str, str]]:
    out = []
    for sample, service, env in analysed():
        ir, _, dep = lookup(sample, service, env)
        if dep.strategy.kind == "blue-green" and ir.rollback and ir.rollback.smoke_path:
            out.append((sample, service, env))
    return out


def web_phase(status: int | None) -> str:
    """The phase webmetric.go gives one answer (None: none within timeoutSeconds) of a
    metric without conditions."""
    return "Successful" if status is not None and 200 <= status < 300 else "Error"


def test_a_committed_sample_smokes_its_preview() -> None:
    assert smoked(), "no sample deploys blue-green with rollback.smoke_path"


@pytest.mark.parametrize(("sample", "service", "env"), smoked())
def test_smoke_requests_ask_the_service_each_run_measures(
    sample: str, service: str, env: str
) -> None:
    ir, _, dep = lookup(sample, service, env)
    assert ir.rollback is not None
    docs = rendered(sample, service, env)
    (template,) = by_kind(docs, "AnalysisTemplate")
    (rollout,) = by_kind(docs, "Rollout")
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    bg = rollout["spec"]["strategy"]["blueGreen"]
    expected = {
        "prePromotionAnalysis": bg["previewService"],
        "postPromotionAnalysis": bg["activeService"],
    }
    seen = set()
    for kind, ref in references(rollout):
        smoke = resolve(template, ref)["smoke-requests"]
        # no conditions: every 2xx answer is Successful, whatever its body
        assert "successCondition" not in smoke and "failureCondition" not in smoke
        # pre- and post-promotion analysis must end (ValidateAnalysisTemplateWithType)
        assert smoke["count"] == ir.rollback.measurements
        url = urlsplit(smoke["provider"]["web"]["url"])
        assert url.scheme == "http" and url.path == ir.rollback.smoke_path
        name, namespace = url.hostname.split(".")[:2]  # type: ignore[union-attr]
        assert url.hostname == f"{name}.{namespace}.svc.cluster.local"
        assert (name, namespace) == (expected[kind], dep.namespace)
        assert url.port in [p["port"] for p in services[name]["spec"]["ports"]]
        seen.add(kind)
    assert seen == set(expected)


@pytest.mark.parametrize(("sample", "service", "env"), smoked())
def test_a_preview_that_does_not_answer_is_never_promoted(
    sample: str, service: str, env: str
) -> None:
    (template,) = by_kind(rendered(sample, service, env), "AnalysisTemplate")
    smoke = next(m for m in template["spec"]["metrics"] if m["name"] == "smoke-requests")
    count = smoke["count"]

    def outcome(answers: list[int | None]) -> str:
        return run_outcome(smoke, [web_phase(a) for a in answers])

    assert outcome([200] * count) == "promote"
    assert outcome([204, 503, *[200] * count]) == "promote"  # one lost request: ridden out
    assert outcome([200, None, 200, 502, *[200] * count]) == "promote"
    assert outcome([200, 503, 503]) == "abort"  # two in a row: the run is Error
    assert outcome([None, None]) == "abort"  # not reachable at all
    assert outcome([404, 404]) == "abort"  # the path is not served


def test_the_smoke_requests_are_traffic_the_thresholds_judge(
    tmp_path: Path,
    evaluator: Path,  # noqa: F811
) -> None:
    """The preview's pods receive only the probes (excluded) and the smoke requests, one
    a minute: the error rate and the p90 are judged on those, where without them every
    measurement was Inconclusive."""
    sample, service, env = smoked()[0]
    ir, _, dep = lookup(sample, service, env)
    rb = ir.rollback
    assert rb is not None and rb.smoke_path and rb.max_error_rate and rb.max_p90_latency_ms
    preview = f"{service}-preview"
    sel = (
        f'{rb.namespace_label}="{dep.namespace}",{rb.service_label}="{preview}",'
        f'{HASH_LABEL}="{LATEST_HASH}"'
    )

    def requests(path: str, code: str, per_minute: int) -> tuple[str, str]:
        labels = f'{sel},{rb.path_label}="{path}",{rb.status_label}="{code}"'
        return f"{rb.requests_metric}{{{labels}}}", f"0+{per_minute}x10"

    def latency(path: str, per_minute: int, le_fast: str) -> list[tuple[str, str]]:
        out = []
        for le in ("0.1", "0.25", "0.5", "1", "+Inf"):
            n = per_minute if float(le) >= float(le_fast) else 0
            labels = f'{sel},{rb.path_label}="{path}",le="{le}"'
            out.append((f"{rb.latency_metric}_bucket{{{labels}}}", f"0+{n}x10"))
        labels = f'{sel},{rb.path_label}="{path}"'
        out.append((f"{rb.latency_metric}_count{{{labels}}}", f"0+{per_minute}x10"))
        return out

    probes = [requests("/healthz", "200", 24), *latency("/healthz", 24, "0.1")]
    healthy = [requests(rb.smoke_path, "200", 1), *latency(rb.smoke_path, 1, "0.1")]
    failing = [requests(rb.smoke_path, "500", 1), *latency(rb.smoke_path, 1, "0.1")]
    slow = [requests(rb.smoke_path, "200", 1), *latency(rb.smoke_path, 1, "1")]
    queries = analysis.prometheus_queries(rb, dep.namespace, preview, LATEST_HASH)
    (template,) = by_kind(rendered(sample, service, env), "AnalysisTemplate")
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    got: dict[tuple[str, str], list[float]] = {}
    for shape, series in {
        "probes only": probes,
        "smoked": probes + healthy,
        "smoked, failing": probes + failing,
        "smoked, slow": probes + slow,
    }.items():
        for name, query in queries.items():
            got[(shape, name)] = promtool_values(tmp_path, series, query)
    cases: list[tuple[dict[str, Any], str, list[float]]] = [
        (metrics[name], "prometheus", values) for (_, name), values in got.items()
    ]
    phases = dict(zip(got, decide_all(evaluator, cases), strict=True))
    assert phases == {
        ("probes only", "error-rate"): "Inconclusive",
        ("probes only", "p90-latency-ms"): "Inconclusive",
        ("smoked", "error-rate"): "Successful",
        ("smoked", "p90-latency-ms"): "Successful",
        ("smoked, failing", "error-rate"): "Failed",
        ("smoked, failing", "p90-latency-ms"): "Successful",
        ("smoked, slow", "error-rate"): "Successful",
        ("smoked, slow", "p90-latency-ms"): "Failed",
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  smoke_path: /healthz\n", "rollback.prometheus_metrics.exclude takes that path"),
        ("  smoke_path: /metrics\n", "rollback.prometheus_metrics.exclude takes that path"),
    ],
)
def test_a_smoke_path_no_analysis_measures_is_refused(line: str, message: str) -> None:
    text = (ROOT / "samples/shared-account/pipeline.yaml").read_text()
    assert "  smoke_path: /\n" in text
    with pytest.raises(PipelineError) as info:
        compile_bytes("pipeline.yaml", text.replace("  smoke_path: /\n", line).encode())
    (d,) = info.value.diagnostics
    assert d.code == "PC209" and message in d.message


def test_without_a_smoke_path_no_request_is_made() -> None:
    sample, service, env = smoked()[0]
    ir, svc, dep = lookup(sample, service, env)
    assert ir.rollback is not None
    plain = dataclasses.replace(ir, rollback=dataclasses.replace(ir.rollback, smoke_path=None))
    values = analysis.template(plain, svc, dep)
    assert values is not None
    assert [m["name"] for m in values["metrics"]] == ["error-rate", "p90-latency-ms"]
