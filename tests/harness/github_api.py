"""GitHub's REST API and SonarQube's web API on loopback, for the whole-flow rehearsal.

GitHub (REST API description, api.github.com.json; docs "Workflow runs" and "Workflow
jobs"): ``GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals`` lists
``environment-approvals`` ({environments: [{name}], state, user: {login}});
``GET .../runs/{run_id}/attempts/{n}`` a ``workflow-run`` (``run_started_at``);
``GET .../runs/{run_id}/attempts/{n}/jobs`` {total_count, jobs: [``job``: name, status,
conclusion, started_at, completed_at]}, a called workflow's jobs named
``<caller job> / <called job>`` (docs, "Reusing workflows").  A wrong token is 401
``Bad credentials``; an unknown run 404.

SonarQube (web API, api/issues/search, 10.x): HTTP basic auth with the token as the
user name and an empty password; answers {total, p, ps, paging, issues}.  The top-level
total, p and ps are deprecated since 9.8 (SonarSource/sonarqube server/sonar-webserver-
webapi/src/main/java/org/sonar/server/issue/ws/SearchAction.java, its changelog at the
10.4 line: "response fields 'total', 's', 'ps' have been deprecated, please use 'paging'
object instead"), and the response example beside it (search-example.json) holds only
paging {pageIndex, pageSize, total}: ``sonar_deprecated_total=False`` answers that way.
``sonar_answer`` stands for something else on the server's address (a proxy's page)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RunRecord:
    started_at: str
    approvals: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # attempt -> jobs


@dataclass
class GitHubAPI:
    token: str = "ghs_rehearsal"
    sonar_token: str = "sonar-token"
    sonar_open_issues: int = 0
    sonar_deprecated_total: bool = True  # False: paging only, as the response example
    sonar_answer: Any = None  # answered as is (200) instead of SonarQube's answer
    sonar_queries: list[str] = field(default_factory=list)  # each search's query string
    runs: dict[str, RunRecord] = field(default_factory=dict)

    def reply(self, path: str, auth: str | None) -> tuple[int, Any]:
        route = path.split("?", 1)[0]
        if route == "/api/issues/search":
            want = "Basic " + base64.b64encode(f"{self.sonar_token}:".encode()).decode()
            if auth != want:
                return 401, {"errors": [{"msg": "Unauthorized"}]}
            self.sonar_queries.append(path.partition("?")[2])
            if self.sonar_answer is not None:
                return 200, self.sonar_answer
            n = self.sonar_open_issues
            answer: dict[str, Any] = {"paging": {"pageIndex": 1, "pageSize": 1, "total": n}}
            if self.sonar_deprecated_total:
                answer = {"total": n, "p": 1, "ps": 1, **answer}
            return 200, {**answer, "issues": []}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        parts = route.strip("/").split("/")  # repos owner repo actions runs id ...
        if len(parts) < 6 or parts[:1] != ["repos"] or parts[3:5] != ["actions", "runs"]:
            return 404, {"message": "Not Found"}
        run = self.runs.get(parts[5])
        if run is None:
            return 404, {"message": "Not Found"}
        rest = parts[6:]
        if rest == ["approvals"]:
            return 200, run.approvals
        if len(rest) >= 2 and rest[0] == "attempts" and int(rest[1]) in run.jobs:
            jobs = run.jobs[int(rest[1])]
            if rest[2:] == ["jobs"]:
                return 200, {"total_count": len(jobs), "jobs": jobs}
            if not rest[2:]:
                return 200, {"id": int(parts[5]), "run_started_at": run.started_at}
        return 404, {"message": "Not Found"}


@contextmanager
def github_api_server(state: GitHubAPI) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (a port the kernel picks); yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = state.reply(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
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
