"""`make gateway` logs one access line per request, with secrets in the query masked and no logging errors."""

from __future__ import annotations

import re

import httpx
import pytest

from devstack.stack import LocalStack, free_port, start
from tests.stackutil import body_for, create_url

pytestmark = pytest.mark.integration
SECRET = "s3cretFunctionKey"


def test_make_gateway_writes_one_access_line_per_request(local_stack: LocalStack):
    port = free_port()
    # `-o venv`: run the gateway as `make gateway` does, without reinstalling the venv on a newer requirements file.
    command = ["make", "--no-print-directory", "-o", "venv", "gateway", f"PORT={port}", "WORKERS=1"]
    gateway = start("make-gateway", command, port, local_stack.log_dir, env=local_stack.gateway_env())
    try:
        created = httpx.post(create_url(gateway.url) + f"?code={SECRET}", json=body_for(), timeout=30)
        health = httpx.get(f"{gateway.url}/health", timeout=30)
        missing = httpx.get(f"{gateway.url}/nowhere", timeout=30)
    finally:
        gateway.stop()
    assert (created.status_code, health.status_code, missing.status_code) == (201, 200, 404)
    log = gateway.log.read_text()
    lines = re.findall(r'.*"(?:GET|POST) \S+ HTTP/1\.1" \d{3}.*', log)
    assert len(lines) == 3, log
    assert re.search(r'"POST /v1\.0/users/\S+/onlineMeetings/createOrGet\?code=\*\*\* HTTP/1\.1" 201', lines[0])
    assert '"GET /health HTTP/1.1" 200' in lines[1]
    assert '"GET /nowhere HTTP/1.1" 404' in lines[2]
    assert SECRET not in log
    assert "Logging error" not in log, log
    assert "Traceback" not in log, log
