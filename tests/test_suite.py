"""The suite's own promises: the quick loop (`pytest -m "not slow"`) leaves out only
modules that exist, so a renamed module cannot slip out of the marker unnoticed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FIRST, SLOW_MODULES

ROOT = Path(__file__).resolve().parent.parent


def test_every_slow_module_exists() -> None:
    missing = [m for m in SLOW_MODULES if not (ROOT / m).is_file()]
    assert missing == []


def test_the_modules_started_first_are_slow_ones() -> None:
    names = {Path(m).name for m in SLOW_MODULES}
    assert set(FIRST) <= names
