from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pipecompile.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "tests" / "schemas"
SAMPLES = sorted(p.parent.name for p in (ROOT / "samples").glob("*/pipeline.yaml"))


def build_sample(sample: str, dest: Path) -> Path:
    """Copy a sample's pipeline.yaml into ``dest`` and build it there."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "samples" / sample / "pipeline.yaml", dest / "pipeline.yaml")
    assert main(["build", "-q", "-f", str(dest / "pipeline.yaml")]) == 0
    return dest


ORDER_SERVICE = (
    "  order-service:\n    path: services/order\n"
    "    image: ecommerce/order-service\n    port: 8080\n"
)


def remove_order_service(pipeline: Path) -> None:
    """Drop the reference's order-service, so that its generated files go stale."""
    text = pipeline.read_text()
    assert ORDER_SERVICE in text
    pipeline.write_text(text.replace(ORDER_SERVICE, ""))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every sample built once into its own temporary folder."""
    return {s: build_sample(s, tmp_path_factory.mktemp(s)) for s in SAMPLES}


def hcl_norm(v: Any) -> Any:
    """python-hcl2 8 keeps the quotes of labels and string literals and adds
    ``__is_block__`` and ``__comments__`` keys; drop them."""
    if isinstance(v, dict):
        return {k.strip('"'): hcl_norm(x) for k, x in v.items() if not k.startswith("__")}
    if isinstance(v, list):
        return [hcl_norm(x) for x in v]
    return v.strip('"') if isinstance(v, str) else v


def files(root: Path, folder: str, pattern: str) -> list[Path]:
    return sorted((root / folder).glob(pattern))
