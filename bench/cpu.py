"""CPU per request of the gateway against its floors, side by side in one run against one Azurite.

    .venv/bin/python -m bench.cpu [--seconds 10] [--connections 32]

New keys: the gateway (one uvicorn worker started as `make gateway` starts it, access log on) against the
storage floor, a bare Table client doing the same two writes per key (bench/floor_tables.py) with as many
coroutines as the gateway gets connections. Warm replays: the gateway against a plain uvicorn endpoint
(bench/floor_app.py). CPU is the server process's own (utime + stime from /proc) over the measured window,
divided by the requests it served; the load generator (wrk) is not counted. Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from devstack.stack import LocalStack, Process, free_port, start

from . import proc
from ._stack import create_path, running_stack
from .wrk import NEW_KEYS, REPLAY, wrk


@dataclass(frozen=True)
class Load:
    seconds: int
    connections: int


@dataclass(frozen=True)
class Row:
    name: str
    requests: int
    seconds: float
    cpu_seconds: float
    rss_mib: float
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / max(self.requests, 1)


def gateway(stack: LocalStack) -> Process:
    """One worker, as `make gateway WORKERS=1` runs it: uvicorn's defaults, access log included."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "meetings_core.http.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    return start("bench-gateway", args, port, stack.log_dir, env=stack.gateway_env())


def plain_endpoint(stack: LocalStack) -> Process:
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--host", "127.0.0.1", "--port", str(port)]
    return start("bench-plain", args, port, stack.log_dir)


def storage_floor(stack: LocalStack, args: Load, sdk_defaults: bool = False) -> Row:
    connection = stack.gateway_env()["TABLES_CONNECTION_STRING"]
    options = [f"--seconds={args.seconds}", f"--concurrency={args.connections}"] + ["--sdk-defaults"] * sdk_defaults
    command = [sys.executable, "-m", "bench.floor_tables", connection, *options]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    name = "floor, SDK's default transport" if sdk_defaults else "floor: Table insert + ETag replace"
    return Row(name, result["keys"], result["seconds"], result["cpu_seconds"], 0.0)


def measured(name: str, server: Process, url: str, script: str, args: Load, served: Callable[[], int] | None) -> Row:
    """wrk against `server`; requests counted by `served` (read before and after) when given, else by wrk."""
    before_cpu, before_count = proc.cpu_seconds(server.popen.pid), served() if served else 0
    result = wrk(url, script, args.seconds, args.connections)
    time.sleep(1.0)  # requests still in flight when wrk stopped finish inside the window
    cpu = proc.cpu_seconds(server.popen.pid) - before_cpu
    requests = served() - before_count if served else result.requests
    return Row(name, requests, result.seconds, cpu, proc.rss_mib(server.popen.pid), result.errors)


def graph_creates(stack: LocalStack) -> int:
    return int(httpx.get(stack.graph.url + "/_emulator/stats", timeout=30).json()["creates"])


def measure(stack: LocalStack, args: Load) -> list[Row]:
    rows = [storage_floor(stack, args), storage_floor(stack, args, sdk_defaults=True)]
    server, plain = gateway(stack), plain_endpoint(stack)
    try:
        url = server.url + create_path()
        warm_up = Load(2, args.connections)  # connections, token, first-use imports
        wrk(url, NEW_KEYS.format(prefix=f"warm-{uuid.uuid4().hex}", auth=""), warm_up.seconds, warm_up.connections)
        new_keys = NEW_KEYS.format(prefix=uuid.uuid4().hex, auth="")
        rows.append(measured("gateway: new key", server, url, new_keys, args, lambda: graph_creates(stack)))
        body = json.dumps({"externalId": f"hot-{uuid.uuid4()}", "subject": "bench"})
        httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30).raise_for_status()
        replay = REPLAY.format(body=body)
        for name, process, target in (
            ("plain uvicorn endpoint", plain, plain.url + "/x"),
            ("gateway: warm replay", server, url),
        ):
            wrk(target, replay, warm_up.seconds, warm_up.connections)
            rows.append(measured(name, process, target, replay, args, None))
    finally:
        plain.stop()
        server.stop()
    return rows


def report(rows: list[Row], args: Load) -> None:
    print(f"wrk: {args.connections} connections, {args.seconds} s per row; CPU of the serving process only")
    print(f"{'row':<36} {'req/s':>8} {'CPU ms/req':>11} {'x floor':>8} {'RSS MiB':>8} {'non-2xx':>8}")
    floors = {"gateway: new key": rows[0], "gateway: warm replay": rows[3], rows[1].name: rows[0]}
    for row in rows:
        floor = floors.get(row.name, row)
        print(
            f"{row.name:<36} {row.rate:>8.0f} {row.cpu_ms:>11.3f} {row.cpu_ms / floor.cpu_ms:>8.2f}"
            f" {row.rss_mib or float('nan'):>8.1f} {row.errors:>8}"
        )
    new, floor = rows[2], rows[0]
    print(f"new key vs floor: CPU {new.cpu_ms / floor.cpu_ms:.2f}x, throughput {new.rate / floor.rate:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    load = Load(args.seconds, args.connections)
    with running_stack() as stack:
        rows = measure(stack, load)
    report(rows, load)


if __name__ == "__main__":
    main()
