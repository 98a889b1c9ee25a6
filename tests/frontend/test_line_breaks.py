"""Locations count line feeds only, as ``grep -n`` and editors do, whatever the YAML
parser makes of U+0085, U+2028, U+2029 or a lone CR.

The two parsers disagree: libyaml (ruamel.yaml.clib, the fast composer) counts
NEL, LS and PS as line breaks (libyaml src/scanner.c, SKIP_LINE over IS_BREAK),
ruamel.yaml's pure reader in YAML 1.2 mode only LF and a lone CR
(ruamel/yaml/reader.py, Reader.forward).  Both give the character offset of a
mark (``Mark.index``), and the loader counts line feeds up to it: one answer
for both, for node positions, syntax errors and the duplicate-key message."""

from __future__ import annotations

import pytest

from pipecompile.errors import PipelineError
from pipecompile.frontend.loader import load
from tests.conftest import ROOT

MINIMAL = (ROOT / "samples/minimal/pipeline.yaml").read_text()
ODD = ["\u2028", "\u0085", "\u2029", "\r", "\r\n"]


def grep_n(text: str, needle: str) -> tuple[int, int]:
    """Line and column of ``needle`` as an editor shows them (line feeds only)."""
    at = text.index(needle)
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


def errors(text: str, *, fast: bool) -> list[tuple[int, int, str]]:
    with pytest.raises(PipelineError) as info:
        load("pipeline.yaml", text.encode(), fast=fast)
    return [(d.line, d.column, d.message) for d in info.value.diagnostics]


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure"])
@pytest.mark.parametrize("char", ODD, ids=repr)
def test_positions_of_values(char: str, fast: bool) -> None:
    text = f"# one{char}\n# two{char}\n" + MINIMAL
    doc = load("pipeline.yaml", text.encode(), fast=fast)
    line, col = grep_n(text, "project:")
    assert doc.key_pos[("project",)] == (line, col)
    assert doc.value_pos[("project",)] == (line, col + len("project: "))


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure"])
@pytest.mark.parametrize("char", ODD, ids=repr)
def test_a_syntax_error_after_one(char: str, fast: bool) -> None:
    text = f"# a comment{char}\n" + MINIMAL + "extra: [unclosed\n"
    [(line, col, message)] = errors(text, fast=fast)
    assert message.startswith("YAML syntax error:")
    # the parser notices at the end of the file: the line after the last one
    assert line == text.count("\n") + 1 and col == 1, message


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure"])
@pytest.mark.parametrize("char", ODD, ids=repr)
def test_a_duplicate_key_after_one(char: str, fast: bool) -> None:
    text = f"# a{char}\n" + MINIMAL.replace("\nsource:", f"\n# b{char}\nproject: again\nsource:", 1)
    first = grep_n(text, "project:")
    second = grep_n(text, "project: again")
    assert errors(text, fast=fast) == [
        (*second, f"duplicate key 'project' (first defined on line {first[0]})")
    ]


def test_a_tab_after_one_is_located_and_hinted() -> None:
    text = "# a\u2028\n" + MINIMAL.replace("project:", "\tproject:", 1)
    [(line, col, message)] = errors(text, fast=False)
    assert (line, col) == grep_n(text, "\tproject:")
    assert "use spaces" in message
