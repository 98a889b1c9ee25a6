"""Golden files: every file of every sample x target, one readable snapshot file each."""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from pipecompile.frontend import compile_file
from pipecompile.jobs import expected

from .conftest import ROOT, SAMPLES


class TextFile(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "txt"


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
def test_generated_file(built: dict[str, Path], sample: str, path: str, snapshot) -> None:  # type: ignore[no-untyped-def]
    text = (built[sample] / path).read_text("utf-8")
    assert text == snapshot(extension_class=TextFile)


def test_every_target_renders_for_the_reference() -> None:
    targets = {path.split("/")[0] for s, path in CASES if s == "ecommerce"}
    assert targets == {".github", "ci", "infrastructure", "kubernetes"}
