"""Machine-readable output: ``--format json``, ``sarif`` and ``github`` (workflow
command annotations) on every command that reports (validate, build, check, diff,
lint, explain, graph, pins), so editors, bots and GitHub code scanning read what
people read.

The JSON document (schema version 1), one per run, on stdout::

    {
      "version": 1,
      "command": "check",          # validate | build | check | diff | lint | explain | ...
      "ok": false,                 # the exit code is 0
      "diagnostics": [             # errors and warnings, located in pipeline.yaml
        {"file": "pipeline.yaml", "line": 12, "column": 3,   # null when there is no line
         "path": "environments.staging.branches", "message": "...",
         "severity": "error",      # error | warning | note
         "code": "PC107"}          # the rule (docs/rules.md)
      ],
      "changes": [                 # check and diff: what build would change
        {"file": ".github/workflows/ci-web.yml", "kind": "update",
         "reason": "pipeline changed"}
      ]
    }

explain, graph and pins add what they report under their own name: ``"explain":
{"topic": ..., "lines": [...]}`` (or ``"document"``: the ruleset or requests JSON
that --ruleset, --release-ruleset and --environments print), ``"graph": {"nodes":
[{"id", "shape", "label"}], "edges": [{"from", "to", "style"}]}``, ``"pins":
{"actions": [...], "values": [...], "by_tag_only": [...]}``.

lint's diagnostics carry ``tool`` (actionlint, zizmor) and ``places`` (the
generated files and lines the finding shows up in); its policy choices are notes.
The field names are the Python API's :class:`~pipecompile.errors.Diagnostic`'s,
except ``column`` (``col``) and ``path`` (dotted).

SARIF (2.1.0): ``ruleId`` is the code, each rule has its ``helpUri`` on the rules
page; a finding of an external checker keeps the checker's own rule in
``properties``.  A change check or diff reports is a PC501 result at that file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .._version import __version__
from ..errors import Diagnostic, dotted
from ..rules import DOCS_URL

SCHEMA_VERSION = 1


def diagnostic(d: Diagnostic) -> dict[str, Any]:
    return {
        "file": d.file,
        "line": d.line or None,  # a place with no line: null, never 0
        "column": (d.column or None) if d.line else None,
        "path": dotted(d.path),
        "message": d.message,
        "severity": d.severity,
        "code": d.code,
    }


def code_of(f: dict[str, Any]) -> str:
    """The rule of a machine-format finding: every producer names it."""
    return str(f["code"])


def change_findings(changes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """check's and diff's changes as PC501 findings at the generated file."""
    return [
        {
            "file": ch["file"],
            "line": 1,
            "column": 1,
            "path": "",
            "message": f"{ch['kind']}: {ch['reason']}",
            "severity": "error",
            "code": "PC501",
        }
        for ch in changes
    ]


def _gh_escape(text: str, prop: bool = False) -> str:
    # GitHub's workflow commands (actions/toolkit packages/core/src/command.ts)
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def github(findings: Iterable[dict[str, Any]]) -> str:
    """One ``::error``/``::warning``/``::notice`` annotation line per finding."""
    from ..rules import BY_CODE

    lines = []
    for f in findings:
        code = code_of(f)
        level = {"error": "error", "warning": "warning"}.get(str(f["severity"]), "notice")
        rule = BY_CODE.get(code)
        title = f"{code} {rule.name}" if rule else code
        # a place only where there is one (a command-line error has no file)
        where = [f"file={_gh_escape(f['file'], True)}"] if f.get("file") else []
        if where and (f.get("line") or 0) >= 1:
            where += [f"line={f['line']}", f"col={max(1, f['column'] or 1)}"]
        props = ",".join([*where, f"title={_gh_escape(title, True)}"])
        text = f"{f['path']}: {f['message']}" if f.get("path") else str(f["message"])
        lines.append(f"::{level} {props}::{_gh_escape(text)}")
    return "\n".join(lines)


def emit(
    fmt: str,
    command: str,
    ok: bool,
    diagnostics: Sequence[dict[str, Any]] = (),
    changes: Sequence[dict[str, Any]] = (),
    report: dict[str, Any] | None = None,
    pipeline: str = "pipeline.yaml",
) -> str:
    """The one document of a run in ``fmt`` (json, sarif or github).  ``report`` is what
    a reporting command (explain, graph, pins) shows people, as data: JSON carries it
    under the command's name; SARIF and github annotations carry only diagnostics."""
    if fmt == "sarif":
        return sarif([*diagnostics, *change_findings(changes)], command, pipeline)
    if fmt == "github":
        return github([*diagnostics, *change_findings(changes)])
    if command in ("check", "diff"):  # drift is a finding (PC501), as in SARIF and github
        diagnostics = [*diagnostics, *change_findings(changes)]
    return document(command, ok, diagnostics, changes, report)


def document(
    command: str,
    ok: bool,
    diagnostics: Iterable[dict[str, Any]] = (),
    changes: Iterable[dict[str, Any]] = (),
    report: dict[str, Any] | None = None,
) -> str:
    body: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "command": command,
        "ok": ok,
        "diagnostics": list(diagnostics),
        "changes": list(changes),
    }
    if report is not None:
        body[command] = report
    return json.dumps(body, indent=2, ensure_ascii=False)


def sarif(
    findings: Sequence[dict[str, Any]], command: str = "lint", pipeline: str = "pipeline.yaml"
) -> str:
    """SARIF 2.1.0 for GitHub code scanning: one run; ruleId is the code, with helpUri.

    Every result has a location: code scanning's upload refuses a result without one
    (github/codeql-action#2459), so an error with no file of its own (no pipeline.yaml,
    a bad command line) is placed at ``pipeline``, the pipeline file as given, with no
    region."""
    from ..rules import BY_CODE

    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in findings:
        rule = code_of(f)
        known = BY_CODE[rule]
        rules.setdefault(
            rule,
            {
                "id": rule,
                "name": known.name,
                "shortDescription": {"text": known.summary},
                "help": {"text": known.fix},
                "helpUri": known.anchor,
            },
        )
        level = {"error": "error", "warning": "warning"}.get(f["severity"], "note")
        text = f"{f['path']}: {f['message']}" if f.get("path") else f["message"]
        result: dict[str, Any] = {
            "ruleId": rule,
            "level": level,
            "message": {"text": text},
        }
        uri = f.get("file") or pipeline
        result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri}}}]
        if (
            f.get("file") and (f.get("line") or 0) >= 1
        ):  # SARIF lines start at 1; an error with no place has no region
            region = {"startLine": f["line"], "startColumn": max(1, f["column"] or 1)}
            result["locations"][0]["physicalLocation"]["region"] = region
        if f.get("tool") and f["tool"] != "pipecompile":
            own = re.search(r"\bSC[0-9]{4}\b", f["message"])  # shellcheck's own rule ids
            result["properties"] = {
                "tool": f["tool"],
                "toolRule": own.group() if own else f["message"].split(":", 1)[0][:60],
            }
        if f.get("places"):
            result["relatedLocations"] = [
                {
                    "id": i,
                    "physicalLocation": {
                        "artifactLocation": {"uri": place.rsplit(":", 1)[0]},
                        "region": {"startLine": int(place.rsplit(":", 1)[1])},
                    },
                }
                for i, place in enumerate(f["places"])
            ]
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": f"pipecompile {command}",
                        "informationUri": DOCS_URL,
                        "version": __version__,
                        "rules": sorted(rules.values(), key=lambda r: r["id"]),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)
