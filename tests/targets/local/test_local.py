"""The local target (issue 30): the Tiltfile run by a real Starlark interpreter
(starlark-rust, PyPI starlark-pyo3) with Tilt's builtins as recording functions, its
chart rendered by Helm's engine and validated by the Kubernetes schemas; the
Telepresence intercept scripts run against a stub that enforces the OSS CLI's rules;
kubeconfig.sh run by the real AWS CLI against moto (EKS) and the real kubectl."""

from __future__ import annotations

import inspect
import json
import os
import posixpath
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import starlark as sl
import yaml
from helm_python import Chart

from pipecompile.commands.cli import main
from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR
from pipecompile.targets import local
from pipecompile.targets.github_actions.deliver import deliver_file
from tests.conftest import ROOT, SAMPLES, hcl_norm
from tests.harness.reusable import expand
from tests.targets.helm.test_chart import K8S

STUBS = ROOT / "tests" / "stubs"


def ir_at(pipeline: Path) -> IR:
    return compile_bytes(str(pipeline), pipeline.read_bytes())


def local_samples() -> list[str]:
    return [
        s for s in SAMPLES if "local" in dict(ir_at(ROOT / "samples" / s / "pipeline.yaml").outputs)
    ]


class Tilt:
    """Tilt's builtins the generated Tiltfile may call, with Tilt's parameter names
    (https://docs.tilt.dev/api.html), recording each call and failing where Tilt fails:
    a path that does not exist, a k8s_resource for a workload no k8s_yaml declared,
    an object selector that matches nothing, a port forward that is not local:container."""

    def __init__(self, folder: Path, files: dict[str, str] | None = None) -> None:
        self.folder = folder  # the Tiltfile's folder: Tilt resolves every path from it
        self.files = files or {}  # read_file overrides (the developer's secrets files)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.objects: list[dict[str, Any]] = []
        self.namespaces: list[str] = []

    def _path(self, rel: str) -> Path:
        path = (self.folder / rel).resolve()
        assert path.exists(), f"Tilt: {rel} does not exist (from {self.folder})"
        return path

    def docker_build(
        self, ref: str, context: str, *, dockerfile: str = "Dockerfile", ignore: list[str] = ()
    ) -> None:
        self.calls.append(
            (
                "docker_build",
                {"ref": ref, "context": context, "dockerfile": dockerfile, "ignore": ignore},
            )
        )

    def helm(
        self, paths: str, *, name: str = "", namespace: str = "", values: list[str] = ()
    ) -> str:
        chart = self._path(paths)
        assert (chart / "Chart.yaml").is_file()
        merged: dict[str, Any] = {}
        for file in values:
            merged.update(yaml.safe_load(self._path(file).read_text()))
        self.calls.append(
            ("helm", {"paths": paths, "name": name, "namespace": namespace, "values": list(values)})
        )
        out = Chart.load(str(chart)).render(merged, name=name, namespace=namespace)
        return "\n---\n".join(out[k] for k in sorted(out))

    def decode_yaml_stream(self, text: str) -> list[Any]:
        return [d for d in yaml.safe_load_all(text) if d]

    def encode_yaml_stream(self, objs: list[Any]) -> str:
        return yaml.safe_dump_all(objs)

    def read_file(self, file_path: str, default: str | None = None) -> str:
        if file_path in self.files:
            return self.files[file_path]
        path = self.folder / file_path
        if path.exists():
            return path.read_text()
        assert default is not None, f"Tilt: read_file({file_path}) does not exist"
        return default

    def k8s_yaml(self, yaml_text: str) -> None:
        docs = [d for d in yaml.safe_load_all(yaml_text) if d]
        self.calls.append(("k8s_yaml", {"objects": docs}))
        self.objects += docs

    def namespace_create(self, name: str) -> None:
        self.calls.append(("namespace_create", {"name": name}))
        self.namespaces.append(name)

    def k8s_resource(
        self,
        workload: str = "",
        *,
        port_forwards: list[str] = (),
        objects: list[str] = (),
        labels: list[str] = (),
    ) -> None:
        kinds = {(o["metadata"]["name"], o["kind"]) for o in self.objects}
        assert (workload, "Deployment") in kinds, f"Tilt: no workload {workload}"
        for selector in objects:
            obj_name, kind = selector.split(":")
            assert any(n == obj_name and k.lower() == kind for n, k in kinds), selector
        for forward in port_forwards:
            local_port, container = forward.split(":")
            assert 0 < int(local_port) < 65536 and 0 < int(container) < 65536
        self.calls.append(
            (
                "k8s_resource",
                {
                    "workload": workload,
                    "port_forwards": list(port_forwards),
                    "objects": list(objects),
                    "labels": list(labels),
                },
            )
        )

    def local_resource(self, name: str, cmd: str = "", **kwargs: Any) -> None:
        self.calls.append(("local_resource", {"name": name, "cmd": cmd, **kwargs}))

    BUILTINS = (
        "docker_build",
        "helm",
        "decode_yaml_stream",
        "encode_yaml_stream",
        "read_file",
        "k8s_yaml",
        "namespace_create",
        "k8s_resource",
        "local_resource",
    )

    def run(self, tiltfile: Path) -> None:
        module = sl.Module()
        for name in self.BUILTINS:
            module.add_callable(name, _plain(getattr(self, name)))
        ast = sl.parse(str(tiltfile), tiltfile.read_text(), sl.Dialect.extended())
        sl.eval(module, ast, sl.Globals.extended_by([sl.LibraryExtension.Print]))

    def called(self, name: str) -> list[dict[str, Any]]:
        return [args for n, args in self.calls if n == name]


def _plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Tilt's signature, checked in Python (Starlark passes lists as lists)."""
    signature = inspect.signature(fn)

    def call(*args: Any, **kwargs: Any) -> Any:
        signature.bind(*args, **kwargs)  # an argument Tilt does not take is a TypeError
        return fn(*args, **kwargs)

    return call


def build(tmp: Path, sample: str, edit: Callable[[str], str] | None = None) -> Path:
    """A sample's pipeline built into ``tmp`` (optionally edited first)."""
    tmp.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "samples" / sample / "pipeline.yaml").read_text()
    (tmp / "pipeline.yaml").write_text(edit(text) if edit else text)
    assert main(["build", "-q", "-f", str(tmp / "pipeline.yaml")]) == 0
    return tmp / "pipeline.yaml"


@pytest.mark.parametrize("sample", local_samples())
def test_the_tiltfile_builds_and_deploys_each_service_as_the_pipeline_does(sample: str) -> None:
    root = ROOT / "samples" / sample
    ir = ir_at(root / "pipeline.yaml")
    folder = root / ir.output("local")
    tilt = Tilt(folder)
    tilt.run(folder / "Tiltfile")

    namespace = ir.environments[0].namespace
    assert tilt.namespaces == [namespace]
    builds = {b["ref"]: b for b in tilt.called("docker_build")}
    charts = tilt.called("helm")
    resources = {r["workload"]: r for r in tilt.called("k8s_resource")}
    assert len(builds) == len(charts) == len(resources) == len(ir.services)
    for svc in ir.services:
        b = builds[svc.image]
        # the context and Dockerfile of the pipeline's docker build (SERVICE_PATH, DOCKERFILE)
        assert (folder / b["context"]).resolve() == (root / svc.path).resolve()
        assert (folder / b["dockerfile"]).resolve() == (root / svc.dockerfile).resolve()
        # the developers' secrets files never enter the image: Tilt reads ignore patterns
        # relative to the context (docker_build(ignore=...), dockerignore syntax)
        secrets = (folder / "secrets").resolve()
        context = (folder / b["context"]).resolve()
        if secrets.is_relative_to(context):
            assert [str((context / i).resolve()) for i in b["ignore"]] == [str(secrets)]
        else:
            assert list(b["ignore"]) == []
        h = next(c for c in charts if c["name"] == svc.name)
        assert (folder / h["paths"]).resolve() == (root / (ir.chart_source or "")).resolve()
        assert h["values"] == [f"values/{svc.name}.yaml"] and h["namespace"] == namespace
        r = resources[svc.name]
        assert r["port_forwards"] == [f"{svc.local_port}:{svc.port}"] and r["labels"] == [svc.name]

    kinds = {o["kind"] for o in tilt.objects}
    assert not kinds & {"Rollout", "Ingress", "ExternalSecret", "AnalysisTemplate"}
    for obj in tilt.objects:
        kubernetes_validate.validate(obj, K8S, strict=True)
        assert obj["metadata"]["namespace"] == namespace
    for svc in ir.services:
        (dep,) = [
            o
            for o in tilt.objects
            if o["kind"] == "Deployment" and o["metadata"]["name"] == svc.name
        ]
        assert dep["spec"]["replicas"] == 1
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"{svc.image}:{local.LOCAL_TAG}"  # Tilt swaps its build in
        assert container["ports"][0]["containerPort"] == svc.port
        wanted = {e["secretRef"]["name"] for e in container.get("envFrom", [])}
        have = {o["metadata"]["name"] for o in tilt.objects if o["kind"] == "Secret"}
        assert wanted <= have and len(wanted) == len(svc.secrets)
        # every object of the service belongs to its resource
        named = {
            o["metadata"]["name"]
            for o in tilt.objects
            if o["kind"] not in ("Deployment", "Service")
        }
        grouped = {s.split(":")[0] for r in resources.values() for s in r["objects"]}
        assert named <= grouped
    assert not tilt.called("local_resource")


def test_local_secrets_come_from_the_developers_file(tmp_path: Path) -> None:
    pipeline = build(tmp_path, "ecommerce")
    folder = tmp_path / "dev"
    tilt = Tilt(
        folder,
        {"secrets/product-service.env": "# mine\nDATABASE_URL=postgres://me@localhost/shop\n"},
    )
    tilt.run(folder / "Tiltfile")
    (secret,) = [o for o in tilt.objects if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "ecommerce-product-service-database-url"
    assert secret["stringData"] == {"DATABASE_URL": "postgres://me@localhost/shop"}
    assert "/secrets/" in (folder / ".gitignore").read_text()  # never committed
    assert ir_at(pipeline).services[0].secrets == ("ecommerce/product-service/database-url",)


def test_a_tiltfile_calling_anything_but_tilts_builtins_fails(tmp_path: Path) -> None:
    """The recording set is closed: a name outside it is an error, not a silent pass."""
    tiltfile = tmp_path / "Tiltfile"
    tiltfile.write_text('custom_build("x", "make", deps=["."])\n')
    with pytest.raises(sl.StarlarkError, match="custom_build"):
        Tilt(tmp_path).run(tiltfile)


def test_local_port_and_eks_cluster_come_from_the_pipeline(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        text = text.replace("    port: 3000\n", "    port: 3000\n    local_port: 4000\n")
        return text.replace(
            "    namespace: ecommerce-dev\n",
            "    namespace: ecommerce-dev\n    eks_cluster: ecommerce-nonprod\n",
        )

    build(tmp_path, "ecommerce", edit)
    tilt = Tilt(tmp_path / "dev")
    tilt.run(tmp_path / "dev" / "Tiltfile")
    r = next(r for r in tilt.called("k8s_resource") if r["workload"] == "product-service")
    assert r["port_forwards"] == ["4000:3000"]
    script = (tmp_path / "dev" / "kubeconfig.sh").read_text()
    assert "ecommerce-development ecommerce-nonprod ecommerce-dev\n" in script
    assert "ecommerce-testing ecommerce ecommerce-test\n" in script
    assert "LOCAL_PORT=4000\n" in (tmp_path / "dev" / "intercept-product-service.sh").read_text()


def test_outputs_local_false_turns_it_off_and_a_folder_moves_it(tmp_path: Path) -> None:
    off = build(tmp_path / "off", "ecommerce", lambda t: t + "  local: false\n")
    assert "local" not in dict(ir_at(off).outputs)
    assert not (tmp_path / "off" / "dev").exists()
    moved = build(tmp_path / "moved", "ecommerce", lambda t: t + "  local: tools/dev\n")
    assert dict(ir_at(moved).outputs)["local"] == "tools/dev"
    tilt = Tilt(tmp_path / "moved" / "tools" / "dev")
    tilt.run(tmp_path / "moved" / "tools" / "dev" / "Tiltfile")
    assert len(tilt.called("docker_build")) == 2


def test_local_without_the_chart_is_a_located_error(tmp_path: Path) -> None:
    text = (ROOT / "samples" / "ecommerce" / "pipeline.yaml").read_text()
    text = text.replace("  helm: kubernetes/apps\n", "  local: dev\n")
    (tmp_path / "pipeline.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "pipecompile", "validate", "-f", str(tmp_path / "pipeline.yaml")],
        capture_output=True,
        text=True,
    )
    line = text.splitlines().index("  local: dev") + 1
    assert result.returncode == 2
    assert (
        f"pipeline.yaml:{line}:3: PC307 outputs.local: the local output deploys the generated chart"
        in result.stderr
    )


def test_eks_cluster_names_are_checked(tmp_path: Path) -> None:
    text = (ROOT / "samples" / "ecommerce" / "pipeline.yaml").read_text()
    text = text.replace(
        "    namespace: ecommerce-dev\n",
        "    namespace: ecommerce-dev\n    eks_cluster: -bad name\n",
    )
    (tmp_path / "pipeline.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "pipecompile", "validate", "-f", str(tmp_path / "pipeline.yaml")],
        capture_output=True,
        text=True,
    )
    line = text.splitlines().index("    eks_cluster: -bad name") + 1
    assert result.returncode == 2
    assert f"pipeline.yaml:{line}:18: PC107 environments.development.eks_cluster: " in result.stderr
    assert "an EKS cluster name" in result.stderr


# -- scripts -------------------------------------------------------------------------


def scripts() -> list[Path]:
    return sorted(
        p
        for s in local_samples()
        for p in (ROOT / "samples" / s).glob(
            f"{dict(ir_at(ROOT / 'samples' / s / 'pipeline.yaml').outputs)['local']}/*.sh"
        )
    )


def test_every_generated_script_is_shellcheck_clean() -> None:
    assert shutil.which("shellcheck"), "shellcheck must be installed (scripts/test does it)"
    files = scripts()
    assert len(files) >= 2 * len(local_samples())
    result = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def fake_cluster(tmp: Path, pipeline: Path, *, argo_rollouts: bool) -> Path:
    """The first environment as Argo CD deploys it: the chart rendered by Helm with its
    values-<env>.yaml, its workloads and Services recorded for the stubs."""
    ir = ir_at(pipeline)
    env = ir.environments[0]
    root = pipeline.parent
    workloads = []
    for svc in ir.services:
        dep = next(d for d in svc.deployments if d.environment == env.name)
        values = yaml.safe_load(
            (root / (svc.values_source or "") / f"values-{env.name}.yaml").read_text()
        )
        values["image"] = {**values["image"], "tag": "src-0123"}
        out = Chart.load(str(root / (ir.chart_source or ""))).render(
            values, name=dep.app_name, namespace=dep.namespace
        )
        docs = [d for t in out.values() for d in yaml.safe_load_all(t) if d]
        (workload,) = [d for d in docs if d["kind"] in ("Deployment", "Rollout")]
        (service,) = [
            d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == svc.name
        ]
        workloads.append(
            {
                "context": env.kube_context,
                "namespace": dep.namespace,
                "kind": workload["kind"],
                "name": workload["metadata"]["name"],
                "ports": service["spec"]["ports"],
                "env": {"REMOTE_ENV": env.name, "SERVICE": svc.name},
            }
        )
    path = tmp / "cluster.json"
    path.write_text(json.dumps({"argoRollouts": argo_rollouts, "workloads": workloads}))
    return path


def stub_env(tmp: Path, cluster: Path, contexts: list[str]) -> dict[str, str]:
    """PATH with the telepresence and kubectl stubs (run by this interpreter), a
    kubeconfig holding ``contexts`` (written by the real kubectl)."""
    real = shutil.which("kubectl")
    assert real, "kubectl must be installed"
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in ("telepresence", "kubectl"):
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUBS / tool}" "$@"\n')
        wrapper.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp),
        "KUBECONFIG": str(tmp / "kubeconfig"),
        "REAL_KUBECTL": real,
        "TP_CLUSTER": str(cluster),
        "TP_LOG": str(tmp / "telepresence.log"),
        "TP_STATE": str(tmp / "telepresence.state"),
    }
    for context in contexts:
        subprocess.run(
            [real, "config", "set-context", context, "--cluster", "c"],
            env=env,
            check=True,
            capture_output=True,
        )
    return env


def telepresence_calls(env: dict[str, str]) -> list[list[str]]:
    return [json.loads(line) for line in Path(env["TP_LOG"]).read_text().splitlines()]


def test_intercept_matches_chapter_6_2_for_the_reference(tmp_path: Path) -> None:
    pipeline = build(tmp_path / "repo", "ecommerce")
    ir = ir_at(pipeline)
    env_ = ir.environments[0]
    cluster = fake_cluster(tmp_path, pipeline, argo_rollouts=False)
    env = stub_env(tmp_path, cluster, [e.kube_context for e in ir.environments])
    script = tmp_path / "repo" / "dev" / "intercept-product-service.sh"
    result = subprocess.run(
        ["bash", str(script), "4000", "--", "sh", "-c", 'echo "$SERVICE in $REMOTE_ENV"'],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("product-service in development")
    env_file = str(tmp_path / "repo" / "dev" / "product-service.remote.env")
    assert telepresence_calls(env) == [
        ["connect", "--context", env_.kube_context, "--namespace", "ecommerce-dev"],
        [
            "intercept",
            "product-service",
            "--port",
            "4000:3000",
            "--env-file",
            env_file,
            "--",
            "sh",
            "-c",
            'echo "$SERVICE in $REMOTE_ENV"',
        ],
    ]
    assert "REMOTE_ENV=development" in Path(env_file).read_text()
    # without a port: the service's local_port; without a command: the intercept stays
    result = subprocess.run(
        ["bash", str(tmp_path / "repo" / "dev" / "intercept-order-service.sh")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert telepresence_calls(env)[-1][:4] == ["intercept", "order-service", "--port", "8080:8080"]
    assert "telepresence leave order-service" in result.stdout


def test_intercept_refuses_a_bad_port_and_a_missing_workload(tmp_path: Path) -> None:
    pipeline = build(tmp_path / "repo", "ecommerce")
    cluster = fake_cluster(tmp_path, pipeline, argo_rollouts=False)
    env = stub_env(tmp_path, cluster, [e.kube_context for e in ir_at(pipeline).environments])
    script = str(tmp_path / "repo" / "dev" / "intercept-product-service.sh")
    bad = subprocess.run(["bash", script, "70000"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "must be 1-65535" in bad.stderr
    cluster.write_text(json.dumps({"argoRollouts": False, "workloads": []}))
    missing = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert missing.returncode == 1
    assert "no deployment 'product-service' in namespace ecommerce-dev" in missing.stderr
    assert not Path(env["TP_LOG"]).exists()  # telepresence never ran


def test_a_canary_environment_intercepts_the_rollout(tmp_path: Path) -> None:
    """development on canary: the chart deploys a Rollout; the script says so, and only a
    traffic manager with Argo Rollouts support intercepts it (explain says that too)."""

    def edit(text: str) -> str:
        return text.replace(
            "    namespace: ecommerce-dev\n", "    namespace: ecommerce-dev\n    strategy: canary\n"
        )

    pipeline = build(tmp_path / "repo", "ecommerce", edit)
    script = tmp_path / "repo" / "dev" / "intercept-product-service.sh"
    assert "WORKLOAD_KIND=rollout\n" in script.read_text()
    tilt = Tilt(tmp_path / "repo" / "dev")  # locally still a plain Deployment
    tilt.run(tmp_path / "repo" / "dev" / "Tiltfile")
    assert {o["kind"] for o in tilt.objects} & {"Rollout", "Deployment"} == {"Deployment"}
    checklist = subprocess.run(
        [sys.executable, "-m", "pipecompile", "explain", "-f", str(pipeline)],
        capture_output=True,
        text=True,
    ).stdout
    assert "--set workloads.argoRollouts.enabled=true" in checklist

    cluster = fake_cluster(tmp_path, pipeline, argo_rollouts=False)
    assert {w["kind"] for w in json.loads(cluster.read_text())["workloads"]} == {"Rollout"}
    env = stub_env(tmp_path, cluster, [e.kube_context for e in ir_at(pipeline).environments])
    refused = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "workloads.argoRollouts.enabled=true" in refused.stderr
    assert "No interceptable deployment, replicaset, or statefulset matching" in refused.stderr
    cluster.write_text(cluster.read_text().replace('"argoRollouts": false', '"argoRollouts": true'))
    ok = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_kubeconfig_has_one_context_per_environment_with_eks_get_token(tmp_path: Path) -> None:
    """The real AWS CLI (update-kubeconfig) against moto's EKS, the real kubectl."""
    from moto.server import ThreadedMotoServer

    pipeline = build(tmp_path / "repo", "ecommerce")
    ir = ir_at(pipeline)
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    assert aws and shutil.which("kubectl")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "PATH": f"{Path(aws).parent}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "KUBECONFIG": str(tmp_path / "kubeconfig"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        for cluster in dict.fromkeys(e.eks_cluster for e in ir.environments):
            subprocess.run(
                [
                    aws,
                    "eks",
                    "create-cluster",
                    "--region",
                    ir.aws.region,
                    "--name",
                    cluster,
                    "--role-arn",
                    f"arn:aws:iam::{ir.aws.account_id}:role/eks",
                    "--resources-vpc-config",
                    "subnetIds=subnet-1",
                ],
                env=env,
                check=True,
                capture_output=True,
            )
        result = subprocess.run(
            ["bash", str(tmp_path / "repo" / "dev" / "kubeconfig.sh")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
    finally:
        server.stop()
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    assert set(contexts) == {f"ecommerce-{e.name}" for e in ir.environments}
    users = {u["name"]: u["user"]["exec"] for u in config["users"]}
    for e in ir.environments:
        ctx = contexts[e.kube_context]
        assert ctx["namespace"] == e.namespace and ctx["user"] == e.kube_context
        assert (
            ctx["cluster"]
            == f"arn:aws:eks:{ir.aws.region}:{ir.aws.account_id}:cluster/{e.eks_cluster}"
        )
        token = users[e.kube_context]
        assert token["command"] == "aws"
        assert token["args"] == [
            "--region",
            ir.aws.region,
            "eks",
            "get-token",
            "--cluster-name",
            e.eks_cluster,
            "--output",
            "json",
        ]


def test_explain_local_walks_the_loop_of_chapter_6() -> None:
    from click.testing import CliRunner

    from pipecompile.commands.cli import cli

    pipeline = ROOT / "samples" / "ecommerce" / "pipeline.yaml"
    result = CliRunner().invoke(cli, ["explain", "--local", "-f", str(pipeline)])
    assert result.exit_code == 0, result.output
    out = result.output
    for needle in (
        "Tilt",
        "Telepresence",
        "OpenLens",
        "kind, k3d",
        "tilt up -f dev/Tiltfile",
        "http://localhost:10350",
        "bash dev/kubeconfig.sh",
        "ecommerce-production",
        "bash dev/intercept-product-service.sh",
        "port 3000:3000",
        "dev/secrets/<service>.env",
        "product-service: DATABASE_URL",
        "Argo CD UI",
        "https://staging.shop.example.com",
        "codesuite/codepipeline/pipelines?region=us-east-1",
    ):
        assert needle in out, needle
    assert main(["explain", "--local", "--ref", "main", "-f", str(pipeline)]) == 2


def test_explain_local_when_the_output_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = build(tmp_path, "ecommerce", lambda t: t + "  local: false\n")
    assert main(["explain", "--local", "-f", str(pipeline)]) == 2
    assert "the local output is off" in capsys.readouterr().err


def test_the_chart_paths_in_the_tiltfile_are_relative_to_its_folder() -> None:
    ir = ir_at(ROOT / "samples" / "storefront" / "pipeline.yaml")
    text = local.tiltfile(ir)
    assert f'CHART = "{posixpath.relpath(ir.chart_source or "", "dev")}"' in text
    assert 'CHART = "../deploy/apps/_chart"' in text


def _build_envs(node: Any) -> list[dict[str, Any]]:
    """Every mapping holding the docker build's inputs (SERVICE_PATH and DOCKERFILE)."""
    found = []
    if isinstance(node, dict):
        if "SERVICE_PATH" in node and "DOCKERFILE" in node:
            found.append(node)
        for value in node.values():
            found += _build_envs(value)
    elif isinstance(node, list):
        for value in node:
            found += _build_envs(value)
    return found


def _project_variables(path: Path, label: str) -> dict[str, str]:
    """A CodeBuild project's environment variables, as Terraform sets them."""
    import hcl2

    for block in hcl_norm(hcl2.loads(path.read_text()))["resource"]:
        body = block.get("aws_codebuild_project", {}).get(label)
        if body:
            rows = body["environment"][0].get("environment_variable", [])
            return {r["name"]: r["value"] for r in rows}
    raise KeyError(label)


@pytest.mark.parametrize("sample", ["ecommerce", "storefront"])
def test_tilt_builds_what_the_deliverers_build(sample: str) -> None:
    """The deliverer's generated build (CodeBuild buildspec, or the GitHub deliver
    workflow) and the Tiltfile name the same context and Dockerfile per service."""
    root = ROOT / "samples" / sample
    ir = ir_at(root / "pipeline.yaml")
    folder = root / ir.output("local")
    tilt = Tilt(folder)
    tilt.run(folder / "Tiltfile")
    builds = {b["ref"]: b for b in tilt.called("docker_build")}
    for svc in ir.services:
        if ir.delivery == "codepipeline":  # build.yml, with the build project's values
            path = root / ir.output("terraform") / "codebuild.tf"
            envs = [_project_variables(path, f"build-{svc.name}")]
        else:  # the deliver workflow as GitHub runs it: build.yml with its inputs
            path = root / ir.output("github-actions") / deliver_file(svc)
            envs = _build_envs(expand(path)["jobs"]["build"])
        assert envs, path
        b = builds[svc.image]
        for env in envs:
            assert (folder / b["context"]).resolve() == (root / env["SERVICE_PATH"]).resolve()
            assert (folder / b["dockerfile"]).resolve() == (root / env["DOCKERFILE"]).resolve()


def test_user_strings_reach_the_tiltfile_and_scripts_unchanged(tmp_path: Path) -> None:
    """A folder name with quotes, '$(...)' and non-ASCII stays a string:
    Starlark reads it back exactly, and bash never evaluates it."""
    odd = "services/o'r\"d $(touch pwned) é"

    def edit(text: str) -> str:
        return text.replace("    path: services/order\n", f"    path: {json.dumps(odd)}\n")

    pipeline = build(tmp_path / "repo", "ecommerce", edit)
    assert ir_at(pipeline).services[1].path == odd
    folder = tmp_path / "repo" / "dev"
    (tmp_path / "repo" / odd).mkdir(parents=True)
    (tmp_path / "repo" / odd / "Dockerfile").write_text("FROM scratch\n")
    tilt = Tilt(folder)
    tilt.run(folder / "Tiltfile")
    b = next(b for b in tilt.called("docker_build") if b["ref"] == "ecommerce/order-service")
    assert b["context"] == f"../{odd}" and b["dockerfile"] == f"../{odd}/Dockerfile"
    for script in folder.glob("*.sh"):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert not (tmp_path / "pwned").exists() and not (folder / "pwned").exists()
