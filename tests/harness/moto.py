"""moto in server mode, in its own process, on a port the kernel picks (no race)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# the server prints the port it bound, then serves until its stdin closes
_SERVE = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@contextmanager
def moto_server(recording: Path | None = None) -> Iterator[str]:
    """Start moto; yield its endpoint URL; stop it by its process.  ``recording``: the
    file moto's recorder appends every request to, one JSON object a line with its
    headers, method, URL and body (moto 5.2.5 moto/moto_api/_internal/recorder/models.py:
    MOTO_ENABLE_RECORDING and MOTO_RECORDER_FILEPATH, read when the server starts)."""
    env = dict(os.environ)
    if recording is not None:
        env.update(MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(recording))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def aws_env(endpoint: str, region: str) -> dict[str, str]:
    """What the real AWS CLI needs to talk to moto and nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def audit_table(
    root: Path, label: str = "deployments", tf: str = "infrastructure/terraform/cicd"
) -> dict[str, Any]:
    """create_table's arguments for the audit table (or the table ``label``: promotions)
    exactly as the generated Terraform (audit.tf in ``root``) declares it: its name, key
    schema and attributes."""
    from tests.conftest import terraform_blocks

    (body,) = [
        body
        for block in terraform_blocks(root, tf)["resource"]
        for name, body in block.get("aws_dynamodb_table", {}).items()
        if name == label
    ]
    keys = [(body["hash_key"], "HASH")] + (
        [(body["range_key"], "RANGE")] if body.get("range_key") else []
    )
    return {
        "TableName": body["name"],
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in body["attribute"]
        ],
        "KeySchema": [{"AttributeName": k, "KeyType": t} for k, t in keys],
        "BillingMode": body["billing_mode"],
    }
