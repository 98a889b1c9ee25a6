"""Argo CD in front of a cluster that follows GitOps, for the whole-flow rehearsal.

Each generated Application (``kind: Application`` in the sample's Argo CD output) names
its GitOps repository, folder and destination namespace.  Asked about an application,
this Argo CD reads ``image-<env>.yaml`` at the head of that folder in the bare remote
(what auto-sync would apply: syncPolicy.automated) and answers as
:class:`tests.harness.argocd.ArgoCD` does for a workload running that digest: Synced and
Healthy, or, for an application in ``aborted``, the new version's Rollout aborted by the
controller (Degraded; argo-rollouts v1.9.0 status.abort).  A Rollout for a canary or
blue-green environment (the chart's ``rollout.type``), else a Deployment.  Each
application's sync windows are its AppProject's (the generated ``syncWindows``);
``closed`` names applications for which now is outside them."""

from __future__ import annotations

import fnmatch
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .argocd import ArgoCD, application, deployment, rollout


@dataclass
class Target:
    remote: Path
    folder: str
    environment: str
    namespace: str
    service: str
    rollout: bool
    # the AppProject's syncWindows that apply to the application (applications: globs)
    sync_windows: list[dict[str, Any]] = field(default_factory=list)


def head_file(remote: Path, path: str) -> str | None:
    res = subprocess.run(
        ["git", "-c", "safe.directory=*", "show", f"HEAD:{path}"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=False,
    )
    return res.stdout if res.returncode == 0 else None


def targets(argocd_dir: Path, helm_dir: Path, remotes: dict[str, Path]) -> dict[str, Target]:
    """The Applications of a sample, by name, with the bare remote their repoURL names."""
    out: dict[str, Target] = {}
    docs = [
        doc
        for path in sorted(argocd_dir.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    projects = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "AppProject"}
    for doc in docs:
        if doc.get("kind") != "Application":
            continue
        labels = doc["metadata"]["labels"]
        svc, env = labels["pipecompile/service"], labels["pipecompile/environment"]
        values = yaml.safe_load((helm_dir / svc / f"values-{env}.yaml").read_text())
        out[doc["metadata"]["name"]] = Target(
            remote=remotes[doc["spec"]["source"]["repoURL"]],
            folder=doc["spec"]["source"]["path"],
            environment=env,
            namespace=doc["spec"]["destination"]["namespace"],
            service=svc,
            rollout=values["rollout"]["type"] != "rolling",
            sync_windows=_windows(projects.get(doc["spec"].get("project", "")), doc),
        )
    return out


def _windows(project: dict[str, Any] | None, app: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's syncWindows whose ``applications`` globs match the application
    (Argo CD SyncWindows.Matches; namespaces and clusters are not generated)."""
    name = app["metadata"]["name"]
    out = []
    for w in ((project or {}).get("spec") or {}).get("syncWindows") or []:
        if any(fnmatch.fnmatchcase(name, g) for g in w.get("applications") or []):
            keys = ("kind", "schedule", "duration", "manualSync")
            out.append({k: w[k] for k in keys if k in w})
    return out


@dataclass
class GitOpsArgoCD(ArgoCD):
    """:class:`ArgoCD` whose applications run what their GitOps folder records."""

    apps_of: dict[str, Target] = field(default_factory=dict)
    aborted: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)

    def reply(self, path: str, auth: str | None) -> tuple[int, str, str]:
        for name, t in self.apps_of.items():
            self.sync_windows[name] = t.sync_windows
            self.windows[name] = name not in self.closed
            text = head_file(t.remote, f"{t.folder}/image-{t.environment}.yaml")
            image: dict[str, Any] = (yaml.safe_load(text) or {}).get("image", {}) if text else {}
            digest = image.get("digest")
            if not digest:  # nothing deployed yet: Argo CD shows the app Missing
                self.apps[name] = [application(name, "Missing", "OutOfSync", namespace=t.namespace)]
                self.resources[name] = []
                continue
            running = (f"{image['repository']}@{digest}",)
            if name in self.aborted:
                self.apps[name] = [
                    application(name, "Degraded", images=running, namespace=t.namespace)
                ]
            else:
                self.apps[name] = [
                    application(name, "Healthy", images=running, namespace=t.namespace)
                ]
            live = (
                rollout(
                    t.service,
                    analysis=False,
                    abort=name in self.aborted,
                    namespace=t.namespace,
                    digest=digest,
                )
                if t.rollout
                else deployment(t.service, digest=digest, namespace=t.namespace)
            )
            self.resources[name] = [live]
        return super().reply(path, auth)
