"""A local HTTP server answering as Argo CD's API server does, for the health wait.

Shapes from Argo CD's published API description (assets/swagger.json, v2.x):
``GET /api/v1/applications/{name}`` returns a ``v1alpha1Application`` (``status.sync
.status``, ``status.health.status``, ``status.summary.images``, ``status.operationState``);
``GET /api/v1/applications/{name}/syncwindows`` returns an
``applicationApplicationSyncWindowsResponse`` (``activeWindows``, ``assignedWindows``,
``canSync``); ``GET /api/v1/applications/{name}/resource`` with the query ``namespace``,
``resourceName``, ``group``, ``version``, ``kind`` returns an
``applicationApplicationResourceResponse`` (``manifest``: the live object as JSON text;
server/application/application.go GetResource: a resource the application does not
manage is "not found").  A missing or wrong token is HTTP 401 with a gRPC-gateway error body
(``{"error", "code": 16, "message"}``); an application the token may not see, or that
does not exist, is 403 "permission denied" (the server never says which).  Any other
path is the web UI's index.html with 200 (server/server.go serves the UI for every
path outside /api), which is also what an SSO proxy in front answers."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HTML = "<!doctype html><html><head><title>Argo CD</title></head><body>Sign in</body></html>"


def application(
    name: str, health: str, sync: str = "Synced", images: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    """A v1alpha1Application as the API returns it (the fields the wait reads, and more)."""
    status: dict[str, Any] = {
        "sync": {"status": sync, "revision": "0" * 40},
        "health": {
            "status": health,
            **({"message": extra["message"]} if "message" in extra else {}),
        },
        "summary": {"images": list(images)},
    }
    if "phase" in extra:
        status["operationState"] = {"phase": extra["phase"], "message": extra.get("message", "")}
    spec = {"destination": {"namespace": extra.get("namespace", NAMESPACE)}}
    return {"metadata": {"name": name, "namespace": "argocd"}, "spec": spec, "status": status}


NAMESPACE = "shop-production"  # the applications' destination namespace in these tests
NEW_DIGEST = "sha256:" + "cd" * 32  # the digest the deploy waits for, in these tests


def rollout(
    name: str,
    reasons: tuple[str, ...] = (),
    pre_promotion: str | None = None,
    *,
    analysis: bool = True,
    abort: bool = False,
    namespace: str = NAMESPACE,
    digest: str = NEW_DIGEST,
    observed: bool = True,
) -> dict[str, Any]:
    """A live blue-green Rollout (argo-rollouts v1.9.0 pkg/apis/rollouts/v1alpha1/types.go):
    its pause reasons (status.pauseConditions) and the status of its pre-promotion
    analysis run (status.blueGreen.prePromotionAnalysisRunStatus), if it has one; its pod
    template runs ``digest``, and the controller has reconciled that generation when
    ``observed`` (status.observedGeneration, a string, equals metadata.generation)."""
    blue_green: dict[str, Any] = {"activeService": name, "previewService": f"{name}-preview"}
    if analysis:
        blue_green["prePromotionAnalysis"] = {"templates": [{"templateName": "t"}]}
    status: dict[str, Any] = {
        "pauseConditions": [{"reason": r, "startTime": "2030-01-01T00:00:00Z"} for r in reasons],
        "blueGreen": {"activeSelector": "5d8f", "previewSelector": "7c9b"},
        "currentPodHash": "7c9b",
        "observedGeneration": "7" if observed else "6",
    }
    if abort:  # the controller aborted it (analysis failed, or the progress deadline)
        status["abort"] = True
    if pre_promotion is not None:
        status["blueGreen"]["prePromotionAnalysisRunStatus"] = {
            "name": f"{name}-7c9b-pre",
            "status": pre_promotion,
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "generation": 7},
        "spec": {"strategy": {"blueGreen": blue_green}, "template": pod_template(digest)},
        "status": status,
    }


def pod_template(digest: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "app", "image": f"registry/app@{digest}"}]}}


def deployment(
    name: str, *, digest: str = NEW_DIGEST, observed: bool = True, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """A live Deployment (apps/v1): status.observedGeneration is an integer."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 3},
        "spec": {"template": pod_template(digest)},
        "status": {
            "observedGeneration": 3 if observed else 2,
            "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
        },
    }


def can_sync(assigned: list[dict[str, Any]], active: list[dict[str, Any]]) -> bool:
    """The response's ``canSync``: Argo CD v3.5.1 server/application/application.go
    GetApplicationSyncWindows answers ``windows.CanSync(true, nil)``, a manual sync's
    answer (pkg/apis/application/v1alpha1/types.go SyncWindows.CanSync): no windows, yes;
    an active deny, only if every active deny allows manual syncs (hasDeny); an active
    allow, yes; only inactive allows, only if all of them do (manualEnabled). So with
    ``manualSync: true`` it is true outside the window: it says nothing of automated
    syncs (which sync-window.sh reads from the windows themselves)."""
    if not assigned:
        return True
    denies = [w for w in active if w["kind"] == "deny"]
    if denies:
        return all(w.get("manualSync") for w in denies)
    if any(w["kind"] == "allow" for w in active):
        return True
    inactive = [w for w in assigned if w["kind"] == "allow" and w not in active]
    if inactive:
        return all(w.get("manualSync") for w in inactive)
    return True


@dataclass
class ArgoCD:
    """Answers per application: a list of replies, one per GET (the last repeats)."""

    token: str = "argocd-token"
    html: bool = False  # answer every path with HTML (a wrong URL, an SSO page)
    apps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # app -> the sync windows of its AppProject that apply to it (kind, schedule, duration,
    # manualSync), and whether now is inside their schedules (default True: they are active)
    sync_windows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    windows: dict[str, bool] = field(default_factory=dict)
    # app -> the live workload it manages, a list of replies (the last repeats; a reply
    # is used up when it is read, not when another kind is asked for)
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    # called with each request's path before it is answered (the rehearsal's cancel point:
    # a run cancelled while a step waits for Argo CD's answer)
    on_request: Callable[[str], None] | None = None

    def reply(self, path: str, auth: str | None) -> tuple[int, str, str]:
        self.requests.append(path)
        if self.on_request is not None:
            self.on_request(path)
        if self.html or not path.startswith("/api/"):
            return 200, "text/html", HTML
        if auth != f"Bearer {self.token}":
            msg = "no session information" if auth is None else "invalid session: token is invalid"
            return 401, "application/json", json.dumps({"error": msg, "code": 16, "message": msg})
        parts = path.split("?", 1)[0].split("/")  # ['', 'api', 'v1', 'applications', name, ...]
        name = parts[4] if len(parts) > 4 else ""
        if len(parts) < 5 or parts[3] != "applications" or name not in self.apps:
            msg = f"permission denied: applications, get, {name}"
            return 403, "application/json", json.dumps({"error": msg, "code": 7, "message": msg})
        if len(parts) == 6 and parts[5] == "syncwindows":
            assigned = self.sync_windows.get(name, [])
            active = assigned if self.windows.get(name, True) else []
            body = {
                "assignedWindows": assigned,
                "activeWindows": active,
                "canSync": can_sync(assigned, active),
            }
            return 200, "application/json", json.dumps(body)
        if len(parts) == 6 and parts[5] == "resource":
            return self.resource(name, path)
        replies = self.apps[name]
        body = replies.pop(0) if len(replies) > 1 else replies[0]
        return 200, "application/json", json.dumps(body)

    def resource(self, app: str, path: str) -> tuple[int, str, str]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        want = {k: v[0] for k, v in query.items()}
        replies = self.resources.get(app, [])
        live = replies[0] if replies else None
        group, version = (live or {}).get("apiVersion", "/").split("/")
        if live is None or want != {
            "namespace": live["metadata"]["namespace"],
            "resourceName": live["metadata"]["name"],
            "group": group,
            "version": version,
            "kind": live["kind"],
        }:
            msg = f"{want.get('kind')} {want.get('resourceName')} not found as part of {app}"
            return 404, "application/json", json.dumps({"error": msg, "code": 5, "message": msg})
        if len(replies) > 1:  # the next reply once this object was read
            replies.pop(0)
        return 200, "application/json", json.dumps({"manifest": json.dumps(live)})


@contextmanager
def argocd_server(state: ArgoCD) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (a port the kernel picks); yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, kind, body = state.reply(self.path, self.headers.get("Authorization"))
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
