"""Throughput of replays and of distinct new keys per number of gateway worker processes (1, 2, 4), with wrk.

    .venv/bin/python -m bench.throughput [--seconds 8] [--connections 32]

Needs wrk (Debian: apt-get install wrk). wrk runs on the same 2-core machine as the workers and the
emulators, so rows compare with each other, not with a dedicated load rig.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from devstack.stack import LocalStack

from ._stack import create_path, running_stack
from .latency import graph_token

_REPLAY = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"""
_NEW_KEYS = """
local counter = 0
local prefix = "{prefix}"
setup = function(thread) thread:set("id", counter); counter = counter + 1 end
init = function(args) n = 0 end
request = function()
  n = n + 1
  local body = '{{"externalId": "' .. prefix .. '-' .. wrk.thread:get("id") .. '-' .. n .. '", "subject": "bench"}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json", ["Authorization"] = "{auth}"}}, body)
end
"""


def wrk(url: str, script: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests per second, p99 latency in ms, and non-2xx answers."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    Path(lua.name).unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p99, int(errors.group(1)) if errors else 0


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure(stack: LocalStack, workers: int, seconds: int, connections: int) -> list[tuple[float, float, int]]:
    gateway = stack.add_gateway(workers=workers, env={"LOG_LEVEL": "WARNING"})
    try:
        url = gateway.url + create_path()
        body = json.dumps({"externalId": f"hot-{uuid.uuid4()}", "subject": "bench"})
        httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
        replays = wrk(url, _REPLAY.format(body=body), seconds, connections)
        new_keys = wrk(url, _NEW_KEYS.format(prefix=uuid.uuid4().hex, auth=""), seconds, connections)
    finally:
        gateway.stop()
        stack.gateways.remove(gateway)
    return [replays, new_keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with running_stack() as stack:
        rows = {w: measure(stack, w, args.seconds, args.connections) for w in (1, 2, 4)}
        token = asyncio.run(graph_token(stack))["Authorization"]
        script = _NEW_KEYS.format(prefix=uuid.uuid4().hex, auth=token)
        straight = wrk(stack.graph.url + create_path(), script, args.seconds, args.connections)
    print(f"wrk: 2 threads, {args.connections} connections, {args.seconds} s per cell")
    columns = f"{'replays/s':>10} {'x 1':>6} {'p99 ms':>8} {'new keys/s':>11} {'x 1':>6} {'p99 ms':>8} {'non-2xx':>8}"
    print(f"{'workers':>7} {columns}")
    base = rows[1]
    for workers, ((r_rate, r_p99, r_err), (n_rate, n_p99, n_err)) in rows.items():
        print(
            f"{workers:>7} {r_rate:>10.0f} {r_rate / base[0][0]:>6.2f} {r_p99:>8.1f}"
            f" {n_rate:>11.0f} {n_rate / base[1][0]:>6.2f} {n_p99:>8.1f} {r_err + n_err:>8}"
        )
    print(f"new keys straight to the Graph emulator (no gateway): {straight[0]:.0f}/s, p99 {straight[1]:.1f} ms")


if __name__ == "__main__":
    main()
