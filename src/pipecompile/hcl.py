"""A small HCL writer that formats the way ``terraform fmt`` does.

Terraform files are built as data (blocks, attributes, expressions) rather
than string templates: every Python ``str`` becomes an escaped string literal
through :func:`~pipecompile.emit.hcl_string`, so no pipeline value can add a
block, an attribute or an interpolation.  Only :class:`Ref` (references and
function calls that the target itself writes) is emitted verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
        self.body.append(Attr(name, value))
        return self

    def block(self, type_: str, *labels: str) -> Block:
        child = Block(type_, labels)
        self.body.append(child)
        return child

    def comment(self, text: str) -> Block:
        self.body.append(Comment(text))
        return self


@dataclass(slots=True)
class Attr:
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


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
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(expr(v, indent) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        width = max(len(_key(k)) for k in value)
        lines = [f"{inner}{_key(k).ljust(width)} = {expr(v, inner)}" for k, v in value.items()]
        return "{\n" + "\n".join(lines) + "\n" + indent + "}"
    raise TypeError(f"cannot render {type(value).__name__} as HCL")  # pragma: no cover


def _key(k: str) -> str:
    import re

    return k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", k) else hcl_string(k)


def _render_body(items: list[Item], indent: str, out: list[str]) -> None:
    # terraform fmt aligns '=' across consecutive single-line attributes; a comment,
    # a nested block or a multi-line attribute ends the group.
    group: list[tuple[str, str]] = []

    def flush() -> None:
        if not group:
            return
        width = max(len(name) for name, _ in group)
        for name, rendered in group:
            out.append(f"{indent}{name.ljust(width)} = {rendered}\n")
        group.clear()

    for item in items:
        if isinstance(item, Attr):
            rendered = expr(item.value, indent)
            if "\n" in rendered:  # a multi-line value stands alone, unaligned
                flush()
                out.append(f"{indent}{item.name} = {rendered}\n")
            else:
                group.append((item.name, rendered))
            continue
        flush()
        if isinstance(item, Comment):
            out.append(f"{indent}# {item.text}\n")
        else:
            _render_block(item, indent, out)
    flush()


def _render_block(b: Block, indent: str, out: list[str]) -> None:
    labels = "".join(f" {hcl_string(lbl)}" for lbl in b.labels)
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
