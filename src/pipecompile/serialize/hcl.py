"""A small HCL writer that formats the way ``terraform fmt`` does.

Terraform files are built as data (blocks, attributes, expressions) rather
than string templates: every Python ``str`` becomes an escaped string literal
through :func:`~pipecompile.emit.hcl_string`, so no pipeline value can add a
block, an attribute or an interpolation.  Only :class:`Ref` (a reference the target
itself writes, ``aws_s3_bucket.artifacts.arn``) is emitted verbatim, and it refuses
anything but a traversal: quotes, spaces, ``${`` and ``%{`` cannot reach the file that
way.  Interpolations are :class:`Template` (escaped literal parts around references),
function calls are :class:`Call` (arguments rendered as data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .emit import hcl_string

# a traversal or a type: aws_iam_role.deploy_production.arn, var.tags, map(string); an
# index ([0]) or a splat ([*]) of a counted resource
_TRAVERSAL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[[0-9]+\]|\[\*\])*")
_TYPE = re.compile(r"(?:map|list|set)\((?:string|number|bool)\)")


@dataclass(slots=True)
class Ref:
    """A raw HCL reference written by the target: ``aws_s3_bucket.artifacts.arn``.

    Only a traversal (or a type such as ``map(string)``) is accepted: a user's string
    can never be emitted as code through a Ref.
    """

    expr: str

    def __post_init__(self) -> None:
        if _TRAVERSAL.fullmatch(self.expr) is None and _TYPE.fullmatch(self.expr) is None:
            raise ValueError(f"not an HCL reference: {self.expr!r}")


@dataclass(slots=True)
class Template:
    """A string template: literal parts (escaped) and references (interpolated):
    ``Template((Ref("aws_s3_bucket.artifacts.arn"), "/*"))`` -> ``"${aws_s3...arn}/*"``."""

    parts: tuple[str | Ref, ...]


@dataclass(slots=True)
class Call:
    """A function call whose arguments are data: ``Call("jsonencode", ([{...}],))``.
    Objects inside a call render on one line, every string escaped."""

    name: str
    args: tuple[Any, ...]

    def __post_init__(self) -> None:
        if _TRAVERSAL.fullmatch(self.name) is None or "." in self.name:
            raise ValueError(f"not an HCL function name: {self.name!r}")


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
    if t is Template:
        return _template(value)
    if t is Call:
        return value.name + "(" + ", ".join([_inline(a) for a in value.args]) + ")"  # type: ignore[no-any-return]
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


def _template(t: Template) -> str:
    out: list[str] = []
    for part in t.parts:
        if isinstance(part, Ref):
            # a literal "$" or "%" just before "${" would make it "$${": an escape
            if out and out[-1].endswith(("$", "%")):
                out[-1] = out[-1][:-1] + ("\\u0024" if out[-1][-1] == "$" else "\\u0025")
            out.append("${" + part.expr + "}")
        else:
            out.append(hcl_string(part)[1:-1])
    return '"' + "".join(out) + '"'


def _inline(value: Any) -> str:
    """A call argument on one line: ``[{ name = "A", value = "b" }]``."""
    t = type(value)
    if t is dict:
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    if t is list or t is tuple:
        return "[" + ", ".join([_inline(v) for v in value]) + "]"
    return expr(value, "")


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


def assignments(items: list[Item]) -> str:
    """Top-level attributes and comments, as a ``.tfvars`` file holds them."""
    out: list[str] = []
    _render_body(items, "", out)
    return "".join(out)


def document(blocks: list[Block]) -> str:
    """Top-level blocks separated by one blank line."""
    out: list[str] = []
    for i, b in enumerate(blocks):
        if i:
            out.append("\n")
        _render_block(b, "", out)
    return "".join(out)
