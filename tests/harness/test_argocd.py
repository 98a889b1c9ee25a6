"""The Argo CD stub's sync windows: the generated AppProject's, and ``canSync`` as Argo CD
v3.5.1 answers it (a manual sync's answer: tests/harness/argocd.py can_sync)."""

from __future__ import annotations

import json

from tests.conftest import ROOT

from .argocd import ArgoCD, application, can_sync
from .cluster import targets

ALLOW = {"kind": "allow", "schedule": "0 8 * * 1-5", "duration": "10h"}
DENY = {"kind": "deny", "schedule": "0 0 * * 0", "duration": "24h"}


def test_can_sync_is_a_manual_syncs_answer() -> None:
    manual = {**ALLOW, "manualSync": True}
    assert can_sync([], [])
    assert can_sync([ALLOW], [ALLOW])
    assert not can_sync([ALLOW], [])
    assert can_sync([manual], [])  # closed, but a manual sync may run: true
    assert not can_sync([DENY], [DENY])
    assert can_sync([{**DENY, "manualSync": True}], [{**DENY, "manualSync": True}])
    assert not can_sync([DENY, {**DENY, "manualSync": True}], [DENY, {**DENY, "manualSync": True}])
    assert can_sync([DENY], [])


def test_the_windows_are_the_generated_app_projects() -> None:
    sample = ROOT / "samples/storefront"
    remotes: dict[str, object] = {}

    class Any(dict):  # every repoURL names some remote
        def __missing__(self, key: str) -> str:
            return key

    apps = targets(sample / "deploy/argocd", sample / "deploy/apps", Any(remotes))
    windows = {name: t.sync_windows for name, t in apps.items()}
    assert windows["web-production"] == [{**ALLOW, "manualSync": True}]
    assert windows["web-staging"] == []
    argocd = ArgoCD(
        token="t",
        apps={"web-production": [application("web-production", "Healthy")]},
        sync_windows={"web-production": windows["web-production"]},
        windows={"web-production": False},
    )
    code, _, body = argocd.reply("/api/v1/applications/web-production/syncwindows", "Bearer t")
    assert code == 200
    assert json.loads(body) == {
        "assignedWindows": [{**ALLOW, "manualSync": True}],
        "activeWindows": [],
        "canSync": True,
    }
