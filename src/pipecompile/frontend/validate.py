"""Validate a loaded document against the language models and the published schema.

Pydantic gives the structured errors we turn into friendly, located messages;
a document the models accept is then checked against the generated JSON
schema too, so pipecompile never compiles a file that editors and other
tools, reading the published pipeline.schema.json, would call invalid.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ..errors import Diagnostic, Path_, PipelineError, did_you_mean
from .loader import Document
from .model import Pipeline
from .model_types import PATTERN_HELP

SCHEMA_ID = "https://raw.githubusercontent.com/pipecompile/pipecompile/main/pipeline.schema.json"


def schema() -> dict[str, Any]:
    """The JSON schema of the pipeline language, generated from the models."""
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
    }
    out.update(Pipeline.model_json_schema(mode="validation", by_alias=True))
    _close_name_maps(out)
    _document_fields(out)
    return out


def _document_fields(out: dict[str, Any]) -> None:
    """Every property gets a description and examples (editor hovers and completion):
    the models' own where they have them, else data/field-docs.json's."""
    from importlib import resources

    text = (resources.files("pipecompile") / "data" / "field-docs.json").read_text("utf-8")
    docs = json.loads(text)["fields"]
    models = [("Pipeline", out), *out.get("$defs", {}).items()]
    for model, node in models:
        for field, prop in node.get("properties", {}).items():
            for key, value in docs.get(f"{model}.{field}", {}).items():
                prop.setdefault(key, value)


def _close_name_maps(node: Any) -> None:
    """Maps keyed by names (services, environments, ...) allow no other keys."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _close_name_maps(v)
    elif isinstance(node, list):
        for v in node:
            _close_name_maps(v)


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def _typename(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(v), type(v).__name__)


def _doc_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Map a pydantic ``loc`` onto the document, dropping union tags and the like."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if (isinstance(cur, dict) and isinstance(part, str) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            out.append(part)
            cur = cur[part]  # type: ignore[index]
        elif isinstance(part, str) and (
            part in ("count", "map") or "[" in part or part.startswith("function")
        ):
            continue
        else:
            out.append(part)
            cur = None
    return tuple(out)


def _allowed_keys(path: Path_) -> list[str]:
    """Keys the schema allows in the mapping at ``path`` (for "did you mean")."""
    sch = schema()
    defs = sch.get("$defs", {})

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = defs[node["$ref"].split("/")[-1]]
            elif "anyOf" in node:
                objs = [deref(n) for n in node["anyOf"] if n.get("type") != "null"]
                node = objs[0] if objs else node
                if "anyOf" in node:
                    return node
            else:
                return node

    node = deref(sch)
    for part in path:
        if isinstance(part, int):
            node = deref(node.get("items", {}))
        elif part in node.get("properties", {}):
            node = deref(node["properties"][part])
        elif isinstance(node.get("additionalProperties"), dict):
            node = deref(node["additionalProperties"])
        elif node.get("patternProperties"):
            node = deref(next(iter(node["patternProperties"].values())))
        else:
            return []
    return list(node.get("properties", {}))


def _quote_hint(doc: Document, path: Path_, value: Any) -> str:
    sc = doc.scalars.get(path)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and sc and not sc.quoted:
        return f' (write it in quotes: "{sc.text}")'
    return ""


def _message(err: dict[str, Any], path: Path_, doc: Document) -> tuple[str, str, bool]:
    """Turn one pydantic error into (its rule code, message, points_at_key)."""
    kind: str = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "PC105", f"required key '{path[-1]}' is missing", False
    if kind == "extra_forbidden":
        key = str(path[-1])
        hint = did_you_mean(key, _allowed_keys(path[:-1]))
        allowed = _allowed_keys(path[:-1])
        listing = f"; allowed: {', '.join(allowed)}" if allowed and not hint else ""
        return "PC104", f"unknown key '{key}'{hint}{listing}", True
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",")]
        shown = repr(value) if not isinstance(value, str) else f"'{value}'"
        if isinstance(value, str) and value in choices and f"'{value}'" not in expected:
            return (
                "PC106",
                f'expected the number {value}, got a string: write {value}, not "{value}"',
                False,
            )
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return "PC107", f"{shown} is not one of {expected}{hint}", False
    if kind == "string_pattern_mismatch":
        what = PATTERN_HELP.get(ctx.get("pattern", ""), f"matching {ctx.get('pattern')}")
        return "PC107", f"'{value}' is not {what}", False
    if kind in ("less_than_equal", "less_than"):
        if (
            path
            and path[-1] == "max_error_rate"
            and isinstance(value, (int, float))
            and 1 < value <= 100
        ):
            return (
                "PC107",
                (
                    f"{value} is above {ctx.get('le', 1):g}: it is a fraction, not a percentage "
                    f"(did you mean {value / 100:g}?)"
                ),
                False,
            )
        return "PC107", f"{value} is above {ctx.get('le', ctx.get('lt'))}", False
    if kind in ("greater_than_equal", "greater_than"):
        return "PC107", f"{value} is below {ctx.get('ge', ctx.get('gt'))}", False
    if kind in ("too_short",):
        n = ctx.get("min_length", 1)
        return "PC107", f"needs at least {n} item{'s' if n != 1 else ''}", False
    if kind in ("too_long",):
        return "PC107", f"has more than {ctx.get('max_length')} items", False
    if kind == "string_too_long":
        return "PC107", f"is longer than {ctx.get('max_length')} characters", False
    if kind == "string_too_short":
        return "PC107", "must not be empty", False
    if kind == "string_type":
        return (
            "PC106",
            f"expected a string, got {_typename(value)}{_quote_hint(doc, path, value)}",
            False,
        )
    if kind in ("int_type", "int_from_float", "int_parsing"):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = value.strip()
            return (
                "PC106",
                f'expected an integer, got a string: write {number}, not "{value}"',
                False,
            )
        return "PC106", f"expected an integer, got {_typename(value)}", False
    if kind in ("float_type", "float_parsing"):
        return "PC106", f"expected a number, got {_typename(value)}", False
    if kind == "bool_type":
        # YAML 1.1 readers took yes/no/on/off for booleans; YAML 1.2 (and pipecompile) do not
        word = value.lower() if isinstance(value, str) else ""
        hint = (
            f" ('{value}' is a string in YAML 1.2: write {str(word in ('yes', 'on', 'y')).lower()})"
            if word in ("yes", "no", "on", "off", "y", "n")
            else ""
        )
        return "PC106", f"expected true or false, got {_typename(value)}{hint}", False
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "PC106", f"expected a mapping, got {_typename(value)}", False
    if kind == "list_type":
        return "PC106", f"expected a list, got {_typename(value)}", False
    if kind == "value_error":  # a model validator's refusal (Invalid), with its own code
        refusal = ctx["error"]
        return refusal.code, str(refusal), False
    raise AssertionError(f"unmapped pydantic error {kind}")  # pragma: no cover - all mapped


def validate(doc: Document) -> Pipeline:
    """Validate ``doc`` and return the model, or raise :class:`PipelineError`."""
    from pydantic import ValidationError

    diags: list[Diagnostic] = []
    model: Pipeline | None = None
    try:
        model = Pipeline.model_validate(doc.data, strict=True)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = _doc_path(tuple(err["loc"]), doc.data)
            code, msg, at_key = _message(dict(err), path, doc)
            at_key = at_key or "[key]" in err["loc"] or err.get("input", 0) is None
            diags.append(doc.error(code, path, msg, key=at_key))
    for js_err in _validator().iter_errors(doc.data) if not diags else ():
        path = tuple(js_err.absolute_path)
        mismatch = f"does not match pipeline.schema.json: {js_err.message}"
        diags.append(doc.error("PC107", path, mismatch))
    if diags:
        # the cross-references too: a schema error elsewhere never hides them
        from .references import check as references

        raise PipelineError(_dedupe(diags + references(doc)))
    assert model is not None
    return model


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for d in diags:
        k = (d.line, d.column, d.message)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out
