"""Load a pipeline file into plain data plus the position of every value.

We compose the YAML into nodes with ruamel.yaml's pure safe parser and build
the Python values ourselves, which lets us refuse what a pipeline file has no
use for and what makes YAML dangerous to read: aliases (alias bombs), tags
(``!!python/object``), merge keys, duplicate keys, non-string keys, a byte
order mark, invalid UTF-8 and files or nesting too large to be hand-written.
Plain scalars resolve by YAML 1.2 rules, so ``on``/``yes`` stay strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Diagnostic, Path_, PipelineError
from .read import MAX_BYTES

MAX_DEPTH = 64

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
# the tags each kind of node may carry (by class name: ruamel.yaml loads lazily)
_ALLOWED_TAGS = {
    "ScalarNode": _SCALAR_TAGS,
    "SequenceNode": {_STD + "seq"},
    "MappingNode": {_STD + "map"},
}


@dataclass(frozen=True, slots=True)
class Scalar:
    """How a scalar was written: its source text and whether it was quoted."""

    text: str
    quoted: bool


@dataclass(slots=True)
class Document:
    """Plain data (dicts, lists, str, int, float, bool, None) and where it came from."""

    file: str
    data: Any
    value_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    scalars: dict[Path_, Scalar] = field(default_factory=dict)

    def pos(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Best position for ``path``: the value (or key), else its nearest parent."""
        table = self.key_pos if key else self.value_pos
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.value_pos:
                return self.value_pos[p]
            p = p[:-1]
        return self.value_pos.get((), (1, 1))

    def error(self, code: str, path: Path_, message: str, *, key: bool = False) -> Diagnostic:
        """The diagnostic of rule ``code`` (pipecompile.rules) at ``path``."""
        line, col = self.pos(path, key=key)
        return Diagnostic(self.file, line, col, tuple(path), message, code=code)


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


Place = Callable[[Any], tuple[int, int]]  # a parser's mark -> (line, column), 1-based


def _placer(text: str) -> Place:
    """(line, column) of a parser's mark as ``grep -n`` and editors show them.

    Only line feeds count.  The parsers count more, and not alike: libyaml
    (the fast composer) takes U+0085, U+2028, U+2029 and a lone CR for line
    breaks (libyaml src/scanner.c: SKIP_LINE over IS_BREAK), ruamel.yaml's pure
    reader only LF and a lone CR (ruamel/yaml/reader.py: Reader.forward, YAML
    1.2).  Both marks carry the character offset (``index``): the line is the
    number of line feeds before it.  Without any of those characters the
    parser's own numbers are right (and cost nothing)."""
    if not any(c in text for c in "\r\x85\u2028\u2029"):
        return lambda mark: (mark.line + 1, mark.column + 1)
    from bisect import bisect_left

    feeds = [m.start() for m in re.finditer("\n", text)]

    def place(mark: Any) -> tuple[int, int]:
        at = mark.index
        before = bisect_left(feeds, at)
        return before + 1, at - (feeds[before - 1] + 1 if before else 0) + 1

    return place


def decode(file: str, raw: bytes) -> str:
    """Decode the file as UTF-8, refusing a BOM, invalid bytes and huge files."""

    def fail(line: int, col: int, msg: str) -> PipelineError:
        return PipelineError([Diagnostic(file, line, col, (), msg, code="PC101")])

    if len(raw) > MAX_BYTES:
        raise fail(
            1, 1, f"file is larger than {MAX_BYTES:,} bytes, the most a pipeline file may be"
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        raise fail(1, 1, "file starts with a byte-order mark; save it as UTF-8 without BOM")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        raise fail(
            line, col, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _compose_fast(text: str) -> Any:
    """Compose with libyaml (ruamel.yaml.clib) when installed; None if unavailable or failed.

    The C composer is about six times faster on large files and resolves
    scalars by the same YAML 1.2 rules.  On any error we return None and the
    pure-Python parser composes again, so error messages and positions are
    always the pure parser's.
    """
    try:
        from ruamel.yaml import YAML

        return YAML(typ="safe", pure=False).compose(text)
    except Exception:  # no clib, or invalid YAML: the pure parser decides
        return None


def load(file: str, raw: bytes, *, fast: bool = True) -> Document:
    """Parse ``raw`` (the bytes of ``file``) into a :class:`Document`."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    text = decode(file, raw)
    yaml = YAML(typ="safe", pure=True)
    try:
        node = _compose_fast(text) if fast else None
        if node is None:
            node = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _placer(text)(mark) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "another document" in problem:
            problem = "a pipeline file holds one YAML document; remove the second '---'"
        if "'\\t'" in problem or "\t" in problem:
            problem += " (YAML does not allow tabs for indentation; use spaces)"
        else:
            problem += indentation_hint(text, line)
        raise PipelineError(
            [Diagnostic(file, line, col, (), f"YAML syntax error: {problem}", code="PC102")]
        ) from None
    except ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        raise PipelineError(
            [
                Diagnostic(
                    file,
                    line,
                    col,
                    (),
                    f"character U+{exc.character:04X} is not allowed in "
                    "YAML; write it as an escape in a double-quoted "
                    "string",
                    code="PC101",
                )
            ]
        ) from None
    except RecursionError:
        too_deep = Diagnostic(file, 1, 1, (), "document nests too deeply", code="PC102")
        raise PipelineError([too_deep]) from None
    except YAMLError as exc:  # e.g. several documents in one file
        raise PipelineError(
            [Diagnostic(file, 1, 1, (), f"YAML error: {exc}", code="PC102")]
        ) from None
    doc = Document(file, None)
    if node is None:
        raise PipelineError(
            [
                doc.error(
                    "PC105",
                    (),
                    "file is empty; a pipeline needs at least "
                    "'version', 'project', 'source', 'aws' and 'services'",
                )
            ]
        )
    errors: list[Diagnostic] = []
    doc.data = _build(node, (), doc, errors, set(), 0, _placer(text))
    if errors:
        raise PipelineError(errors)
    if not isinstance(doc.data, dict):
        raise PipelineError(
            [
                doc.error(
                    "PC106",
                    (),
                    "the top level must be a mapping of keys such as 'version:' and 'project:'",
                )
            ]
        )
    return doc


def _scalar(node: Any, path: Path_, doc: Document, errors: list[Diagnostic]) -> Any:
    tag: str = node.tag
    text: str = node.value
    doc.scalars[path] = Scalar(text, node.style in ("'", '"', "|", ">"))
    if tag == _STD + "str" or tag == _STD + "timestamp":
        return text
    if tag == _STD + "null":
        return None
    if tag == _STD + "bool":
        return text.lower() == "true"
    if tag == _STD + "int":
        digits = text.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("+-")
        base = {"0o": 8, "0x": 16, "0b": 2}.get(digits[:2].lower(), 10)
        try:
            return sign * int(digits[2:] if base != 10 else digits, base)
        except ValueError:
            errors.append(doc.error("PC107", path, f"'{text}' is not a valid integer"))
            return None
    if tag == _STD + "float":
        low = text.lower().lstrip("+")
        if low in (".inf", "-.inf", ".nan"):
            return math.nan if low == ".nan" else (-math.inf if low.startswith("-") else math.inf)
        try:
            return float(text.replace("_", ""))
        except ValueError:
            errors.append(doc.error("PC107", path, f"'{text}' is not a valid number"))
            return None
    errors.append(doc.error("PC103", path, f"tag '{tag}' is not allowed in a pipeline file"))
    return None


def _build(
    node: Any,
    path: Path_,
    doc: Document,
    errors: list[Diagnostic],
    seen: set[int],
    depth: int,
    place: Place,
) -> Any:
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    doc.value_pos[path] = place(node.start_mark)
    if id(node) in seen:
        errors.append(
            doc.error(
                "PC103",
                path,
                "aliases (*name) are not allowed in a pipeline file; write the value out",
                key=True,
            )
        )
        return None
    seen.add(id(node))
    if depth > MAX_DEPTH:
        errors.append(doc.error("PC103", path, f"nesting deeper than {MAX_DEPTH} levels"))
        return None
    tag = node.tag
    allowed = _ALLOWED_TAGS.get(type(node).__name__)
    if allowed is not None and tag not in allowed:
        errors.append(doc.error("PC103", path, f"tag '{tag}' is not allowed in a pipeline file"))
        return None
    if isinstance(node, ScalarNode):
        return _scalar(node, path, doc, errors)
    if isinstance(node, SequenceNode):
        return [
            _build(item, (*path, i), doc, errors, seen, depth + 1, place)
            for i, item in enumerate(node.value)
        ]
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            kpos = place(knode.start_mark)
            ktag = knode.tag
            plain = isinstance(knode, ScalarNode) and ktag in _SCALAR_TAGS
            # the merge tag, or a plain '<<' that a YAML 1.1 reader would take for one
            if ktag == _STD + "merge" or (plain and knode.value == "<<" and knode.style is None):
                errors.append(
                    Diagnostic(
                        doc.file,
                        *kpos,
                        path,
                        "merge keys (<<) are not allowed in a pipeline file; write the keys out",
                        code="PC103",
                    )
                )
                continue
            if not plain:
                errors.append(
                    Diagnostic(doc.file, *kpos, path, "keys must be plain names", code="PC103")
                )
                continue
            key = str(knode.value)
            sub = (*path, key)
            if key in out or sub in doc.key_pos:
                first = doc.key_pos[sub][0]
                errors.append(
                    Diagnostic(
                        doc.file,
                        *kpos,
                        sub,
                        f"duplicate key '{key}' (first defined on line {first})",
                        code="PC103",
                    )
                )
                continue
            doc.key_pos[sub] = kpos
            out[key] = _build(vnode, sub, doc, errors, seen, depth + 1, place)
        return out
    errors.append(doc.error("PC103", path, "unsupported YAML node"))  # pragma: no cover - defensive
    return None


def indentation_hint(text: str, error_line: int) -> str:
    """A hint naming the line whose indentation most likely broke the YAML, or "".

    Walks the lines up to the error with the stack of open indentation levels: a line
    indented deeper than a line that already holds a value, or dedented to a level
    no enclosing key has, is the likely culprit (the parser notices a line or two later).
    """
    stack = [0]
    previous: tuple[int, int, str] | None = None  # (line, indent, text)
    for number, raw in enumerate(text.split("\n")[:error_line], 1):
        body = raw.split(" #", 1)[0].rstrip()
        if not body.strip() or body.lstrip().startswith("#"):
            continue
        indent = len(body) - len(body.lstrip(" "))
        if previous is not None:
            p_line, p_indent, p_text = previous
            holds_value = (
                ":" in p_text and not p_text.endswith(":") and not p_text.lstrip().startswith("-")
            )
            if indent > p_indent and holds_value:
                return (
                    f" (line {number} is indented deeper than line {p_line}, which already "
                    f"has a value: line it up with its sibling keys)"
                )
            if indent > p_indent:
                stack.append(indent)
            elif indent < p_indent:
                while stack and stack[-1] > indent:
                    stack.pop()
                if not stack or stack[-1] != indent:
                    return (
                        f" (line {number} is indented to column {indent + 1}, which matches "
                        "no enclosing key: line it up with its sibling keys)"
                    )
        previous = (number, indent, body)
    return ""
