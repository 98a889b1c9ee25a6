"""The default image pins: each by digest with its source cited, or listed as unverified
and said by ``explain`` and ``pins``."""

from __future__ import annotations

import re

from click.testing import CliRunner

from pipecompile.commands.cli import cli
from pipecompile.frontend.pins import DEFAULTS, IMAGE_SOURCES, UNVERIFIED, image_problem
from tests.conftest import ROOT

IMAGES = sorted(k for k in DEFAULTS if k.endswith("_image"))


def test_every_default_image_is_by_digest_with_a_source_or_listed_unverified() -> None:
    assert IMAGES == [
        "dependency_check_image",
        "sonar_scanner_image",
        "syft_image",
        "zap_image",
    ]
    for key in IMAGES:
        value = DEFAULTS[key]
        assert image_problem(value) is None, key
        if key in UNVERIFIED:
            assert "@" not in value and key not in IMAGE_SOURCES, key
            continue
        # a version tag and a sha256 digest (go-digest: 64 lowercase hex digits)
        m = re.fullmatch(r"[a-z0-9./_-]+:([A-Za-z0-9._-]+)@sha256:([0-9a-f]{64})", value)
        assert m, (key, value)
        source = IMAGE_SOURCES[key]
        assert m.group(1) in source, (key, source)  # the tag the source names
    assert set(IMAGE_SOURCES) | set(UNVERIFIED) == set(IMAGES)
    assert not set(IMAGE_SOURCES) & set(UNVERIFIED)


def test_the_scanner_and_syft_images_are_pinned_by_digest() -> None:
    for key in ("sonar_scanner_image", "syft_image", "zap_image"):
        assert "@sha256:" in DEFAULTS[key], key


def test_explain_and_pins_report_an_image_pinned_by_tag_only() -> None:
    pipeline = str(ROOT / "samples/ecommerce/pipeline.yaml")
    runner = CliRunner()
    explained = runner.invoke(cli, ["explain", "-q", "-f", pipeline])
    assert explained.exit_code == 0, explained.output
    lines = [ln for ln in explained.output.splitlines() if ln.startswith("Image pin: ")]
    assert len(lines) == 1
    assert lines[0].startswith(
        "Image pin: dependency_check_image owasp/dependency-check:12.1.0 (default) is pinned "
        "by its tag only: no digest"
    )
    pins = runner.invoke(cli, ["pins", "-q", "-f", pipeline])
    assert pins.exit_code == 0, pins.output
    warned = [ln for ln in pins.output.splitlines() if ln.startswith("warning: ")]
    assert len(warned) == 1 and "dependency_check_image" in warned[0]
