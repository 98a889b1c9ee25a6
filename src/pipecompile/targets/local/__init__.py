"""Local development from the same pipeline: Tilt, Telepresence and OpenLens.

Specification section 3.5 and chapter 6.  In the output folder (``dev`` by default):

* ``Tiltfile``: per service, ``docker_build`` with the context and Dockerfile the
  pipeline's build uses, ``k8s_yaml(helm(...))`` of the generated chart with
  ``values/<service>.yaml`` (one replica, a plain Deployment, no Ingress, Secrets
  from a local file instead of the SecretStore), and ``k8s_resource`` forwarding
  the service's local port, one resource per service;
* ``values/<service>.yaml``: the helm target's values for the first environment,
  with what only a cluster needs turned off (the chart's values interface only);
* ``intercept-<service>.sh``: a Telepresence (OSS CLI) intercept of the service in
  the first environment of the promotion order, with the right workload kind: its
  values, then ``intercept.sh`` (the intercept itself, once for every service);
* ``kubeconfig.sh``: one kubeconfig context per environment (``aws eks
  update-kubeconfig --alias <project>-<env>``), for kubectl, Telepresence and OpenLens;
* ``.gitignore``: the developer's secrets files and the intercepts' env files.

The scripts' and the Tiltfile's bodies are files in this package; what a render adds
is a header of values, each escaped for the language it lands in.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import shlex
from functools import cache
from importlib import resources
from typing import Any

from ...ir import IR, Deployment, Environment, Service, Strategy
from ...serialize.emit import yaml_document
from .. import Finding
from ..chart.values import values as chart_values

name = "local"
follows = "helm"  # it deploys the chart: on whenever the helm output is
default_folder = "dev"  # under outputs: when the pipeline names no folder
cost = 34  # ms to render per 1000 services (measured beside helm's 53); balances rendering

TILT_UI = "http://localhost:10350"  # tilt up's web UI (its default --port)
LOCAL_TAG = "tilt"  # Tilt replaces the image by its own build; never pulled


@cache
def body(file: str) -> str:
    """A script or Tiltfile body shipped in this package; a script without its shebang,
    which only the packaged file (run alone, tested as a file) has: in the generated one
    pipecompile's header comes first, then ``# shellcheck shell=bash`` (run with bash)."""
    text = (resources.files(__name__) / file).read_text("utf-8")
    return text.removeprefix("#!/usr/bin/env bash\n") if file.endswith(".sh") else text


def remote_env(ir: IR) -> Environment:
    """The environment Telepresence intercepts: the first in promotion order (development)."""
    return ir.environments[0]


def workload_kind(dep: Deployment) -> str:
    """The chart deploys a Rollout for canary and blue-green, a Deployment for rolling."""
    return "deployment" if dep.strategy.kind == "rolling" else "rollout"


def _rel(ir: IR, path: str) -> str:
    """``path`` (relative to the root) as the Tiltfile in the output folder reads it."""
    return posixpath.relpath(path, ir.output(name))


def secrets_file(svc: Service) -> str:
    return f"secrets/{svc.name}.env"


def env_file(svc: Service) -> str:
    return f"{svc.name}.remote.env"


def values_file(svc: Service) -> str:
    return f"values/{svc.name}.yaml"


def local_values(ir: IR, svc: Service) -> dict[str, Any]:
    """The chart's values for a local cluster, from the values the helm target writes
    (the chart's contract, targets/chart)."""
    first = svc.deployments[0]
    dep = dataclasses.replace(
        first, replicas=1, strategy=Strategy("rolling", "rolling"), hosts=(), preview_host=None
    )
    out = chart_values(ir, svc, dep)
    out["environment"] = "local"
    out["image"] = {"repository": svc.image, "tag": LOCAL_TAG}
    out["ingress"] = dict(out.get("ingress") or {}, enabled=False, host="")
    # no Prometheus Operator and no External Secrets Operator in a local cluster: the
    # Tiltfile writes the Secrets itself (see _secrets)
    if "serviceMonitor" in out:
        out["serviceMonitor"] = dict(out["serviceMonitor"], enabled=False)
    store = (out.get("externalSecrets") or {}).get("store")
    if store is not None:
        out["externalSecrets"] = dict(out["externalSecrets"], store=dict(store, create=False))
    return out


def _secrets(ir: IR, svc: Service) -> list[dict[str, str]]:
    """The Secrets the pods read (name and key), as the chart's ExternalSecrets name them."""
    entries = (local_values(ir, svc).get("externalSecrets") or {}).get("secrets", [])
    return [{"name": e["name"], "key": e["envName"]} for e in entries]


def _star(value: Any) -> str:
    """A Starlark literal: JSON's strings, numbers, lists and dicts are Starlark's."""
    return json.dumps(value, ensure_ascii=True, sort_keys=False)


# Interpreted runtimes can skip the image build on a source change (Tilt's live_update);
# the folder in the image is the Dockerfile's WORKDIR, which only the Dockerfile knows.
_LIVE_UPDATE = {
    "node": 'sync("{ctx}", "/app"), run("npm ci", trigger=["{ctx}/package-lock.json"])',
    "python": 'sync("{ctx}", "/app"), run("pip install -r requirements.txt", '
    'trigger=["{ctx}/requirements.txt"])',
}


def _live_update_hints(ir: IR) -> list[str]:
    hints = []
    for svc in ir.services:
        step = _LIVE_UPDATE.get(svc.runtime.language)
        if step:
            ctx = _rel(ir, svc.path)
            hints.append(
                f"# live update ({svc.runtime.language}): with WORKDIR /app, {svc.name}'s "
                f"docker_build could take live_update=[{step.format(ctx=ctx)}] (not added: "
                "only its Dockerfile knows the WORKDIR)"
            )
    return hints


def _build_ignore(ir: IR, svc: Service) -> list[str]:
    """What the image build leaves out of its context: the developers' secrets files,
    when the context holds them (a service at the repository root); patterns are
    relative to the context, as Tilt's docker_build(ignore=...) reads them."""
    secrets = posixpath.join(ir.output(name), "secrets")
    context = posixpath.normpath(svc.path)
    if context == ".":
        return [secrets]
    if secrets.startswith(context + "/"):
        return [posixpath.relpath(secrets, context)]
    return []


def tiltfile(ir: IR) -> str:
    services = []
    for svc in ir.services:
        services.append(
            {
                "name": svc.name,
                "image": svc.image,
                "context": _rel(ir, svc.path),
                "dockerfile": _rel(ir, svc.dockerfile),
                "ignore": _build_ignore(ir, svc),
                "values": values_file(svc),
                "port": svc.port,
                "local_port": svc.local_port,
                "secrets": _secrets(ir, svc),
                "secrets_file": secrets_file(svc),
            }
        )
    lines = [
        f"# Local development of {ir.project}: tilt up -f {ir.output(name)}/Tiltfile",
        f"# (a local cluster: kind, k3d, minikube or Docker Desktop; UI at {TILT_UI})",
        f"PROJECT = {_star(ir.project)}",
        f"NAMESPACE = {_star(remote_env(ir).namespace)}",
        f"CHART = {_star(_rel(ir, ir.chart_source or ''))}",
        "SERVICES = [",
        *(f"    {_star(s)}," for s in services),
        "]",
        *_live_update_hints(ir),
        "",
    ]
    return "\n".join(lines) + body("Tiltfile.star")


def _shell(script: str, inputs: list[tuple[str, str | int]]) -> str:
    head = ["# shellcheck shell=bash"]
    head += [f"{key}={shlex.quote(str(value))}" for key, value in inputs]
    return "\n".join(head) + "\n" + (body(script) if script else "")


INTERCEPT = "intercept.sh"  # the intercept itself, once: each service's script sources it


def intercept(ir: IR, svc: Service) -> str:
    """``intercept-<service>.sh``: the service's values, then the shared intercept.sh."""
    env = remote_env(ir)
    dep = next(d for d in svc.deployments if d.environment == env.name)
    head = _shell(
        "",
        [
            ("SERVICE", svc.name),
            ("WORKLOAD_KIND", workload_kind(dep)),
            ("NAMESPACE", dep.namespace),
            ("CONTEXT", env.kube_context),
            ("SERVICE_PORT", svc.port),
            ("LOCAL_PORT", svc.local_port),
            ("ENV_FILE", env_file(svc)),
        ],
    )
    return (
        head
        + f"# the intercept, the same for every service ({INTERCEPT}, beside this script)\n"
        + f"# shellcheck source=SCRIPTDIR/{INTERCEPT}\n"
        + f'. "$(dirname "${{BASH_SOURCE[0]}}")/{INTERCEPT}"\n'
    )


def kubeconfig(ir: IR) -> str:
    contexts = "\n".join(f"{e.kube_context} {e.eks_cluster} {e.namespace}" for e in ir.environments)
    return _shell("kubeconfig.sh", [("REGION", ir.aws.region), ("CONTEXTS", contexts)])


def gitignore(ir: IR) -> str:
    return (
        "# yours: the local Secrets' values (KEY=value) and the intercepts' remote env files\n"
        "/secrets/\n"
        "/*.remote.env\n"
    )


def render(ir: IR) -> dict[str, str]:
    out = {
        "Tiltfile": tiltfile(ir),
        "kubeconfig.sh": kubeconfig(ir),
        ".gitignore": gitignore(ir),
    }
    for svc in ir.services:
        out[values_file(svc)] = yaml_document(local_values(ir, svc))
        out[f"intercept-{svc.name}.sh"] = intercept(ir, svc)
    if ir.services:
        out[INTERCEPT] = "# shellcheck shell=bash\n" + body(INTERCEPT)
    return out


def check(ir: IR) -> list[Finding]:
    if ir.chart_source is not None:
        return []
    return [
        Finding(
            ("outputs", "local"),
            "the local output deploys the generated chart: turn the helm output on "
            "(or set outputs.local: false)",
            key=True,
            code="PC307",
        )
    ]


def describe(ir: IR) -> list[str]:
    """What the local loop needs outside the repository (explain's checklist)."""
    env = remote_env(ir)
    rollouts = [
        d.service
        for svc in ir.services
        for d in svc.deployments
        if d.environment == env.name and workload_kind(d) == "rollout"
    ]
    line = (
        f"Telepresence's traffic manager in {env.name} ({env.eks_cluster}): telepresence "
        "helm install"
    )
    if rollouts:
        line += (
            " --set workloads.argoRollouts.enabled=true (intercepts of the Argo Rollouts "
            f"{', '.join(rollouts)} need it)"
        )
    return [
        line,
        "Each developer's AWS credentials may call eks:DescribeCluster on "
        + ", ".join(dict.fromkeys(e.eks_cluster for e in ir.environments))
        + " (kubeconfig.sh) and are mapped to a Kubernetes user there (EKS access entries)",
    ]


def _pipeline_link(ir: IR) -> str:
    """Where the pipelines' runs are listed (chapter 6.3's pipeline status page)."""
    if ir.delivery == "github-actions":
        return f"https://github.com/{ir.repository}/actions"
    region = ir.aws.region
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines?region={region}"
    )


def loop(ir: IR) -> list[str]:
    """``pipecompile explain --local``: the local loop of chapter 6, step by step."""
    folder = ir.output(name)
    env = remote_env(ir)
    out = [
        "Install: Docker, a local Kubernetes cluster (kind, k3d, minikube or Docker Desktop), "
        "kubectl, Helm 3 and Tilt (tilt up renders the chart with helm); Telepresence "
        "(open-source CLI) to intercept; the AWS CLI v2 to reach the environments; "
        "OpenLens to see them",
        f"1. Put each service's secrets in {folder}/secrets/<service>.env (KEY=value; "
        "ignored by git): "
        + (
            "; ".join(
                f"{svc.name}: {', '.join(s['key'] for s in _secrets(ir, svc))}"
                for svc in ir.services
                if svc.secrets
            )
            or "no service reads a secret"
        ),
        f"2. tilt up -f {folder}/Tiltfile  (builds each image as the pipeline does, deploys "
        f"the generated chart into namespace {env.namespace} of your local cluster; "
        f"dashboard {TILT_UI})",
    ]
    for svc in ir.services:
        out.append(
            f"   {svc.name}: http://localhost:{svc.local_port} (container port {svc.port}, "
            f"built from {svc.dockerfile} in {svc.path})"
        )
    out.append(
        f"3. bash {folder}/kubeconfig.sh  (one context per environment: "
        + ", ".join(e.kube_context for e in ir.environments)
        + "; OpenLens lists them by these names)"
    )
    out.append(f"4. Intercept a service in {env.name} (namespace {env.namespace}):")
    for svc in ir.services:
        dep = next(d for d in svc.deployments if d.environment == env.name)
        out.append(
            f"   bash {folder}/intercept-{svc.name}.sh [LOCAL_PORT] [-- COMMAND]  "
            f"({workload_kind(dep)} {svc.name}, port {svc.local_port}:{svc.port}, remote env "
            f"in {folder}/{env_file(svc)}; end with telepresence leave {svc.name})"
        )
    if any(workload_kind(d) == "rollout" for s in ir.services for d in s.deployments[:1]):
        out.append("   " + describe(ir)[0])
    out.append("Links:")
    out.append(f"   Tilt dashboard: {TILT_UI}")
    for e in ir.environments:
        out.append(
            f"   {e.name}: Argo CD UI: kubectl --context {e.kube_context} -n argocd "
            "port-forward svc/argocd-server 18080:443, then https://localhost:18080/applications"
            + (f"; {e.url}" if e.url else "")
        )
    out.append(f"   pipeline status: {_pipeline_link(ir)}")
    return out
