"""Run the external checkers on the generated workflows and map findings home.

actionlint (with shellcheck when installed) and zizmor run on freshly rendered
workflows in a temporary folder.  Each finding is reported against the
pipeline.yaml field that produced the step it points into: a user's
``ci.steps[i].run`` (down to the line inside a block script), or the section
of the pipeline that asked for a generated step; anything else keeps the
generated file's location.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import Path_, dotted
from ..frontend.loader import Document


@dataclass(frozen=True, slots=True)
class Finding:
    tool: str
    file: str  # generated file, relative to the root
    line: int
    col: int
    message: str

    def located(self, doc: Document, origin: tuple[Path_, int] | None) -> Located:
        """The finding at its pipeline.yaml field (or at the generated file, without one)."""
        if origin is None:
            return Located(self.file, self.line, self.col, (), self.tool, self.message)
        path, offset = origin
        value: Any = doc.data
        for part in path:
            value = value[part] if isinstance(value, (dict, list)) else None  # type: ignore[index]
        line, col = doc.pos(path, key=isinstance(value, dict))
        return Located(doc.file, line + offset, col, path, self.tool, self.message)


@dataclass(frozen=True, slots=True)
class Located:
    """A checker finding where the user can fix it, and every generated place it shows."""

    file: str
    line: int
    col: int
    path: Path_
    tool: str
    message: str
    places: tuple[str, ...] = ()  # "generated/file.yml:line", when located in pipeline.yaml

    @property
    def code(self) -> str:
        """The rule (pipecompile.rules): one per checker; the checker's own is in the text."""
        return CHECKER_CODES[self.tool]

    def __str__(self) -> str:
        field = f"{dotted(self.path)}: " if self.path else ""
        where = f"{self.file}:{self.line}:{self.col}"
        head = f"{where}: {self.code} {field}{self.tool}: {self.message}"
        return head + (f" (in {', '.join(self.places)})" if self.places else "")


# each checker's rule (pipecompile.rules); lint runs no other
CHECKER_CODES = {"actionlint": "PC401", "zizmor": "PC402"}


def _tool(name: str) -> str | None:
    near = Path(sys.executable).parent / name
    return str(near) if near.exists() else shutil.which(name)


def run_checkers(folder: Path, rel: str, zizmor_persona: str) -> tuple[list[Finding], list[str]]:
    """Findings of the installed checkers for the workflows in ``folder``; and skipped tools."""
    findings: list[Finding] = []
    skipped: list[str] = []
    files = sorted(folder.glob("*.yml"))
    actionlint = _tool("actionlint")
    if actionlint is None:
        skipped.append("actionlint")
    else:
        res = subprocess.run(
            [actionlint, "-format", "{{json .}}", *map(str, files)],
            capture_output=True,
            text=True,
            check=False,
        )
        for item in json.loads(res.stdout or "[]"):
            findings.append(
                Finding(
                    "actionlint",
                    f"{rel}/{Path(item['filepath']).name}",
                    item["line"],
                    item["column"],
                    item["message"],
                )
            )
    zizmor = _tool("zizmor")
    if zizmor is None:
        skipped.append("zizmor")
    else:
        res = subprocess.run(
            [
                zizmor,
                "--offline",
                "--no-progress",
                "--format",
                "json",
                f"--persona={zizmor_persona}",
                *map(str, files),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        for item in json.loads(res.stdout or "[]"):
            loc = item["locations"][0]
            point = loc["concrete"]["location"]["start_point"]
            name = Path(loc["symbolic"]["key"]["Local"]["verbatim_path"]).name
            findings.append(
                Finding(
                    "zizmor",
                    f"{rel}/{name}",
                    point["row"] + 1,
                    point["column"] + 1,
                    f"{item['ident']}: {item['desc']}",
                )
            )
    return findings, skipped


Span = tuple[int, int, dict[str, Any], int | None]


@lru_cache(maxsize=64)
def _outline(text: str) -> tuple[tuple[tuple[int, str], ...], tuple[Span, ...]]:
    """Parse a workflow once: (job start lines, step spans).

    A step span is (first line, last line, step, first line of its run block).
    """
    from ruamel.yaml import YAML

    jobs = YAML(typ="rt", pure=True).load(text).get("jobs", {})
    job_lines: list[tuple[int, str]] = []
    starts: list[tuple[int, dict[str, Any] | None, int | None]] = []
    for job_id, job in jobs.items():
        line = jobs.lc.key(job_id)[0] + 1
        job_lines.append((line, str(job_id)))
        starts.append((line, None, None))  # a job ends the step before it
        steps = job.get("steps", [])
        for i, step in enumerate(steps):
            run_line = None
            if "run" in step:
                run_line = step.lc.value("run")[0] + 1
                if isinstance(step["run"], str) and "\n" in step["run"]:
                    run_line += 1  # a literal block starts on the next line
            starts.append((steps.lc.item(i)[0] + 1, dict(step), run_line))
    starts.sort(key=lambda s: s[0])
    last = text.count("\n") + 1
    spans = []
    for k, (line, step, run_line) in enumerate(starts):
        if step is not None:
            end = starts[k + 1][0] - 1 if k + 1 < len(starts) else last
            spans.append((line, end, step, run_line))
    return tuple(job_lines), tuple(spans)


# the workflows' target maps its own step names and job ids to pipeline fields
Origin = Callable[[str | None, str | None], Path_ | None]


def origin_of(
    finding: Finding,
    text: str,
    doc: Document,
    user_steps: list[tuple[str, str]],
    origin: Origin,
) -> tuple[Path_, int] | None:
    """The pipeline field (and line offset inside it) behind a finding, if any."""
    job_lines, spans = _outline(text)
    for start, end, step, run_line in spans:
        if not start <= finding.line <= end:
            continue
        name = str(step.get("name", ""))
        for i, (user_name, user_run) in enumerate(user_steps):
            if name == user_name and step.get("run") == user_run:
                path: Path_ = ("ci", "steps", i, "run")
                sc = doc.scalars.get(path)
                offset = 0
                if run_line and finding.line >= run_line and sc and sc.text.count("\n"):
                    offset = finding.line - run_line + 1  # block scalar: content starts below
                return path, offset
        field = origin(None, name)
        return (field, 0) if field and field[0] in doc.data else None
    job_id = None
    for line, ident in job_lines:
        if line <= finding.line:
            job_id = ident
    job_field = origin(job_id, None) if job_id else None
    if (
        job_field
        and job_field[0] in doc.data
        and (len(job_field) < 2 or job_field[1] in doc.data[job_field[0]])
    ):
        return job_field, 0
    return None


def lint(
    doc: Document,
    rendered: dict[str, str],
    workflows_folder: str,
    origin: Origin,
    zizmor_persona: str = "regular",
) -> tuple[list[Located], list[str]]:
    """Run the checkers on ``rendered`` workflows; return (located findings, skipped tools)."""
    user_steps = [
        (str(s.get("name")), str(s.get("run")))
        for s in (doc.data.get("ci") or {}).get("steps") or []
    ]
    with tempfile.TemporaryDirectory(prefix="pipecompile-lint-") as tmp:
        folder = Path(tmp)
        for rel, text in rendered.items():
            (folder / Path(rel).name).write_text(text, encoding="utf-8")
        findings, skipped = run_checkers(folder, workflows_folder, zizmor_persona)
    # one line per finding at a pipeline field, with every generated place it shows
    # up in (a rule broken once in pipeline.yaml repeats in every service's workflow)
    grouped: dict[Located, list[str]] = {}
    for f in sorted(findings, key=lambda f: (f.file, f.line, f.col, f.tool)):
        at = f.located(doc, origin_of(f, rendered[f.file], doc, user_steps, origin))
        places = grouped.setdefault(at, [])
        where = f"{f.file}:{f.line}" if at.path else ""
        if where and where not in places:
            places.append(where)
    out = [
        Located(at.file, at.line, at.col, at.path, at.tool, at.message, tuple(places))
        for at, places in grouped.items()
    ]
    return out, skipped
