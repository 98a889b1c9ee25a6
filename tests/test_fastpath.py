"""check's no-change fast path must agree with the full render-and-compare."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipecompile.session import Session

from .conftest import DRIFTS, build_sample, hand_edit, planned


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_fast_path_agrees_with_full_check(drift: str, tmp_path: Path) -> None:
    root = build_sample("ecommerce", tmp_path)
    DRIFTS[drift](root)
    fast = Session.open(root / "pipeline.yaml").fast_clean()
    changes = planned(root / "pipeline.yaml")
    full_clean = not changes
    if drift == "none":
        assert fast and full_clean
    elif drift == "lock-changed":
        # the lock changes no output yet (pins arrive with the lock issue): the fast
        # path must still refuse to vouch for it, and the full check decides.
        assert not fast and full_clean
    else:
        assert not fast and not full_clean


def test_a_changed_generator_is_never_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same version number, different code (a development install): full check decides."""
    from pipecompile.output import header

    root = build_sample("ecommerce", tmp_path)
    assert Session.open(root / "pipeline.yaml").fast_clean()
    monkeypatch.setattr(header, "code_fingerprint", lambda: "another generator")
    assert not Session.open(root / "pipeline.yaml").fast_clean()
    hand_edit(root)
    changes = planned(root / "pipeline.yaml")
    assert [c.reason for c in changes] == ["hand edit"]


HEAVY = ("pydantic", "ruamel", "jsonschema", "deepdiff", "jinja2", "pipecompile.ir")


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    import subprocess
    import sys

    code = (
        "import sys\nfrom pipecompile.commands.cli import main\n"
        f"status = main({args!r})\nprint('MODULES', status, *sorted(sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.split()
    at = out.index("MODULES")
    assert out[at + 1] == "0", out[: at + 2]
    return set(out[at + 2 :])


def test_the_no_change_path_imports_nothing_heavy(tmp_path: Path) -> None:
    root = build_sample("ecommerce", tmp_path)
    for args in (["check"], ["build", "-q"], ["--version"]):
        loaded = _modules_after(args, root)
        assert "click" in loaded, args  # the command ran (and exited 0)
        heavy = sorted(m for m in loaded if m.startswith(HEAVY))
        assert heavy == [], (args, heavy)
    # the detection itself works: a command that compiles loads the compiler
    loaded = _modules_after(["validate"], root)
    assert "pydantic" in loaded and "pipecompile.ir" in loaded


def test_the_entry_point_answers_a_clean_check_without_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = build_sample("ecommerce", tmp_path)
    probe = (
        "import sys; from pipecompile._entry import _fast_check; "
        "print(_fast_check(sys.argv[1:]), 'click' in sys.modules)"
    )

    def fast(*args: str) -> str:
        res = subprocess.run(
            [sys.executable, "-c", probe, *args], cwd=root, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        return res.stdout.strip().splitlines()[-1]

    assert fast("-q") == "0 False"  # clean: answered, click never imported
    assert fast("-f", "pipeline.yaml") == "0 False"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True
    ).stdout
    assert out.splitlines()[0] == "check: pipeline.yaml: the generated files are up to date"
    for args in (["--diff"], ["--format", "json"], ["-f"], ["--help"]):
        assert fast(*args) == "None False"  # anything else: the full command line
    hand_edit(root)
    assert fast("-q") == "None False"  # not clean: the full check says why
