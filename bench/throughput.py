"""Throughput of replays and of distinct new keys per number of gateway worker processes (1, 2, 4), with wrk.

    .venv/bin/python -m bench.throughput [--seconds 8] [--connections 32]

Needs wrk (Debian: apt-get install wrk). wrk runs on the same 2-core machine as the workers and the
emulators, so rows compare with each other, not with a dedicated load rig.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import uuid

import httpx

from devstack.stack import LocalStack

from ._stack import create_path, running_stack
from .latency import graph_token
from .wrk import NEW_KEYS, REPLAY
from .wrk import wrk as run_wrk


def wrk(url: str, script: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests per second, p99 latency in ms, and non-2xx answers."""
    result = run_wrk(url, script, seconds, connections)
    return result.rate, result.p99_ms, result.errors


def measure(stack: LocalStack, workers: int, seconds: int, connections: int) -> list[tuple[float, float, int]]:
    gateway = stack.add_gateway(workers=workers, env={"LOG_LEVEL": "WARNING"})
    try:
        url = gateway.url + create_path()
        body = json.dumps({"externalId": f"hot-{uuid.uuid4()}", "subject": "bench"})
        httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
        replays = wrk(url, REPLAY.format(body=body), seconds, connections)
        new_keys = wrk(url, NEW_KEYS.format(prefix=uuid.uuid4().hex, auth=""), seconds, connections)
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
        script = NEW_KEYS.format(prefix=uuid.uuid4().hex, auth=token)
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
