"""approver-github.sh, sonar-gate.sh and install-cosign.sh run as files, with the inputs
their steps pass.

Real curl, jq and sha256sum; the servers they talk to are loopback stand-ins:
GitHub's REST API (tests/harness/github_api.py: GET /repos/{owner}/{repo}/actions/runs/
{run_id}/approvals, as github/rest-api-description descriptions/api.github.com/
api.github.com.json describes it, operation actions/get-reviews-for-run), SonarQube's
api/issues/search (the same harness) and GitHub's release downloads over TLS (below)."""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml

from pipecompile.targets.common import script_path
from tests.conftest import ROOT
from tests.harness.github_api import GitHubAPI, RunRecord, github_api_server

GHA = ROOT / "samples/storefront/.github/workflows"
REF = ROOT / "samples/ecommerce/ci/codebuild"


def step_env(workflow: Path, job: str, name: str) -> dict[str, str]:
    """The env a generated step sets (its ${{ }} values stand for what the runner fills)."""
    steps = yaml.safe_load(workflow.read_text())["jobs"][job]["steps"]
    return next(s for s in steps if s["name"] == name)["env"]


# -- approver-github.sh ------------------------------------------------------------------------


def approval(env: str, login: str, state: str = "approved") -> dict[str, Any]:
    """One environment-approvals item (the REST description's schema)."""
    return {
        "environments": [{"name": env}],
        "state": state,
        "comment": "",
        "user": {"login": login},
    }


def approver(api_url: str, tmp: Path, run_id: str, environment: str, token: str) -> Any:
    out = tmp / "output"
    out.write_text("")
    res = subprocess.run(
        ["bash", str(script_path("approver-github.sh"))],
        env={
            "PATH": "/usr/bin:/bin",
            # what the step sets: GITHUB_TOKEN (github.token) and ENVIRONMENT (the input)
            "GITHUB_TOKEN": token,
            "ENVIRONMENT": environment,
            # what the runner sets
            "GITHUB_API_URL": api_url,
            "GITHUB_REPOSITORY": "example/storefront",
            "GITHUB_RUN_ID": run_id,
            "GITHUB_OUTPUT": str(out),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return res, out.read_text()


def test_the_approver_step_passes_what_the_script_reads() -> None:
    env = step_env(GHA / "deploy.yml", "deploy", "Look up who approved")
    assert env == {
        "GITHUB_TOKEN": "${{ github.token }}",
        "ENVIRONMENT": "${{ inputs.environment }}",
    }


def test_the_approver_is_the_last_person_who_approved_that_environment(tmp_path: Path) -> None:
    api = GitHubAPI()
    api.runs["42"] = RunRecord(
        started_at="2026-01-01T00:00:00Z",
        approvals=[
            approval("staging", "alice"),
            approval("production", "bob"),
            approval("staging", "carol"),  # a re-run's approval comes later in the list
        ],
    )
    api.runs["43"] = RunRecord(started_at="2026-01-01T00:00:00Z")  # no approval at all
    with github_api_server(api) as url:
        res, out = approver(url, tmp_path, "42", "staging", api.token)
        assert res.returncode == 0, res.stderr
        assert out == "approver=carol\n"
        res, out = approver(url, tmp_path, "42", "production", api.token)
        assert (res.returncode, out) == (0, "approver=bob\n")
        res, out = approver(url, tmp_path, "42", "development", api.token)
        assert (res.returncode, out) == (0, "approver=none\n")
        res, out = approver(url, tmp_path, "43", "staging", api.token)
        assert (res.returncode, out) == (0, "approver=none\n")


def test_the_approver_lookup_fails_when_the_api_refuses(tmp_path: Path) -> None:
    api = GitHubAPI()
    api.runs["42"] = RunRecord(
        started_at="2026-01-01T00:00:00Z", approvals=[approval("staging", "a")]
    )
    with github_api_server(api) as url:
        res, out = approver(url, tmp_path, "42", "staging", "ghs_wrong")  # 401 Bad credentials
        assert res.returncode == 22 and "401" in res.stderr  # curl --fail's code
        assert out == ""
        res, out = approver(url, tmp_path, "99", "staging", api.token)  # an unknown run: 404
        assert res.returncode == 22 and out == ""


# -- sonar-gate.sh ----------------------------------------------------------------------------


def sonar_gate(api_url: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script_path("sonar-gate.sh"))],
        env={
            "PATH": "/usr/bin:/bin",
            # what the CI step sets (its secrets and the service's project and severities)
            "SONAR_HOST_URL": api_url,
            "SONAR_TOKEN": token,
            "SONAR_PROJECT_KEY": "storefront_web",
            "SONAR_SEVERITIES": "BLOCKER,CRITICAL",
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_sonar_gate_step_passes_what_the_script_reads() -> None:
    steps = yaml.safe_load((GHA / "ci.yml").read_text())["jobs"]["validate"]["steps"]
    step = next(s for s in steps if s.get("name", "").startswith("Fail on SonarQube issues"))
    assert set(step["env"]) == {
        "SONAR_HOST_URL",
        "SONAR_TOKEN",
        "SONAR_PROJECT_KEY",
        "SONAR_SEVERITIES",
    }


@pytest.mark.parametrize("deprecated_total", [True, False])
def test_the_sonar_gate_counts_the_open_issues(tmp_path: Path, deprecated_total: bool) -> None:
    """A server that answers paging only (the response example since the top-level total
    was deprecated, 9.8) is read as well as one that still answers both: the top-level
    total alone was null there, and the gate exited 2 (test: integer expression expected)."""
    api = GitHubAPI(sonar_deprecated_total=deprecated_total)
    with github_api_server(api) as url:
        res = sonar_gate(url, api.sonar_token)
        assert (res.returncode, res.stderr) == (0, ""), res.stderr
        assert res.stdout == "open SonarQube issues at or above the threshold: 0\n"
        api.sonar_open_issues = 3
        res = sonar_gate(url, api.sonar_token)
        assert res.returncode == 1 and res.stdout.endswith("threshold: 3\n"), res
    # what it asks: the project's unresolved issues at those severities, one per page
    assert parse_qsl(api.sonar_queries[0]) == [
        ("componentKeys", "storefront_web"),
        ("severities", "BLOCKER,CRITICAL"),
        ("resolved", "false"),
        ("ps", "1"),
    ]


def test_the_sonar_gate_says_why_when_there_is_no_count(tmp_path: Path) -> None:
    api = GitHubAPI()
    with github_api_server(api) as url:
        res = sonar_gate(url, "wrong-token")  # 401
        assert res.returncode == 1
        assert res.stderr.startswith("SonarQube did not answer the issue search for")
        assert "401" in res.stderr
        for other in ({"paging": {"total": None}}, {"message": "maintenance"}, "a page"):
            api.sonar_answer = other  # a 200 that is not SonarQube's count
            res = sonar_gate(url, api.sonar_token)
            assert res.returncode == 1, (other, res)
            assert res.stderr.startswith(
                "SonarQube's answer for storefront_web holds no issue count (paging.total):"
            ), res.stderr
            assert res.stdout == ""


# -- install-cosign.sh -------------------------------------------------------------------------

# What GitHub answers for a release asset: github.com/<owner>/<repo>/releases/download/
# <tag>/<name> redirects (302) to the asset's storage host, which serves the bytes
# (github/docs content/repositories/releasing-projects-on-github/linking-to-releases.md,
# main); the asset is named cosign-linux-amd64 (sigstore/cosign .goreleaser.yml, v3.0.6).
FAKE_COSIGN = b"#!/bin/sh\necho 'cosign v3.0.6 (the rehearsal)'\n"


@contextmanager
def github_releases(tmp: Path, assets: dict[str, bytes]) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 for github.com (a self-signed certificate): yields
    its port and the CA file curl is told to trust."""
    cert, key = tmp / "github.pem", tmp / "github.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=github.com", "-addext", "subjectAltName=DNS:github.com",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/sigstore/cosign/releases/download/"):
                name = self.path.removeprefix("/sigstore/cosign/releases/download/")
                if name in assets:
                    self.send_response(302)
                    self.send_header("Location", f"/assets/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            elif self.path.removeprefix("/assets/") in assets:
                data = assets[self.path.removeprefix("/assets/")]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"Not Found")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def install(tmp: Path, port: int, ca: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """install-cosign.sh as root in a mount namespace of its own, /usr/local/bin a fresh
    tmpfs there (the machine's is never written); real curl reaches github.com on the
    loopback server through its config file ($CURL_HOME/.curlrc: connect-to, cacert)."""
    (tmp / ".curlrc").write_text(
        f'connect-to = "github.com:443:127.0.0.1:{port}"\ncacert = "{ca}"\n'
    )
    run = f'bash "{script_path("install-cosign.sh")}"'
    after = "test -x /usr/local/bin/cosign && /usr/local/bin/cosign"
    script = f"mount -t tmpfs tmpfs /usr/local/bin && {run} && {after}"
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CURL_HOME": str(tmp), **env},
        capture_output=True,
        text=True,
        check=False,
    )


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("openssl") is None,
    reason="root, unshare and openssl are needed (a private /usr/local/bin, a TLS server)",
)


def pinned() -> dict[str, str]:
    """What the CodeBuild buildspecs pass the install phase."""
    variables = yaml.safe_load((REF / "deploy.yml").read_text())["env"]["variables"]
    build = yaml.safe_load((REF / "build.yml").read_text())["env"]["variables"]
    keys = ("COSIGN_VERSION", "COSIGN_SHA256")
    assert {k: build[k] for k in keys} == {k: variables[k] for k in keys}
    return {k: variables[k] for k in keys}


@needs_root
def test_cosign_is_installed_when_the_download_has_the_pinned_checksum(tmp_path: Path) -> None:
    env = pinned()
    assert env["COSIGN_VERSION"] == "v3.0.6"
    assets = {f"{env['COSIGN_VERSION']}/cosign-linux-amd64": FAKE_COSIGN}
    with github_releases(tmp_path, assets) as (port, ca):
        # the fake binary's own checksum: installed, executable, it runs
        own = {**env, "COSIGN_SHA256": hashlib.sha256(FAKE_COSIGN).hexdigest()}
        ok = install(tmp_path, port, ca, **own)
        assert ok.returncode == 0, ok.stderr
        assert "/usr/local/bin/cosign: OK" in ok.stdout
        assert "cosign v3.0.6 (the rehearsal)" in ok.stdout
        # the pinned checksum is the real release's: these bytes are refused
        bad = install(tmp_path, port, ca, **env)
        assert bad.returncode == 1
        assert "/usr/local/bin/cosign: FAILED" in bad.stdout
        assert "cosign v3.0.6" not in bad.stdout  # never made executable, never run


@needs_root
def test_cosign_install_fails_on_a_release_that_does_not_exist(tmp_path: Path) -> None:
    with github_releases(tmp_path, {"v3.0.6/cosign-linux-amd64": FAKE_COSIGN}) as (port, ca):
        res = install(
            tmp_path,
            port,
            ca,
            COSIGN_VERSION="v9.9.9",
            COSIGN_SHA256=hashlib.sha256(b"").hexdigest(),
        )
    assert res.returncode == 22 and "404" in res.stderr  # curl --fail's code, nothing checked
