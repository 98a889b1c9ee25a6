"""Argo CD's side of per-environment trust (issue 28): each environment's AppProject lets
its Applications create only that environment's own Namespace, and every Application
refuses to take over a resource another Application applied.

The AppProject documents are checked against the published CRD schema
(tests/schemas/argocd-appproject-v1alpha1.json, Argo CD 3.5.0 CRDs), and the whitelist's
meaning against the controller's own rule, re-stated here from Argo CD v3.5.0:

- pkg/apis/application/v1alpha1/app_project_types.go, IsGroupKindNamePermitted: a
  cluster-scoped resource is permitted only if the clusterResourceWhitelist is non-empty
  and isNamedResourceInList matches it (and the blacklist does not);
- pkg/apis/application/v1alpha1/types.go, isNamedResourceInList: kind and group are
  filepath.Match globs; an entry WITHOUT a name matches every resource of that group/kind,
  otherwise the name is a filepath.Match glob too;
- controller/sync.go: a sync with "FailOnSharedResource=true" fails when the Application
  carries a SharedResourceWarning condition (another Application applied the resource).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipecompile.compiler import compile_bytes
from tests.conftest import ROOT, SAMPLES, validator

SCHEMA = "argocd-appproject-v1alpha1.json"


def _match(pattern: str, name: str) -> bool:
    """Go's filepath.Match for the names at hand (no '/' in Kubernetes kinds or names;
    fnmatch's '*', '?' and '[...]' then mean the same)."""
    return fnmatchcase(name, pattern)


def permitted(project: dict[str, Any], group: str, kind: str, name: str) -> bool:
    """IsGroupKindNamePermitted for a cluster-scoped resource (namespaced=false)."""
    spec = project["spec"]

    def in_list(items: list[dict[str, str]]) -> bool:
        for item in items:
            if not (_match(item["kind"], kind) and _match(item["group"], group)):
                continue
            if not item.get("name"):
                return True  # no name: every resource of that group/kind
            if _match(item["name"], name):
                return True
        return False

    white = spec.get("clusterResourceWhitelist") or []
    black = spec.get("clusterResourceBlacklist") or []
    return bool(white) and in_list(white) and not (black and in_list(black))


def projects(sample: str) -> tuple[Any, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    p = ROOT / "samples" / sample / "pipeline.yaml"
    ir = compile_bytes(str(p), p.read_bytes())
    folder: Path = ROOT / "samples" / sample / ir.output("argocd")
    found = {
        f.stem.removeprefix("project-"): yaml.safe_load(f.read_text())
        for f in sorted(folder.glob("project-*.yaml"))
    }
    apps = [
        yaml.safe_load(f.read_text())
        for f in sorted(folder.glob("*.yaml"))
        if not f.name.startswith(("project-", "admission-"))
    ]
    return ir, found, apps


def test_the_controller_rule_as_restated() -> None:
    """The restated rule on Argo CD's own cases (types_test.go style)."""
    unnamed = {"spec": {"clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}}
    named = {
        "spec": {"clusterResourceWhitelist": [{"group": "", "kind": "Namespace", "name": "a"}]}
    }
    assert permitted(unnamed, "", "Namespace", "kube-system")  # the hole this closes
    assert permitted(named, "", "Namespace", "a")
    assert not permitted(named, "", "Namespace", "kube-system")
    assert not permitted(named, "rbac.authorization.k8s.io", "ClusterRole", "a")
    assert not permitted({"spec": {}}, "", "Namespace", "a")  # an empty whitelist: nothing


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_project_creates_only_its_own_namespace(sample: str) -> None:
    ir, found, apps = projects(sample)
    assert sorted(found) == sorted(e.name for e in ir.environments)
    for env in ir.environments:
        project = found[env.name]
        validator(SCHEMA).validate(project)
        assert (project["apiVersion"], project["kind"]) == ("argoproj.io/v1alpha1", "AppProject")
        if "CreateNamespace=true" not in ir.gitops.options:
            assert not project["spec"].get("clusterResourceWhitelist")
            continue
        assert permitted(project, "", "Namespace", env.namespace)
        for other in ir.environments:
            if other.namespace != env.namespace:
                assert not permitted(project, "", "Namespace", other.namespace)
        for name in ("kube-system", "argocd", "default"):
            assert not permitted(project, "", "Namespace", name)
        for group, kind in (
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
            ("kyverno.io", "ClusterPolicy"),
            ("policies.kyverno.io", "ImageValidatingPolicy"),
        ):
            assert not permitted(project, group, kind, env.namespace)
    for app in apps:
        options = app["spec"]["syncPolicy"]["syncOptions"]
        assert "FailOnSharedResource=true" in options, app["metadata"]["name"]


def test_the_schema_refuses_a_broken_project() -> None:
    _, found, _ = projects("ecommerce")
    broken = yaml.safe_load(yaml.safe_dump(found["production"]))
    broken["spec"]["clusterResourceWhitelist"][0]["names"] = ["ecommerce"]
    with pytest.raises(jsonschema.ValidationError, match="names"):
        validator(SCHEMA).validate(broken)
    del broken["spec"]["clusterResourceWhitelist"][0]["names"]
    del broken["spec"]["clusterResourceWhitelist"][0]["group"]
    with pytest.raises(jsonschema.ValidationError, match="group"):
        validator(SCHEMA).validate(broken)


def test_the_pipeline_may_turn_fail_on_shared_resource_off() -> None:
    text = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
    text = text.replace(
        "options: [CreateNamespace=true, PruneLast=true]",
        "options: [CreateNamespace=true, FailOnSharedResource=false]",
    )
    ir = compile_bytes("pipeline.yaml", text.encode())
    assert ir.gitops.options == ("CreateNamespace=true", "FailOnSharedResource=false")


def namespaced_permitted(project: dict[str, Any], group: str, kind: str) -> bool:
    """IsGroupKindPermitted for a namespaced resource (Argo CD v3.5.0,
    pkg/apis/application/v1alpha1): a nil namespaceResourceWhitelist admits every kind,
    a non-empty one only the kinds it matches; the blacklist then refuses."""
    spec = project["spec"]

    def in_list(items: list[dict[str, str]]) -> bool:
        return any(_match(i["kind"], kind) and _match(i["group"], group) for i in items)

    white = spec.get("namespaceResourceWhitelist")
    black = spec.get("namespaceResourceBlacklist") or []
    listed = white is None or (len(white) != 0 and in_list(white))
    return listed and not (black and in_list(black))


def _chart_kinds() -> set[tuple[str, str]]:
    """(group, kind) of every document in the generated chart's templates, read from
    their apiVersion and kind lines."""
    out: set[tuple[str, str]] = set()
    templates = ROOT / "src/pipecompile/targets/helm/chart/templates"
    for path in sorted(templates.glob("*.yaml")):
        api = None
        for line in path.read_text().splitlines():
            if line.startswith("apiVersion: "):
                api = line.split(": ", 1)[1].strip()
            elif line.startswith("kind: ") and api is not None:
                group = api.rsplit("/", 1)[0] if "/" in api else ""
                out.add((group, line.split(": ", 1)[1].strip()))
                api = None
    return out


@pytest.mark.parametrize("sample", SAMPLES)
def test_a_rewritten_chart_cannot_add_kinds_the_chart_never_renders(sample: str) -> None:
    """Attacker trace (ecommerce, PC208): a credential that rewrites an environment's
    GitOps folder could add a RoleBinding, a Job or a Secret; its AppProject admits only
    what the generated chart renders."""
    from pipecompile.targets.argocd import CHART_KINDS

    assert set(CHART_KINDS) == _chart_kinds()
    assert namespaced_permitted({"spec": {}}, "rbac.authorization.k8s.io", "RoleBinding")
    _, found, _ = projects(sample)
    for project in found.values():
        for group, kind in CHART_KINDS:
            assert namespaced_permitted(project, group, kind)
        for group, kind in (
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("rbac.authorization.k8s.io", "Role"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("", "Secret"),
            ("", "ConfigMap"),
            ("", "Pod"),
            ("argoproj.io", "AnalysisRun"),  # the Rollouts controller creates these itself
        ):
            assert not namespaced_permitted(project, group, kind), (group, kind)
