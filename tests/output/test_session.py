"""One build session: each input is read once and pipecompile's code is hashed once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.frontend import loader, pins
from pipecompile.frontend import read as frontend
from pipecompile.output import header
from tests.conftest import build_sample


@pytest.mark.parametrize("command", ["build", "check", "diff", "lint"])
def test_a_command_reads_and_hashes_each_input_once(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_sample("ecommerce", tmp_path)
    (root / "pipecompile.lock").write_text("{}\n")
    pipeline = root / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("port: 3000", "port: 3001"))
    calls: Counter[str] = Counter()

    def counted(name: str, real: object) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return real(*args, **kwargs)  # type: ignore[operator]

        return wrapper

    monkeypatch.setattr(frontend, "read", counted("pipeline", frontend.read))
    monkeypatch.setattr(pins, "read_lock", counted("lock", pins.read_lock))
    monkeypatch.setattr(header, "code_fingerprint", counted("code", header.code_fingerprint))
    monkeypatch.setattr(loader, "load", counted("parse", loader.load))
    status = cli.main([command, "-f", str(pipeline)])
    assert status in (0, 1)
    expected = {"pipeline": 1, "lock": 1, "parse": 1}
    if command != "lint":  # lint records nothing, so it needs no fingerprint
        expected["code"] = 1
    assert dict(calls) == expected
