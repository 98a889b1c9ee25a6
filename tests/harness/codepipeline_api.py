"""CodePipeline's ListActionExecutions on loopback, beside moto (which does not serve it).

The AWS CLI reaches it through ``AWS_ENDPOINT_URL_CODEPIPELINE`` (the service-specific
endpoint variable, botocore >= 1.31), so every other service still talks to moto; any
other CodePipeline operation is passed on to moto unchanged.

Shape (AWS CodePipeline API Reference, API_ListActionExecutions and
API_ActionExecutionDetail): a JSON 1.1 POST with ``X-Amz-Target:
CodePipeline_20150709.ListActionExecutions`` and {pipelineName, filter:
{pipelineExecutionId}}; the answer {actionExecutionDetails: [{pipelineExecutionId,
actionExecutionId, pipelineVersion, stageName, actionName, startTime, lastUpdateTime,
updatedBy (the ARN of the user who changed the execution: the approver), status
(InProgress | Abandoned | Succeeded | Failed), input, output}]}, newest first; an unknown
pipeline is 400 ``PipelineNotFoundException``."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET = "CodePipeline_20150709.ListActionExecutions"


@dataclass
class CodePipelineAPI:
    pipelines: set[str] = field(default_factory=set)
    details: list[dict[str, Any]] = field(default_factory=list)  # newest first
    clock: int = 1_700_000_000  # epoch seconds, advanced once per record: deterministic
    # the ListActionExecutions requests answered here, in moto's recorder's shape (the
    # rest reach moto, which records them): tests/rehearsal/iam_calls.py reads both
    requests: list[dict[str, Any]] = field(default_factory=list)

    def approve(self, pipeline: str, execution: str, approver: str, stage: str) -> None:
        """Record an approval of ``stage`` in ``execution`` by ``approver``."""
        self.pipelines.add(pipeline)
        self.clock += 60
        self.details.insert(
            0,
            {
                "pipelineExecutionId": execution,
                "actionExecutionId": str(uuid.uuid4()),
                "pipelineVersion": 1,
                "stageName": stage,
                "actionName": stage,
                "startTime": self.clock - 30,
                "lastUpdateTime": self.clock,
                "updatedBy": approver,
                "status": "Succeeded",
                "input": {
                    "actionTypeId": {
                        "category": "Approval",
                        "owner": "AWS",
                        "provider": "Manual",
                        "version": "1",
                    },
                    "configuration": {},
                    "resolvedConfiguration": {},
                    "inputArtifacts": [],
                },
                "output": {"executionResult": {"externalExecutionSummary": "approved"}},
            },
        )

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("pipelineName", "")
        if name not in self.pipelines:
            return 400, {
                "__type": "PipelineNotFoundException",
                "message": f"Pipeline {name} not found",
            }
        wanted = body.get("filter", {}).get("pipelineExecutionId")
        found = [d for d in self.details if wanted is None or d["pipelineExecutionId"] == wanted]
        return 200, {"actionExecutionDetails": found}


@contextmanager
def codepipeline_api_server(state: CodePipelineAPI, moto: str) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 (a port the kernel picks), passing every other
    operation on to moto at ``moto``; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("X-Amz-Target") == TARGET:
                state.requests.append(
                    {
                        "headers": dict(self.headers.items()),
                        "method": "POST",
                        "url": self.path,
                        "body": raw.decode(),
                        "body_encoded": False,
                    }
                )
                code, body = state.reply(json.loads(raw or b"{}"))
                self._send(code, json.dumps(body).encode(), "application/x-amz-json-1.1")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            req = urllib.request.Request(moto + self.path, raw, headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=30) as res:
                    self._send(res.status, res.read(), res.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as err:
                self._send(err.code, err.read(), err.headers.get("Content-Type", ""))

        def _send(self, code: int, data: bytes, kind: str) -> None:
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
