"""The generated charts (issue 16), rendered by Helm's own engine (helm-python-sdk,
offline) for every sample x service x environment, validated by kubernetes-validate
(strict) and the Argo Rollouts / External Secrets CRD schemas; and every path and
value file an Argo CD Application names exists in a GitOps repository that the
deployer's own script filled."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from helm_python import Chart

from pipecompile.compiler import compile_bytes
from pipecompile.ir import IR, Deployment, Service
from pipecompile.targets.common import script_path
from tests.conftest import ROOT, SAMPLES, folder, git, scratch_gitops, validator

# kubernetes-validate reads its (large) definitions file on every call: read each once
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)  # type: ignore[method-assign]

DIGEST = "sha256:" + "cd" * 32
K8S = kubernetes_validate.latest_version()
CRDS = {
    "Rollout": "argo-rollouts-rollout-v1alpha1.json",
    "AnalysisTemplate": "argo-rollouts-analysistemplate-v1alpha1.json",
    "ExternalSecret": "external-secrets-externalsecret-v1.json",
    # from the projects' CRDs (tests/schemas/SOURCES.md, scripts/crd-schema)
    "SecretStore": "external-secrets-secretstore-v1.json",
    "ServiceMonitor": "prometheus-operator-servicemonitor-v1.json",
}


@cache
def ir_of(sample: str) -> IR:
    path = ROOT / "samples" / sample / "pipeline.yaml"
    return compile_bytes(str(path), path.read_bytes())


def cases() -> list[tuple[str, str, str]]:
    return [
        (sample, svc.name, dep.environment)
        for sample in SAMPLES
        for svc in ir_of(sample).services
        for dep in svc.deployments
    ]


def render(chart_dir: Path, values_file: Path, dep: Deployment) -> list[dict[str, Any]]:
    """helm template with values-<env>.yaml and a deployer's image-<env>.yaml."""
    values = yaml.safe_load(values_file.read_text())
    values["image"] = {**values["image"], "tag": "src-0123", "digest": DIGEST}
    out = Chart.load(str(chart_dir)).render(values, name=dep.app_name, namespace=dep.namespace)
    docs = [d for text in out.values() for d in yaml.safe_load_all(text) if d]
    assert docs
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def lookup(sample: str, service: str, env: str) -> tuple[IR, Service, Deployment]:
    ir = ir_of(sample)
    svc = next(s for s in ir.services if s.name == service)
    return ir, svc, next(d for d in svc.deployments if d.environment == env)


def assert_restricted(pod: dict[str, Any]) -> None:
    """Pod Security Standards, "restricted" (kubernetes.io/docs/concepts/security/
    pod-security-standards): non-root, no privilege escalation, every capability
    dropped, a RuntimeDefault or Localhost seccomp profile."""
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
    assert ctx["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc["capabilities"].get("add")
        assert not sc.get("privileged")


@pytest.mark.parametrize(("sample", "service", "env"), cases())
def test_every_chart_renders_valid_manifests_for_every_environment(
    sample: str, service: str, env: str
) -> None:
    ir, svc, dep = lookup(sample, service, env)
    chart = ROOT / "samples" / sample / (ir.chart_source or "")  # one chart for every service
    values = ROOT / "samples" / sample / (svc.values_source or "") / f"values-{env}.yaml"
    docs = render(chart, values, dep)
    for d in docs:
        if d["kind"] in CRDS:
            validator(CRDS[d["kind"]]).validate(d)
        else:
            kubernetes_validate.validate(d, K8S, strict=True)

    workload = by_kind(docs, "Rollout") or by_kind(docs, "Deployment")
    assert len(workload) == 1
    spec = workload[0]["spec"]
    assert spec["replicas"] == dep.replicas
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    # deployed by digest, an approval environment's from the release repository
    uri = ir.image_of(svc, ir.environment(env))[1]
    assert container["image"] == f"{uri}@{DIGEST}"
    assert container["readinessProbe"] and container["livenessProbe"]
    assert container["startupProbe"]
    # liveness asks only whether the process serves its port: a failing dependency
    # makes a pod unready (no traffic), it does not restart it
    assert container["livenessProbe"] != container["readinessProbe"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert_restricted(pod)
    strategy = dep.strategy
    if strategy.kind == "rolling":
        assert workload[0]["kind"] == "Deployment"
    else:
        assert workload[0]["kind"] == "Rollout"
        # a rollback to one of the last revisions skips the canary's steps and analysis
        # (argo-rollouts v1.9.0 docs/features/rollback.md); a window past the kept
        # ReplicaSets could match nothing
        assert spec["rollbackWindow"] == {"revisions": 3}
        assert spec["rollbackWindow"]["revisions"] <= spec["revisionHistoryLimit"]
    if strategy.kind == "canary":
        canary = spec["strategy"]["canary"]
        steps = []
        for step in strategy.steps:
            steps.append({"setWeight": step.weight})
            if step.pause:
                steps.append({"pause": {"duration": step.pause}})
        assert canary["steps"] == steps  # pipeline.yaml's strategy, step for step
        assert canary["trafficRouting"]["alb"]["ingress"] == svc.name  # weights = traffic
        services = {s["metadata"]["name"] for s in by_kind(docs, "Service")}
        assert {canary["canaryService"], canary["stableService"]} <= services
        ingress = by_kind(docs, "Ingress")[0]
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": svc.name, "port": {"name": "use-annotation"}}

    rb = ir.rollback
    templates = by_kind(docs, "AnalysisTemplate")
    if rb is None or strategy.kind == "rolling" or not (rb.max_error_rate or rb.max_p90_latency):
        assert templates == []
    else:
        (template,) = templates
        expected: dict[str, str] = {}
        if rb.max_error_rate is not None:
            expected["error-rate"] = repr(rb.max_error_rate)
        if rb.max_p90_latency_ms is not None:
            expected["p90-latency-ms"] = str(rb.max_p90_latency_ms)
        metrics = {m["name"]: m for m in template["spec"]["metrics"]}
        if rb.smoke_path and strategy.kind == "blue-green":
            # the preview's requests (test_rollouts: test_smoke_requests_...)
            smoke = metrics.pop("smoke-requests")
            assert smoke["provider"]["web"]["url"].endswith(f":{svc.port}{rb.smoke_path}")
        assert set(metrics) == set(expected)
        for name, limit in expected.items():  # rollback's thresholds, exactly
            # (test_rollouts proves the conditions decide on them)
            success = metrics[name]["successCondition"]
            median = f"count(result[0].Values, {{# > {limit}}}) * 2 <= len(result[0].Values)"
            assert success.endswith((f"<= {limit}", f"<= {limit}}})", median)), success
            assert f"> {limit}" in metrics[name]["failureCondition"]
        analysis = spec["strategy"].get("canary", spec["strategy"].get("blueGreen", {}))
        refs = analysis.get("analysis") or analysis.get("prePromotionAnalysis")
        assert refs["templates"][0]["templateName"] == template["metadata"]["name"]
    monitors = by_kind(docs, "ServiceMonitor")
    monitored = rb is not None and rb.provider == "prometheus" and rb.service_monitor
    assert len(monitors) == (1 if monitored else 0)

    # this environment's keys, through a store that may read only them
    env_ = ir.environment(env)
    keys = {e["spec"]["data"][0]["remoteRef"]["key"] for e in by_kind(docs, "ExternalSecret")}
    assert keys == {key for _, key in dep.secret_keys}
    assert all(key.startswith(env_.secret_prefix) for key in keys)
    stores = by_kind(docs, "SecretStore")
    accounts = {a["metadata"]["name"]: a for a in by_kind(docs, "ServiceAccount")}
    for es in by_kind(docs, "ExternalSecret"):
        ref = es["spec"]["secretStoreRef"]
        assert ref["kind"] == env_.secret_store.kind
        if ref["kind"] == "SecretStore":
            (store,) = stores
            assert ref["name"] == store["metadata"]["name"]
            aws = store["spec"]["provider"]["aws"]
            # not 'role': the controller's own identity would assume it for any
            # namespace's store; a token of this namespace's ServiceAccount instead
            # (external-secrets v2.9.0 providers/v1/aws/auth/auth.go
            # credsFromServiceAccount: the role of its eks.amazonaws.com/role-arn)
            assert "role" not in aws and "additionalRoles" not in aws
            sa = aws["auth"]["jwt"]["serviceAccountRef"]
            assert set(sa) == {"name"}  # a SecretStore's account is in its namespace
            account = accounts[sa["name"]]
            notes = account["metadata"]["annotations"]
            assert notes == {"eks.amazonaws.com/role-arn": env_.secrets_role_arn}
            assert account["automountServiceAccountToken"] is False
            # no pod runs as the store's account: only the store gets the role
            assert pod["serviceAccountName"] != sa["name"]
            assert sa["name"] == env_.secret_store.of(svc.name)  # what Terraform trusts
    if svc.secrets:
        # rotation: mounted as files (updated in place) and Reloader for the env values
        names = {e["metadata"]["name"] for e in by_kind(docs, "ExternalSecret")}
        mounted = {v["secret"]["secretName"] for v in pod["volumes"]}
        assert mounted == names
        assert workload[0]["metadata"]["annotations"]["secret.reloader.stakater.com/reload"]

    # the environment's shared ALB, a host per service
    exp = env_.exposure
    ingresses = {i["metadata"]["name"]: i for i in by_kind(docs, "Ingress")}
    ingress = ingresses.pop(svc.name)
    notes = ingress["metadata"]["annotations"]
    assert notes["alb.ingress.kubernetes.io/scheme"] == exp.scheme
    if not env_.approval and exp.scheme == "internet-facing":
        pytest.fail("an environment without approval is internet-facing")
    hosts = [r.get("host") for r in ingress["spec"]["rules"]]
    assert hosts == ([*dep.hosts] or [None])
    if dep.preview_host:
        # the preview: its own Ingress, internal whatever the environment's exposure,
        # so on an ALB of another IngressGroup when the environment's is internet-facing
        preview = ingresses.pop(f"{svc.name}-preview")
        pnotes = preview["metadata"]["annotations"]
        assert pnotes["alb.ingress.kubernetes.io/scheme"] == "internal"
        group = pnotes["alb.ingress.kubernetes.io/group.name"]
        assert (group == exp.group) == (exp.scheme == "internal")
        (rule,) = preview["spec"]["rules"]
        assert rule["host"] == dep.preview_host
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": f"{svc.name}-preview", "port": {"number": svc.port}}
    assert ingresses == {}
    if dep.hosts:
        assert notes["alb.ingress.kubernetes.io/group.name"] == exp.group
    listeners = alb_listeners(ingress)
    if exp.certificate_arn:
        assert notes["alb.ingress.kubernetes.io/certificate-arn"] == exp.certificate_arn
        assert listeners[443] == ("HTTPS", "explicit", ())
    if (env_.url or "").startswith("https://"):
        # the url's scheme is the ALB's (test_an_https_url_is_answered_over_https)
        assert listeners[443][0] == "HTTPS"
        assert notes["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    else:
        assert listeners == {80: ("HTTP", "none", ())}  # no TLS: an http url, or none
    assert by_kind(docs, "ServiceAccount") and by_kind(docs, "PodDisruptionBudget")


@pytest.mark.parametrize(
    ("sample", "env"), [(s, e.name) for s in SAMPLES for e in ir_of(s).environments]
)
def test_an_https_url_is_answered_over_https(sample: str, env: str) -> None:
    """An environment's url is https: its host is a rule of an Ingress of the
    environment's IngressGroup whose HTTPS listener has a certificate for it (the
    pipeline's, or one the controller discovers for the host); the group's Ingresses
    agree on every port's protocol (the controller merges them into one ALB)."""
    ir = ir_of(sample)
    environment = ir.environment(env)
    merged: dict[int, str] = {}
    https: dict[str, tuple[str, tuple[str, ...]]] = {}  # host -> its HTTPS certificates
    for svc in ir.services:
        dep = next(d for d in svc.deployments if d.environment == env)
        chart = ROOT / "samples" / sample / (ir.chart_source or "")
        values = ROOT / "samples" / sample / (svc.values_source or "") / f"values-{env}.yaml"
        (ingress,) = [
            i
            for i in by_kind(render(chart, values, dep), "Ingress")
            if i["metadata"]["name"] == svc.name  # the environment's ALB (not the preview's)
        ]
        for port, (protocol, certs, hosts) in alb_listeners(ingress).items():
            assert merged.setdefault(port, protocol) == protocol, (port, protocol)
            if protocol == "HTTPS":
                for rule in ingress["spec"]["rules"]:
                    https[rule.get("host", "*")] = (certs, hosts)
    url = environment.url
    if url is None or not url.startswith("https://"):
        assert "HTTPS" not in merged.values() or environment.exposure.certificate_arn
        return
    host = urlsplit(url).hostname
    assert host in https, f"{url}: no HTTPS listener answers {host} ({merged})"
    certs, discovered_for = https[host]
    assert certs == "explicit" or host in discovered_for


def alb_listeners(ingress: dict[str, Any]) -> dict[int, tuple[str, str, tuple[str, ...]]]:
    """port -> (protocol, where its certificates come from, the hosts they are discovered
    for), as aws-load-balancer-controller v2.17.1 pkg/ingress/model_build_listener.go
    computeIngressListenPortConfigByPort builds them from one Ingress: listen-ports
    (default HTTP 80, or HTTPS 443 with a certificate-arn); an HTTPS port takes the
    certificate-arn, else computeIngressInferredTLSCertARNs discovers ACM certificates for
    the rules' hosts and spec.tls hosts (pkg/certs/cert_discovery.go: none found is an
    error, "no certificate found for host")."""
    notes = ingress["metadata"].get("annotations", {})
    explicit = notes.get("alb.ingress.kubernetes.io/certificate-arn", "")
    raw = notes.get("alb.ingress.kubernetes.io/listen-ports")
    if raw is None:
        ports = {443: "HTTPS"} if explicit else {80: "HTTP"}
    else:
        ports = {port: proto for entry in json.loads(raw) for proto, port in entry.items()}
        assert ports and set(ports.values()) <= {"HTTP", "HTTPS"}
    hosts = tuple(r["host"] for r in ingress["spec"]["rules"] if r.get("host"))
    hosts += tuple(h for t in ingress["spec"].get("tls", []) for h in t.get("hosts", []))
    out: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    for port, proto in ports.items():
        if proto == "HTTP":
            out[port] = (proto, "none", ())
        elif explicit:
            out[port] = (proto, "explicit", ())
        else:
            assert hosts, "an HTTPS listener with no certificate and no host to discover one"
            out[port] = (proto, "discovered", hosts)
    return out


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_application_finds_its_chart_where_argo_cd_reads(
    sample: str, built: dict[str, Path], tmp_path: Path
) -> None:
    """Apply the deployer's own file operations to a scratch GitOps repository, then
    resolve every Application's path and value files there, and render from it."""
    ir = ir_of(sample)
    root = built[sample]
    remote = scratch_gitops(tmp_path)
    for svc in ir.services:
        for dep in svc.deployments:
            env = {
                **os.environ,
                "HOME": str(tmp_path),
                "GITOPS_REPOSITORY": f"file://{remote}",
                "GITOPS_REVISION": "HEAD",
                "GITOPS_DIR": dep.gitops_dir,
                "CHART_SOURCE": ir.chart_source or "",
                "VALUES_SOURCE": svc.values_source or "",
                "SERVICE": svc.name,
                "ENVIRONMENT": dep.environment,
                "IMAGE_URI": ir.image_of(svc, ir.environment(dep.environment))[1],
                "IMAGE_TAG": "src-0123",
                "IMAGE_DIGEST": DIGEST,
                "GITOPS_AUTH": ir.gitops.auth,
                ir.gitops.credential: "not a credential",
            }
            res = subprocess.run(
                ["bash", str(script_path("gitops-record.sh"))],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert res.returncode == 0, res.stderr
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(remote), str(checkout))
    apps = sorted((root / folder(sample, "argocd")).glob("*.yaml"))
    checked = 0
    for path in apps:
        app = yaml.safe_load(path.read_text())
        if app["kind"] != "Application":
            continue
        source = app["spec"]["source"]
        # its environment's own repository (storefront: one per approval environment),
        # played here by the one remote
        env_name = app["metadata"]["labels"]["pipecompile/environment"]
        assert source["repoURL"] == ir.environment(env_name).gitops_repository
        chart = checkout / source["path"]
        assert (chart / "Chart.yaml").is_file(), source["path"]
        for value_file in source["helm"]["valueFiles"]:
            assert (chart / value_file).is_file(), (source["path"], value_file)
        dep, svc = next(
            (d, s)
            for s in ir.services
            for d in s.deployments
            if d.app_name == app["metadata"]["name"]
        )
        assert chart.parent.name == svc.name
        values: dict[str, Any] = yaml.safe_load((chart / "values.yaml").read_text())
        for value_file in source["helm"]["valueFiles"]:
            layer = yaml.safe_load((chart / value_file).read_text())
            for key, value in layer.items():
                if isinstance(value, dict) and isinstance(values.get(key), dict):
                    values[key] = {**values[key], **value}
                else:
                    values[key] = value
        out = Chart.load(str(chart)).render(values, name=dep.app_name, namespace=dep.namespace)
        images = [
            c["image"]
            for text in out.values()
            for d in yaml.safe_load_all(text)
            if d and d["kind"] in ("Rollout", "Deployment")
            for c in d["spec"]["template"]["spec"]["containers"]
        ]
        assert images == [f"{ir.image_of(svc, ir.environment(dep.environment))[1]}@{DIGEST}"]
        checked += 1
    assert checked == sum(len(s.deployments) for s in ir.services)


@pytest.mark.parametrize("service", ["on", "null", "yes"])
def test_names_yaml_reads_as_other_types_stay_strings(service: str, tmp_path: Path) -> None:
    """A service named 'on' renders name: "on" (YAML 1.1 reads a bare on as true, and
    null as nothing); every object's name and label is that string."""
    text = (ROOT / "samples" / "minimal" / "pipeline.yaml").read_text()
    text = text.split("# the four GitFlow environments")[0]  # its own environments below
    text = text.replace("  web: {}\n", f"  {service}:\n    secrets: [shop/{service}/token]\n")
    text += "rollback:\n  max_error_rate: 0.05\n"
    text = text.replace(
        "services:\n",
        "environments:\n  production:\n    branches: [main]\n    strategy: canary\nservices:\n",
    )
    root = tmp_path / "p"
    root.mkdir()
    (root / "pipeline.yaml").write_text(text)
    ir = compile_bytes(str(root / "pipeline.yaml"), text.encode())
    from pipecompile.commands.cli import main

    assert main(["build", "-q", "-f", str(root / "pipeline.yaml")]) == 0
    svc = ir.services[0]
    dep = svc.deployments[0]
    docs = render(
        root / (ir.chart_source or ""),
        root / (svc.values_source or "") / f"values-{dep.environment}.yaml",
        dep,
    )
    for d in docs:
        if d["kind"] in CRDS:
            validator(CRDS[d["kind"]]).validate(d)
        else:
            kubernetes_validate.validate(d, K8S, strict=True)
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == service
    names = {d["metadata"]["name"] for d in docs}
    assert {service, f"{service}-canary"} <= names
    (rollout,) = by_kind(docs, "Rollout")
    assert rollout["spec"]["template"]["spec"]["containers"][0]["name"] == service


ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/5C1D2E3F4A5B6C7D8E9F0A1B2C3D4E5F"


def test_each_environments_store_reads_only_its_own_keys(built: dict[str, Path]) -> None:
    """The SecretStores of an environment assume its role through their own
    ServiceAccounts (IRSA); the role reads only keys under the environment's prefix, no
    prefix holds another environment's keys, and nothing else may assume it: not a store
    of another namespace, not the pods, not the External Secrets controller itself
    (the tests/iam_eval.py evaluator, on the generated Terraform)."""
    from tests.iam_eval import Account

    ir = ir_of("shared-account")
    folder = built["shared-account"] / ir.output("terraform")
    envs = ir.environments
    clusters = {env.eks_cluster for env in envs}
    tfvars = {f"eks_oidc_issuer_{c}": ISSUER for c in clusters}
    account = Account(folder, ir.aws.account_id, tfvars)
    roles = {r.name: r for r in account.roles.values()}
    prefixes = [env.secret_prefix for env in envs]
    provider = ("Federated", f"arn:aws:iam::{ir.aws.account_id}:oidc-provider/{ISSUER}")

    def token(namespace: str, name: str, aud: str = "sts.amazonaws.com") -> dict[str, str]:
        # the claims STS checks for AssumeRoleWithWebIdentity with a ServiceAccount token
        return {f"{ISSUER}:sub": f"system:serviceaccount:{namespace}:{name}", f"{ISSUER}:aud": aud}

    for env in envs:
        role = roles[env.secrets_role_name]
        allowed = [st for st in role.policy if st.effect == "Allow"]
        (statement,) = allowed
        denied = [st.actions for st in role.policy if st.effect == "Deny"]
        assert denied == [("codepipeline:PutApprovalResult",)]  # as every role (issue 28)
        assert statement.actions == (
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
        )
        (resource,) = statement.resources
        assert resource.endswith(f":secret:{env.secret_prefix}*")
        others = [p for p in prefixes if p != env.secret_prefix]
        assert not any(p.startswith(env.secret_prefix) for p in others)
        assert all(st.actions == ("sts:AssumeRoleWithWebIdentity",) for st in role.trust)
        label = role.label
        for svc in ir.services:
            dep = next(d for d in svc.deployments if d.environment == env.name)
            assert all(key.startswith(env.secret_prefix) for _, key in dep.secret_keys)
            store = env.secret_store.of(svc.name)
            assert account.may_assume(label, provider, **token(env.namespace, store))
            assert not account.may_assume(label, provider, **token(env.namespace, svc.name))
            assert not account.may_assume(label, provider, **token(env.namespace, store, "other"))
            for other in envs:
                if other.namespace != env.namespace:
                    assert not account.may_assume(label, provider, **token(other.namespace, store))
        controller = ("AWS", f"arn:aws:iam::{ir.aws.account_id}:role/external-secrets")
        assert not account.may_assume(label, controller)
        other_cluster = ("Federated", provider[1].replace(ISSUER[-6:], "000000"))
        assert not account.may_assume(
            label, other_cluster, **token(env.namespace, env.secret_store.of("api"))
        )


@pytest.mark.parametrize("sample", SAMPLES)
def test_no_secret_store_can_read_the_deployers_secrets(sample: str) -> None:
    ir = ir_of(sample)
    for env in ir.environments:
        for other in ir.environments:
            for deployer in (other.gitops_secret_name, other.argocd_secret_name):
                assert not deployer.startswith(env.secret_prefix), (env.name, deployer)


# the official SemVer 2.0.0 regular expression (semver.org, "Is there a suggested regular
# expression (RegEx) to check a SemVer string?")
SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_chart_version_follows_its_content(
    sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import shutil

    from pipecompile import __version__
    from pipecompile.targets import helm

    ir = ir_of(sample)
    chart_dir = ROOT / "samples" / sample / (ir.chart_source or "")
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    assert re.fullmatch(SEMVER, meta["version"]) and meta["version"] != "1.0.0"
    assert meta["version"].startswith(helm.CHART_RELEASE + "+")
    assert meta["appVersion"] == __version__  # the generator; each image: image-<env>.yaml
    # Helm's loader validates the version as SemVer (it refuses 'not-semver')
    Chart.load(str(chart_dir))
    bad = tmp_path / "bad"
    shutil.copytree(chart_dir, bad)
    (bad / "Chart.yaml").write_text(
        (bad / "Chart.yaml").read_text().replace(meta["version"], "not-semver")
    )
    with pytest.raises(Exception, match="version"):
        Chart.load(str(bad))
    # the same content, the same version; a changed template or default, a new one
    assert helm.chart_yaml(ir) == meta
    changed = tuple((f, t + "\n# changed\n") for f, t in helm.templates())
    monkeypatch.setattr(helm, "templates", lambda: changed)
    assert helm.chart_yaml(ir)["version"] != meta["version"]
    monkeypatch.undo()
    defaults = {**helm.default_values(), "replicaCount": 2}
    monkeypatch.setattr(helm, "default_values", lambda: defaults)
    assert helm.chart_yaml(ir)["version"] != meta["version"]
