"""One configured serializer for every YAML file, and the HCL string escaper.

Why our own YAML emitter: output must be byte-stable, reviewable and safe for
YAML 1.1 readers (PyYAML, GitHub's parser), and ruamel.yaml's emitter is far
too slow for thousands of documents.  The rules are deliberately simple:

* mappings and sequences in block style, two-space indent, keys in the order
  the target built them (targets build them in a canonical order); a short list of
  names a target marks :class:`Flow` (a job's ``needs``) on one line, ``[route, ci]``;
* a string is written plain only when no YAML 1.1 or 1.2 reader could take it
  for anything else; otherwise single-quoted, or double-quoted with escapes
  when it holds characters single quotes cannot carry;
* multi-line strings (scripts) as literal blocks when that round-trips exactly.

Every emitted file is parsed back in the tests with ruamel.yaml and PyYAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any


class Pinned(str):
    """A string emitted with a trailing comment: ``uses: owner/repo@sha # v1.2.3``."""

    comment: str

    def __new__(cls, value: str, comment: str) -> Pinned:
        obj = super().__new__(cls, value)
        obj.comment = comment
        return obj


class Flow(list[str]):
    """A list of names emitted on one line in flow style: ``needs: [route, build]``
    (as GitHub's documentation writes it); a name that is not a plain word is
    double-quoted, so no flow indicator (``,[]{}:``) inside it is ever read as one."""


_FLOW_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _flow(items: list[str]) -> str:
    words = [s if _FLOW_PLAIN.fullmatch(s) and s not in _WORDS else _double(s) for s in items]
    return "[" + ", ".join(words) + "]"


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9 _./@()+=,:*~-]*")
_WORDS = {
    w
    for base in ("y", "yes", "n", "no", "true", "false", "on", "off", "null")
    for w in (base, base.capitalize(), base.upper())
}
_WORDS |= {"~", "<<", "="}
# Characters outside YAML's printable set, and the ones YAML 1.1 reads as line breaks.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_UNSAFE_QUOTED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _double(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


@lru_cache(maxsize=65536)
def scalar(s: str) -> str:
    """Quote ``s`` for use as a single-line YAML scalar (key or value)."""
    if (
        _PLAIN.fullmatch(s)
        and s not in _WORDS
        and not s.endswith((" ", ":"))
        and ": " not in s
        and " #" not in s
    ):
        return s
    if s and not _UNSAFE_QUOTED.search(s) and s.strip() == s and "'" not in s:
        return "'" + s.replace("'", "''") + "'"
    return _double(s)


@lru_cache(maxsize=4096)
def _literal_ok(s: str) -> bool:
    if "\n" not in s or _UNSAFE.search(s.replace("\t", " ")) or "\r" in s:
        return False
    if s[0] in " \t\n":
        return False
    return all(
        line == "" or (line.strip() != "" and line == line.rstrip()) for line in s.split("\n")
    )


@lru_cache(maxsize=4096)
def _literal(s: str, indent: str) -> str:
    body = s.rstrip("\n")
    trailing = len(s) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    lines = [indent + line if line else "" for line in body.split("\n")]
    lines += [""] * (trailing - 1 if trailing > 1 else 0)
    return f"|{chomp}\n" + "\n".join(lines)


def _value(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, Pinned):
        return f"{scalar(str(v))} # {v.comment}"
    if isinstance(v, Flow):
        return _flow(v)
    if isinstance(v, str):
        return scalar(v)
    raise TypeError(f"cannot emit {type(v).__name__}")  # pragma: no cover - a target bug


def _emit(v: Any, indent: int, out: list[str]) -> None:
    # Dispatch on the exact type: this loop runs for every node of thousands of
    # documents.  Pinned (a str subclass) deliberately falls through to _value.
    pad = "  " * indent
    if type(v) is dict:
        for k, item in v.items():
            key = scalar(k if type(k) is str else str(k))
            t = type(item)
            if t is str:
                if "\n" in item and _literal_ok(item):
                    out.append(f"{pad}{key}: {_literal(item, pad + '  ')}\n")
                else:
                    out.append(f"{pad}{key}: {scalar(item)}\n")
            elif t is dict or t is list:
                if item:
                    out.append(f"{pad}{key}:\n")
                    _emit(item, indent + 1, out)
                else:
                    out.append(f"{pad}{key}: {'{}' if t is dict else '[]'}\n")
            else:
                out.append(f"{pad}{key}: {_value(item)}\n")
    elif type(v) is list:
        for item in v:
            t = type(item)
            if t is str:
                if "\n" in item and _literal_ok(item):
                    out.append(f"{pad}- {_literal(item, pad + '  ')}\n")
                else:
                    out.append(f"{pad}- {scalar(item)}\n")
            elif t is dict and item:
                start = len(out)
                _emit(item, indent + 1, out)
                out[start] = f"{pad}- {out[start][len(pad) + 2 :]}"
            elif t is list and item:
                out.append(f"{pad}-\n")
                _emit(item, indent + 1, out)
            elif t is dict or t is list:
                out.append(f"{pad}- {'{}' if t is dict else '[]'}\n")
            else:
                out.append(f"{pad}- {_value(item)}\n")
    else:  # pragma: no cover - documents are always mappings or lists
        out.append(f"{pad}{_value(v)}\n")


def yaml_document(data: dict[str, Any] | list[Any], header: Iterable[str] = ()) -> str:
    """Serialize ``data`` as one YAML document, preceded by ``# header`` lines."""
    out = [f"# {line}\n" if line else "#\n" for line in header]
    _emit(data, 0, out)
    return "".join(out)


_HCL_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    # Terraform reads "$${" and "\\u0024{" alike as a literal "${", but python-hcl2
    # cannot parse an unbalanced "$${": the unicode escape suits both parsers.
    "${": "\\u0024{",
    "%{": "\\u0025{",
}
_HCL_SPECIAL = re.compile('[\\\\"\x00-\x1f\x7f-\x9f\u2028\u2029]|[$%]\\{')


def _hcl_escape(m: re.Match[str]) -> str:
    c = m.group()
    return _HCL_ESCAPES.get(c) or f"\\u{ord(c):04x}"


@lru_cache(maxsize=65536)
def hcl_string(s: str) -> str:
    """A quoted HCL string literal whose value is exactly ``s`` (no interpolation)."""
    return '"' + _HCL_SPECIAL.sub(_hcl_escape, s) + '"'
