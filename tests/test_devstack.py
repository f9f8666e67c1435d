"""`make run` (python -m devstack): it prints a curl that works, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack.__main__ import PORTS
from devstack.stack import port_is_free

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parent.parent


def _ignore_sigint() -> None:
    # What a shell does to `make run &`: the child starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setsid()


@pytest.mark.skipif(not all(map(port_is_free, PORTS.values())), reason="a local stack is already running (make run)")
def test_make_run_prints_a_working_curl_and_sigint_stops_everything(tmp_path: Path):
    out = tmp_path / "run.log"
    with out.open("wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_ignore_sigint,
        )
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything." not in out.read_text():
            assert run.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        text = out.read_text()
        url = re.search(r"curl -i -X POST '([^']+)'", text)
        body = re.search(r"-d '(\{.*\})'", text)
        assert url, text
        assert body, text
        headers = {"Content-Type": "application/json"}
        first = httpx.post(url.group(1), content=body.group(1), headers=headers, timeout=30)
        second = httpx.post(url.group(1), content=body.group(1), headers=headers, timeout=30)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.json()["id"] == first.json()["id"]
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=30) == 0
    finally:
        if run.poll() is None:  # SIGTERM lets it stop its children; SIGKILL would orphan them
            os.killpg(run.pid, signal.SIGTERM)
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not all(map(port_is_free, PORTS.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(map(port_is_free, PORTS.values())), "a process of the stack outlived Ctrl-C"
