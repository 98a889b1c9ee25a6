"""Property tests: hostile strings come out exactly as written, mutations never crash."""

from __future__ import annotations

import json
import os
import random
import re
from typing import Any

import hcl2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.frontend.model import BRANCH_RE
from pipecompile.targets.registry import render_all
from tests.conftest import ROOT
from tests.harness.reusable import expand_rendered

HOSTILE = [
    "'",
    '"',
    "\\",
    "#",
    ": ",
    "${",
    "%{",
    "{{",
    "}}",
    "é",
    "ü",
    "→",
    "😀",
    "*",
    "&",
    "!",
    "|",
    ">",
    "@",
    "`",
    "on",
    "yes",
    "no",
    "null",
    "~",
    "0123",
    "1e3",
    "-",
    "?",
    "[",
    "]",
    ",",
    "%",
    "$",
    "{",
    "}",
]
# Bounded and derandomized so CI stays fast and stable; search wider locally with
# PIPECOMPILE_EXAMPLES=2000 PIPECOMPILE_RANDOM=1 pytest tests/frontend/test_properties.py
SETTINGS = settings(
    max_examples=int(os.environ.get("PIPECOMPILE_EXAMPLES", "25")),
    derandomize=not os.environ.get("PIPECOMPILE_RANDOM"),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def text(extra: list[str], min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[str]:
    piece = st.sampled_from(HOSTILE + extra) | st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
        min_size=1,
        max_size=3,
    )
    return st.lists(piece, min_size=min_size, max_size=max_size).map("".join)


def line(s: str) -> bool:
    return s.strip() == s and s != "" and not any(ord(c) < 0x20 for c in s)


LINE = text([]).filter(line)
SCRIPT = text(["\n", "\t", "\n\n", "  "]).filter(lambda s: s.strip() != "")
SLACK = (
    text([])
    .map(lambda s: "".join(c for c in s if not c.isspace() and c != "#")[:80])
    .filter(lambda s: s != "")
)
SECRET = st.text(alphabet="abcXYZ019/_+=.@-", min_size=1, max_size=30)
URL_PATH = text([]).map(lambda s: "".join(c for c in s if not c.isspace()))


def _yaml_value(v: Any) -> str:
    from pipecompile.serialize.emit import _double

    return _double(v)  # a YAML double-quoted scalar: an exact way to write any string


def build_pipeline(
    steps: list[tuple[str, str]], branch: str, channel: str, secret: str, url_path: str, gha: bool
) -> str:
    # gha: delivered by GitHub Actions (no buildspecs); else by CodePipeline
    outputs = ["terraform", "argocd", "helm"] + (["github-actions"] if gha else ["codebuild"])
    lines = [
        "version: 1",
        "project: shop",
        f"delivery: {'github-actions' if gha else 'codepipeline'}",
        "source: {repository: example/shop}",
        'aws: {region: eu-west-3, account_id: "012345678901"}',
        "environments:",
        f"  dev: {{branches: [{_yaml_value(branch)}]}}",
        "  prod: {branches: [main], approval: true, url: "
        + _yaml_value("https://x.example/" + url_path)
        + "}",
        "ci:",
        "  steps:",
        *[f"    - {{name: {_yaml_value(n)}, run: {_yaml_value(r)}}}" for n, r in steps],
        "security: {dast: {environment: prod}}",
        "gitops: {repository: 'git@github.com:example/gitops.git'}",
        f"notifications: {{slack: {{channel: {_yaml_value(channel)}, on: [failed]}}}}",
        f"services: {{web: {{secrets: [{_yaml_value(secret)}]}}}}",
        "outputs:",
        *[f"  {t}: out/{t}" for t in outputs],
    ]
    return "\n".join(lines) + "\n"


def _hcl_unescape(s: str) -> str:
    """Value of an HCL quoted string literal as python-hcl2 returns it (quotes kept)."""
    assert s.startswith('"') and s.endswith('"'), s
    return str(json.loads(s))  # every escape pipecompile writes is a JSON escape too


WANTED = {
    "out/codebuild/build.yml",
    "out/helm/web/values-dev.yaml",
    "out/terraform/codepipeline.tf",
    "out/github-actions/ci-web.yml",
    "out/github-actions/deliver-web.yml",
    "out/github-actions/dast.yml",
    "out/github-actions/notify.yml",
    "out/github-actions/zap.yml",
}


def _parse_all(files: dict[str, str], only: set[str] | None = None) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for path, body in files.items():
        if only is not None and path not in only:
            continue
        if path.endswith((".yml", ".yaml")):
            a = yaml.safe_load(body)
            b = YAML(typ="safe", pure=True).load(body)
            assert a == b, path
            parsed[path] = a
        elif path.endswith(".tf"):
            parsed[path] = hcl2.loads(body)
    return parsed


@SETTINGS
@given(
    steps=st.lists(st.tuples(LINE, SCRIPT), min_size=1, max_size=3),
    # a branch pattern: no whitespace or backslash (the language refuses them), and a
    # leading "!" excludes branches
    branch=LINE.filter(lambda b: not b.startswith("!") and re.fullmatch(BRANCH_RE, b)),
    channel=SLACK,
    secret=SECRET,
    url_path=URL_PATH,
    gha=st.booleans(),
)
def test_hostile_strings_come_out_exactly(
    steps: list[tuple[str, str]], branch: str, channel: str, secret: str, url_path: str, gha: bool
) -> None:
    source = build_pipeline(steps, branch, channel, secret, url_path, gha)
    try:
        ir = compile_bytes("pipeline.yaml", source.encode())
    except PipelineError as exc:
        # the only refusal allowed: GitHub would evaluate ${{ ... }} in a workflow
        assert (
            (gha and any("${{" in s for pair in steps for s in pair))
            or "${{" in channel
            or "${{" in branch
            or "${{" in url_path
        ), str(exc)
        assert all("would evaluate as an expression" in d.message for d in exc.diagnostics)
        return
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    parsed = _parse_all(files, WANTED)
    values = parsed["out/helm/web/values-dev.yaml"]
    # the environment's key: its prefix, then the secret without the project's prefix
    key = "shop/dev/services/" + secret.removeprefix("shop/")
    assert values["externalSecrets"]["secrets"][0]["remoteRef"]["key"] == key
    if not gha:
        spec = parsed["out/codebuild/build.yml"]
        ran = spec["phases"]["pre_build"]["commands"][1 : 1 + len(steps)]
        assert ran == [r for _, r in steps]
        resources = parsed["out/terraform/codepipeline.tf"]["resource"]
        pipeline = next(v for r in resources for k, v in r.items() if "aws_codepipeline" in k)
        body = next(iter(pipeline.values()))
        push = body["trigger"][0]["git_configuration"][0]["push"][0]
        assert [_hcl_unescape(i) for i in push["branches"][0]["includes"]] == [branch]
    else:
        parsed.update(_parse_all(files, {"out/github-actions/ci.yml"}))
        ci = expand_rendered(files, "out/github-actions/ci-web.yml")  # it calls ci.yml
        user = ci["jobs"]["validate"]["steps"][2 : 2 + len(steps)]
        assert [(s["name"], s["run"]) for s in user] == steps
        deliver = parsed["out/github-actions/deliver-web.yml"]
        assert branch in deliver["on"]["push"]["branches"]
        # as GitHub runs them: notify.yml and zap.yml with the callers' inputs
        deliver = expand_rendered(files, "out/github-actions/deliver-web.yml")
        slack = [s for s in deliver["jobs"]["notify"]["steps"] if "with" in s]
        notify = slack[0]["with"]["payload"]
        # an incoming webhook ignores a channel in the payload: none is sent
        assert set(json.loads(notify)) == {"text"}
        dast = expand_rendered(files, "out/github-actions/dast.yml")
        assert (
            dast["jobs"]["zap-web"]["steps"][0]["env"]["DAST_URL"]
            == "https://x.example/" + url_path
        )


MUTATIONS = ["delete", "duplicate", "swap", "insert", "indent", "truncate"]


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3),
)
def test_mutations_of_the_reference_never_crash(seed: int, kinds: list[str]) -> None:
    rnd = random.Random(seed)
    lines = (ROOT / "samples/ecommerce/pipeline.yaml").read_text().split("\n")
    for kind in kinds:
        i = rnd.randrange(len(lines))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            lines.insert(i, rnd.choice(HOSTILE) + ": " + rnd.choice(HOSTILE))
        elif kind == "indent":
            lines[i] = "  " + lines[i]
        else:
            lines = lines[:i]
    try:
        ir = compile_bytes("pipeline.yaml", "\n".join(lines).encode())
    except PipelineError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.column >= 1 for d in exc.diagnostics)
        return
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    # chart templates are Go templates, YAML only once Helm rendered them (test_chart)
    _parse_all(
        files, {p for p in files if p.endswith((".yml", ".yaml")) and "/templates/" not in p}
    )


def test_key_order_without_meaning_does_not_change_output() -> None:
    text = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
    sections = text.split("\n\n")
    head, rest = sections[0], sections[1:]
    reordered = "\n\n".join([head, *reversed(rest)])
    a = render_all(compile_bytes("pipeline.yaml", text.encode()))
    b = render_all(compile_bytes("pipeline.yaml", reordered.encode()))
    assert a == b


@pytest.mark.parametrize("order_matters", ["services", "environments"])
def test_documented_orders_do_matter(order_matters: str) -> None:
    ir = compile_bytes("pipeline.yaml", (ROOT / "samples/ecommerce/pipeline.yaml").read_bytes())
    names = [x.name for x in getattr(ir, order_matters)]
    assert names == (
        ["product-service", "order-service"]
        if order_matters == "services"
        else ["development", "testing", "staging", "production"]
    )


_TEXT = st.text(max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    files=st.dictionaries(
        _TEXT, st.fixed_dictionaries({"target": _TEXT, "sha256": _TEXT}), max_size=6
    ),
    inputs=st.dictionaries(_TEXT, _TEXT, max_size=4),
    version=_TEXT,
)
def test_manifest_text_is_the_json_modules_output(
    files: dict[str, dict[str, str]], inputs: dict[str, str], version: str
) -> None:
    from pipecompile.output.state import FORMAT, Manifest

    outputs = dict(list(inputs.items())[:2])
    others = sorted(files)[:2]
    kept = {f"{p}~": t for p, t in list(inputs.items())[1:3]}
    sources = {f"{p}/x": t for p, t in list(inputs.items())[:1]}
    m = Manifest(inputs, version, files, outputs, others, kept, sources=sources)
    expected = {
        "digest": m.digest,
        "kept": kept,
        "sources": sources,
        "pipecompile": version,
        "inputs": inputs,
        "files": files,
        "format": FORMAT,
        "others": others,
        "outputs": outputs,
    }
    text = m.text()
    assert text == json.dumps(expected, indent=2, sort_keys=True) + "\n"


@SETTINGS
@given(names=st.lists(st.one_of(st.sampled_from([*HOSTILE, "route", "deploy-dev", "yes"]), LINE)))
def test_a_flow_list_comes_out_exactly(names: list[str]) -> None:
    """needs: [route, build] on one line: any name reads back as written, in both readers
    (a comma, a bracket or a colon inside one is quoted, never a flow indicator)."""
    from pipecompile.serialize.emit import Flow, yaml_document

    body = yaml_document({"needs": Flow(names), "in": [Flow(names)]})
    assert body.count("\n") == 3  # needs: [...], in:, and its one item: - [...]
    assert _parse_all({"x.yml": body}) == {"x.yml": {"needs": names, "in": [names]}}
