"""The rest of the specification (issue 29): scheduled DAST against production,
notifications that arrive, pipeline monitoring, merge gates, compliance jobs, the first
apply phase by phase, audit and rollback, chart releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipecompile.frontend import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets import render_all

from .conftest import ROOT

SAMPLES = ROOT / "samples"
REF = SAMPLES / "ecommerce"  # delivery: codepipeline (the default)
GHA = SAMPLES / "storefront"  # delivery: github-actions
ACCEPTANCE = Path("/work/shared/acceptance/ecommerce.pipeline.yaml")


def ir_of(sample: Path) -> IR:
    return compile_bytes("pipeline.yaml", (sample / "pipeline.yaml").read_bytes())


def doc(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rendered(source: str) -> tuple[IR, dict[str, str]]:
    ir = compile_bytes("pipeline.yaml", source.encode())
    return ir, {str(p): body for p, (_, body) in render_all(ir).items()}


MINI = """\
version: 1
project: shop
source: {repository: example/shop}
aws: {region: eu-west-3, account_id: "012345678901"}
environments:
  staging: {branches: ["release/*"], url: "https://staging.example.com"}
  production: {branches: [main], approval: true%(prod)s}
security:
  dast:
    environment: staging
%(schedule)s
gitops: {repository: 'git@github.com:example/gitops.git'}
services: {web: {}}
"""


# -- 5. DAST weekly against production --------------------------------------------------


def test_the_reference_sample_is_the_acceptance_file() -> None:
    if ACCEPTANCE.exists():  # the shared copy exists on the development machine only
        assert (REF / "pipeline.yaml").read_bytes() == ACCEPTANCE.read_bytes()
    assert ir_of(REF).environment("production").url == "https://shop.example.com"


def test_the_scheduled_scan_targets_production_at_its_url() -> None:
    for sample, url in ((REF, "https://shop.example.com"), (GHA, "https://storefront.example.com")):
        dast = doc(sample / ".github/workflows/dast.yml")
        assert dast["on"]["schedule"] == [{"cron": "0 3 * * 1"}]  # weekly
        env = dast["jobs"]["zap"]["steps"][0]["env"]
        assert (env["DAST_ENVIRONMENT"], env["DAST_URL"]) == ("production", url)
        # the gate after each deploy still scans the DAST environment (staging)
        assert ir_of(sample).security.dast.environment == "staging"  # type: ignore[union-attr]


def test_without_a_production_url_the_schedule_is_a_located_warning() -> None:
    ir, files = rendered(MINI % {"prod": "", "schedule": "    schedule: daily"})
    assert [str(w) for w in ir.warnings if "scheduled DAST" in w.message] == [
        "pipeline.yaml:11:15: warning: security.dast.schedule: the scheduled DAST scan targets "
        "'production' (last in promotion order), which has no 'url': it scans nothing; set "
        "environments.production.url"
    ]
    assert not any(p.endswith("dast.yml") for p in files)
    # the gate after the staging deploy is unaffected
    assert ir.security.dast is not None and ir.security.dast.url == "https://staging.example.com"


def test_with_a_production_url_there_is_no_warning() -> None:
    ir, files = rendered(MINI % {"prod": ', url: "https://example.com"', "schedule": ""})
    assert not [w for w in ir.warnings if "DAST" in w.message]
    dast = yaml.safe_load(files[".github/workflows/dast.yml"])
    assert dast["jobs"]["zap"]["steps"][0]["env"]["DAST_URL"] == "https://example.com"


def test_explain_schedule_names_the_production_scan() -> None:
    from pipecompile.explain import explain_event

    assert explain_event(ir_of(REF), "schedule", "") == [
        "dast.yml runs OWASP ZAP against https://shop.example.com (production) on cron '0 3 * * 1'"
    ]
