"""Which canary steps the background analysis judges (PC309): a step's weight is judged
when a measurement (initialDelay after the analysis starts with step 1's pause, then one
a minute: argo-rollouts v1.9.0 analysis/analysis.go generateMetricTasks) is taken while
the step holds it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipecompile.ir import CanaryStep, Strategy
from pipecompile.targets.chart.analysis import unjudged_steps
from tests.targets.helm.test_chart import ir_of


def canary(*steps: tuple[int, str | None]) -> Strategy:
    return Strategy("c", "canary", tuple(CanaryStep(w, p) for w, p in steps))


@pytest.mark.parametrize(
    ("steps", "unjudged"),
    [
        # Prometheus: the first measurement at 2m
        (((10, "5m"), (50, "5m"), (100, None)), []),
        (((10, "2m"), (100, None)), [0]),  # ends as the first measurement is due
        (((10, "121s"), (100, None)), []),
        (((10, "1m"), (20, "1m"), (30, "1m"), (100, None)), [0, 1, 2]),  # 2m: as 3 starts
        (((10, "3m"), (20, "30s"), (30, "1m"), (100, None)), [1]),  # 2m, 3m (as 2 starts), 4m
        (((10, "5m"), (50, None), (100, None)), [1]),  # no pause: never held
        (((10, "5m"), (50, None)), [1]),  # the last step below 100 % without a pause
        (((10, "5m"), (100, "5m")), []),
    ],
)
def test_a_step_is_judged_only_when_a_measurement_falls_in_it(
    steps: tuple[tuple[int, str | None], ...], unjudged: list[int]
) -> None:
    rb = ir_of("ecommerce").rollback
    assert rb is not None and rb.provider == "prometheus"
    assert unjudged_steps(rb, canary(*steps)) == unjudged


def test_cloudwatch_waits_for_published_minutes() -> None:
    rb = ir_of("storefront").rollback
    assert rb is not None and rb.provider == "cloudwatch"
    assert unjudged_steps(rb, canary((10, "5m"), (50, "5m"), (100, None))) == [0]
    assert unjudged_steps(rb, canary((10, "10m"), (50, "10m"), (100, None))) == []
    prometheus = replace(rb, provider="prometheus")
    assert unjudged_steps(prometheus, canary((10, "5m"), (50, "5m"), (100, None))) == []
