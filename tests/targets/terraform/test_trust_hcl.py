"""Every value reaching HCL is escaped (issue 28, item 8): hostile strings go through the
writer and through a whole pipeline, and Terraform itself (``terraform console``) reads
back exactly the value intended; no reference can carry user text."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from pipecompile.compiler import compile_bytes
from pipecompile.errors import PipelineError
from pipecompile.serialize.hcl import Block, Call, Ref, Template, document
from pipecompile.targets.registry import render_all
from pipecompile.targets.terraform.pipelines import dast_variables, deploy_variables, sign_variables

HOSTILE = [
    '"',
    "${timestamp()}",
    "%{ if true }x%{ endif }",
    "$${",
    "a\nb",
    "\r\t",
    "\\",
    '\\"',
    "}",
    "#{BuildVariables.IMAGE_TAG}",
    "é→😀",
    "\u2028",
    '", type = "PLAINTEXT" }, { name = "X',
    "$",
    "%",
    "",
]

needs_terraform = pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform binary")


def terraform_eval(tmp: Path, tf: str, names: list[str]) -> dict[str, Any]:
    """Values of ``local.<name>`` as Terraform evaluates ``tf`` (terraform console): each
    goes through jsonencode and base64, so the console's own quoting plays no part."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "main.tf").write_text(tf)
    query = "base64encode(jsonencode({" + ", ".join(f"{n} = local.{n}" for n in names) + "}))\n"
    res = subprocess.run(
        ["terraform", "console", "-no-color"],
        cwd=tmp,
        input=query,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": "/dev/null"},
    )
    assert res.returncode == 0, res.stderr
    decoded: dict[str, Any] = json.loads(base64.b64decode(json.loads(res.stdout.strip())))
    return decoded


@needs_terraform
def test_the_writer_escapes_every_string_terraform_reads_back(tmp_path: Path) -> None:
    b = Block("locals")
    names = []
    for i, s in enumerate(HOSTILE):
        b.attr(f"plain_{i}", s)
        b.attr(f"template_{i}", Template((s, Ref("local.anchor"), s)))
        b.attr(f"call_{i}", Call("jsonencode", ([{"name": s, "value": s, "n": {s: s}}],)))
        b.attr(f"map_{i}", {s: [s, s]})
        names += [f"plain_{i}", f"template_{i}", f"call_{i}", f"map_{i}"]
    b.attr("anchor", "@")
    text = document([b])
    hcl2.loads(text)  # python-hcl2 (checkov's parser) reads it too
    got = terraform_eval(tmp_path, text, names)
    for i, s in enumerate(HOSTILE):
        assert got[f"plain_{i}"] == s
        assert got[f"template_{i}"] == s + "@" + s
        assert json.loads(got[f"call_{i}"]) == [{"name": s, "value": s, "n": {s: s}}]
        assert got[f"map_{i}"] == {s: [s, s]}


@pytest.mark.parametrize(
    "text",
    [
        'x", y = "z',
        "${timestamp()}",
        "a.b }\nresource",
        "jsonencode([1])",
        "a b",
        "aws_s3_bucket.artifacts.arn/*",
        '"${aws_s3_bucket.artifacts.arn}/*"',
    ],
)
def test_a_reference_refuses_anything_but_a_traversal(text: str) -> None:
    with pytest.raises(ValueError, match="not an HCL reference"):
        Ref(text)


def test_a_reference_takes_traversals_and_types() -> None:
    for ok in ("aws_codebuild_project.build-web.arn", "var.tags", "map(string)", "a.b[0].c"):
        assert Ref(ok).expr == ok
    with pytest.raises(ValueError, match="function name"):
        Call("jsonencode([1]) + x", ())


# The example: a gitops.path that closed the jsonencode object and opened one
# carrying a live ${timestamp()}; a service folder with a template directive.
INJECTION = 'apps", type = "PLAINTEXT" }, { name = "X${timestamp()}'
PIPELINE = f"""\
version: 1
project: shop
source: {{repository: example/shop}}
aws: {{region: eu-west-3, account_id: "012345678901"}}
environments:
  dev: {{branches: ["feature/*"]}}
  prod: {{branches: [main], approval: true, url: "https://x.example/%{{a}}\\"${{b}}"}}
security: {{dast: {{environment: prod}}, sign_images: true}}
gitops: {{repository: 'git@github.com:example/gitops.git', path: {json.dumps(INJECTION)}}}
services:
  web: {{path: "svc/%{{ if 1 }}x%{{ endif }}\\"q", image: shop/web}}
outputs: {{terraform: tf, codebuild: cb, helm: helm, argocd: argocd}}
"""


@needs_terraform
def test_a_hostile_pipeline_value_stays_a_value_in_codepipeline(tmp_path: Path) -> None:
    ir = compile_bytes("pipeline.yaml", PIPELINE.encode())
    files = {str(p): body for p, (_, body) in render_all(ir).items()}
    for path, body in files.items():
        if path.endswith(".tf"):
            hcl2.loads(body)  # every file parses
    tf = files["tf/codepipeline.tf"]
    calls = [
        line.split("=", 1)[1].strip()
        for line in tf.splitlines()
        if line.strip().startswith("EnvironmentVariables")
    ]
    locals_tf = "locals {\n" + "".join(f"  v{i} = {c}\n" for i, c in enumerate(calls)) + "}\n"
    got = terraform_eval(tmp_path, locals_tf, [f"v{i}" for i in range(len(calls))])
    passed = [json.loads(got[f"v{i}"]) for i in range(len(calls))]
    # the Deploy actions (not the release build's, not the DAST's)
    deploys = [p for p in passed if any(v["name"] == "GITOPS_DIR" for v in p)]
    svc = ir.services[0]

    def rows(variables: dict[str, str]) -> list[dict[str, str]]:
        return [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()]

    want = [rows(deploy_variables(ir, svc, d)) for d in svc.deployments]
    assert deploys == want  # dev, prod
    # each pipeline's Sign action: the service's folder (a template directive and a quote
    # in it here) and the build's image, for its tier's sign project
    signs = [p for p in passed if any(v["name"] == "BUILDER_ID" for v in p)]
    tiers = [ir.environment(d.environment).approval for d in svc.deployments]
    assert signs == [rows(sign_variables(ir, svc, release)) for release in tiers]
    assert {"name": "SERVICE_PATH", "value": svc.path, "type": "PLAINTEXT"} in signs[0]
    # prod's DAST action: the URL it scans (the environment's hostile url, a value),
    # the image it scans and marks
    dasts = [
        p for p in passed if p not in deploys and p not in signs and p[0]["name"] == "DAST_URL"
    ]
    assert dasts == [rows(dast_variables(ir, svc, svc.deployments[1]))]
    assert next(v for v in deploys[0] if v["name"] == "GITOPS_DIR") == {
        "name": "GITOPS_DIR",
        "value": f"{INJECTION}/web/dev",
        "type": "PLAINTEXT",
    }
    assert "timestamp()" not in "".join(re.findall(r"\$\{[^}]*\}", tf))


def test_a_codepipeline_variable_in_a_user_value_is_refused() -> None:
    source = PIPELINE.replace(json.dumps(INJECTION), '"apps/#{SourceVariables.CommitId}"')
    with pytest.raises(PipelineError) as exc:
        compile_bytes("pipeline.yaml", source.encode())
    (d,) = exc.value.diagnostics
    assert "gitops.path" in d.message or d.line == 9
    assert "contains '#{', which AWS CodePipeline would resolve as a variable" in d.message
