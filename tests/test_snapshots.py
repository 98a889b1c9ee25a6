"""Golden files: the committed outputs under samples/ are the one golden set.

Every file a fresh build of a sample generates must equal its committed copy
byte for byte, and the sample may hold no generated file the build does not
make.  Changing what pipecompile generates therefore shows up as a diff of
samples/ in review; regenerate with ``pipecompile build -f samples/<s>/pipeline.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecompile.compiler import compile_file
from pipecompile.jobs import expected
from tests.conftest import ROOT, SAMPLES


def _cases() -> list[tuple[str, str]]:
    cases = []
    for sample in SAMPLES:
        pipeline = ROOT / "samples" / sample / "pipeline.yaml"
        ir = compile_file(pipeline, "pipeline.yaml")
        cases += [(sample, str(path)) for path in expected(ir)]
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("sample", "path"), CASES, ids=[f"{s}:{p.replace('/', '__')}" for s, p in CASES]
)
def test_generated_file(built: dict[str, Path], sample: str, path: str) -> None:
    fresh = (built[sample] / path).read_text("utf-8")
    committed = (ROOT / "samples" / sample / path).read_text("utf-8")
    assert fresh == committed, (
        f"regenerate with: pipecompile build -f samples/{sample}/pipeline.yaml"
    )


@pytest.mark.parametrize("sample", SAMPLES)
def test_samples_hold_only_generated_files(sample: str) -> None:
    folder = ROOT / "samples" / sample
    on_disk = {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name != "pipeline.yaml" and ".pipecompile" not in p.parts
    }
    assert on_disk == {path for s, path in CASES if s == sample}


def test_every_target_renders_for_the_reference() -> None:
    targets = {path.split("/")[0] for s, path in CASES if s == "ecommerce"}
    assert targets == {".github", "ci", "infrastructure", "kubernetes", "dev"}
