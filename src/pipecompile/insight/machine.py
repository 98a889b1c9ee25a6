"""Machine-readable output: ``--format json`` (validate, check, diff, lint) and SARIF
(lint), so editors, bots and GitHub code scanning read what people read.

The JSON document (schema version 1), one per run, on stdout::

    {
      "version": 1,
      "command": "check",          # validate | check | diff | lint
      "ok": false,                 # the exit code is 0
      "diagnostics": [             # errors and warnings, located in pipeline.yaml
        {"file": "pipeline.yaml", "line": 12, "column": 3,
         "path": "environments.staging.branches", "message": "...",
         "severity": "error"}      # error | warning | note
      ],
      "changes": [                 # check and diff: what build would change
        {"file": ".github/workflows/ci-web.yml", "kind": "update",
         "reason": "pipeline changed"}
      ]
    }

lint's diagnostics carry ``tool`` (actionlint, zizmor) and ``places`` (the
generated files and lines the finding shows up in); its policy choices are notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .. import __version__
from ..errors import Diagnostic, dotted

SCHEMA_VERSION = 1


def diagnostic(d: Diagnostic) -> dict[str, Any]:
    return {
        "file": d.file,
        "line": d.line,
        "column": d.col,
        "path": dotted(d.path),
        "message": d.message,
        "severity": d.severity,
    }


def document(
    command: str,
    ok: bool,
    diagnostics: Iterable[dict[str, Any]] = (),
    changes: Iterable[dict[str, Any]] = (),
) -> str:
    body = {
        "version": SCHEMA_VERSION,
        "command": command,
        "ok": ok,
        "diagnostics": list(diagnostics),
        "changes": list(changes),
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


def sarif(findings: Sequence[dict[str, Any]]) -> str:
    """SARIF 2.1.0 for GitHub code scanning: one run, rules per tool and rule id."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in findings:
        code = re.search(r"\bSC[0-9]{4}\b", f["message"])  # shellcheck's own rule ids
        rule = f"{f['tool']}/{code.group() if code else f['message'].split(':', 1)[0][:60]}"
        rules.setdefault(rule, {"id": rule, "shortDescription": {"text": rule}})
        level = {"error": "error", "warning": "warning"}.get(f["severity"], "note")
        result: dict[str, Any] = {
            "ruleId": rule,
            "level": level,
            "message": {"text": f["message"]},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f["file"]},
                        "region": {"startLine": f["line"], "startColumn": f["column"]},
                    }
                }
            ],
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
                        "name": "pipecompile lint",
                        "version": __version__,
                        "rules": sorted(rules.values(), key=lambda r: r["id"]),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)
