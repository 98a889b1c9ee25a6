"""A small HCL writer that formats the way ``terraform fmt`` does.

Terraform files are built as data (blocks, attributes, expressions) rather
than string templates: every Python ``str`` becomes an escaped string literal
through :func:`~pipecompile.emit.hcl_string`, so no pipeline value can add a
block, an attribute or an interpolation.  Only :class:`Ref` (references and
function calls that the target itself writes) is emitted verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .emit import hcl_string


@dataclass(slots=True)
class Ref:
    """A raw HCL expression written by the target: ``aws_s3_bucket.artifacts.arn``."""

    expr: str


@dataclass(slots=True)
class Block:
    type: str
    labels: tuple[str, ...] = ()
    body: list[Item] = field(default_factory=list)

    def attr(self, name: str, value: Any) -> Block:
        self.body.append((name, value))
        return self

    def block(self, type_: str, *labels: str) -> Block:
        child = Block(type_, labels)
        self.body.append(child)
        return child

    def comment(self, text: str) -> Block:
        self.body.append(Comment(text))
        return self


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


# An attribute is a plain (name, value) tuple: resources hold hundreds of
# thousands of them at scale, and a tuple is the cheapest object to build.
Attr = tuple[str, Any]
Item = Attr | Block | Comment


def expr(value: Any, indent: str) -> str:
    """Render a value; dicts become multi-line objects, lists stay on one line."""
    t = type(value)
    if t is str:
        return hcl_string(value)
    if t is Ref:
        return value.expr  # type: ignore[no-any-return]
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is list or t is tuple:
        return "[" + ", ".join([expr(v, indent) for v in value]) + "]"
    if t is dict:
        if not value:
            return "{}"
        inner = indent + "  "
        keys = [_key(k) for k in value]
        width = max(map(len, keys))
        lines = [
            f"{inner}{k.ljust(width)} = {expr(v, inner)}"
            for k, v in zip(keys, value.values(), strict=True)
        ]
        return "{\n" + "\n".join(lines) + "\n" + indent + "}"
    raise TypeError(f"cannot render {type(value).__name__} as HCL")  # pragma: no cover


_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*").fullmatch


@lru_cache(maxsize=4096)
def _key(k: str) -> str:
    return k if _BARE_KEY(k) else hcl_string(k)


def _flush(names: list[str], values: list[str], indent: str, out: list[str]) -> None:
    width = max(map(len, names))
    for name, rendered in zip(names, values, strict=True):
        out.append(f"{indent}{name.ljust(width)} = {rendered}\n")
    names.clear()
    values.clear()


def _render_body(items: list[Item], indent: str, out: list[str]) -> None:
    # terraform fmt aligns '=' across consecutive single-line attributes; a comment,
    # a nested block or a multi-line attribute ends the group.  This loop runs for
    # every attribute of thousands of resources: exact-type dispatch, no closures.
    names: list[str] = []
    values: list[str] = []
    for item in items:
        t = type(item)
        if t is tuple:
            name, v = item  # type: ignore[misc]
            tv = type(v)
            if tv is str:
                names.append(name)
                values.append(hcl_string(v))
                continue
            if tv is Ref:
                names.append(name)
                values.append(v.expr)
                continue
            rendered = expr(v, indent)
            if "\n" in rendered:  # a multi-line value stands alone, unaligned
                if names:
                    _flush(names, values, indent, out)
                out.append(f"{indent}{name} = {rendered}\n")
            else:
                names.append(name)
                values.append(rendered)
            continue
        if names:
            _flush(names, values, indent, out)
        if t is Comment:
            out.append(f"{indent}# {item.text}\n")  # type: ignore[union-attr]
        else:
            _render_block(item, indent, out)  # type: ignore[arg-type]
    if names:
        _flush(names, values, indent, out)


def _render_block(b: Block, indent: str, out: list[str]) -> None:
    labels = "".join([f" {hcl_string(lbl)}" for lbl in b.labels]) if b.labels else ""
    if not b.body:
        out.append(f"{indent}{b.type}{labels} {{}}\n")
        return
    out.append(f"{indent}{b.type}{labels} {{\n")
    _render_body(b.body, indent + "  ", out)
    out.append(f"{indent}}}\n")


def document(blocks: list[Block]) -> str:
    """Top-level blocks separated by one blank line."""
    out: list[str] = []
    for i, b in enumerate(blocks):
        if i:
            out.append("\n")
        _render_block(b, "", out)
    return "".join(out)
