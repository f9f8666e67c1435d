"""CPU per request of the gateway against its floors, side by side in one run against one Azurite.

    .venv/bin/python -m bench.cpu [--seconds 5] [--rounds 3] [--connections 32]

New keys: the gateway (one uvicorn worker started as `make gateway` starts it, access log on) against the
storage floor, a bare Table client doing the same two writes per key (bench/floor_tables.py) with as many
coroutines as the gateway gets connections. Warm replays: the gateway against a plain uvicorn endpoint
(bench/floor_app.py). CPU is the server process's own (utime + stime from /proc) over the measured window,
divided by the requests it served; the load generator (wrk) is not counted. Each pair (floor, then gateway)
runs in alternating windows, `--rounds` times, so both see the same share of a busy machine; rows sum the
windows. After each gateway window the floor runs again paced to the keys/s the gateway reached: an asyncio
client spends less CPU per operation the faster it goes, so this row shows how much of the ratio is the rate.
Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.stack import LocalStack, Process, free_port, start

from . import proc
from ._stack import create_path, running_stack
from .wrk import NEW_KEYS, REPLAY, wrk


@dataclass(frozen=True)
class Load:
    seconds: int
    connections: int
    rounds: int = 1


@dataclass(frozen=True)
class Row:
    name: str
    requests: int
    seconds: float
    cpu_seconds: float
    rss_mib: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / max(self.requests, 1)

    def __add__(self, other: Row) -> Row:
        return Row(
            self.name,
            self.requests + other.requests,
            self.seconds + other.seconds,
            self.cpu_seconds + other.cpu_seconds,
            max(self.rss_mib, other.rss_mib),
            self.errors + other.errors,
        )


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


def storage_floor(stack: LocalStack, args: Load, meeting: Path, sdk_defaults: bool = False, rate: float = 0.0) -> Row:
    """One window of bench/floor_tables.py in its own process, storing `meeting` as the completed body (paced
    to `rate` keys/s when given)."""
    connection = stack.gateway_env()["TABLES_CONNECTION_STRING"]
    options = [f"--seconds={args.seconds}", f"--concurrency={args.connections}", f"--meeting={meeting}"]
    options += [*["--sdk-defaults"] * sdk_defaults, f"--rate={rate}"]
    out = subprocess.run(
        [sys.executable, "-m", "bench.floor_tables", connection, *options], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    name = "floor, SDK's default transport" if sdk_defaults else "floor: Table insert + ETag replace"
    name = "floor paced to the gateway's keys/s" if rate else name
    return Row(name, result["keys"], result["seconds"], result["cpu_seconds"])


def measured(name: str, server: Process, url: str, script: str, args: Load, served: Callable[[], int] | None) -> Row:
    """One wrk window against `server`; requests counted by `served` (before and after) when given, else by wrk."""
    before_cpu, before_count = proc.cpu_seconds(server.popen.pid), served() if served else 0
    result = wrk(url, script, args.seconds, args.connections)
    time.sleep(1.0)  # requests still in flight when wrk stopped finish inside the window
    cpu = proc.cpu_seconds(server.popen.pid) - before_cpu
    requests = served() - before_count if served else result.requests
    return Row(name, requests, result.seconds, cpu, proc.rss_mib(server.popen.pid), result.errors)


def graph_creates(stack: LocalStack) -> int:
    return int(httpx.get(stack.graph.url + "/_emulator/stats", timeout=30).json()["creates"])


def measure(stack: LocalStack, args: Load, meeting: Path) -> tuple[list[Row], list[float], list[float]]:
    """The rows, and the new key's CPU ratio in each round to the floor and to the floor paced to its rate."""
    server, plain = gateway(stack), plain_endpoint(stack)
    try:
        url = server.url + create_path()
        warm_up = Load(2, args.connections)  # connections, token, first-use imports
        wrk(url, NEW_KEYS.format(prefix=f"warm-{uuid.uuid4().hex}", auth=""), warm_up.seconds, warm_up.connections)
        created = httpx.post(url, json={"externalId": f"hot-{uuid.uuid4()}", "subject": "bench"}, timeout=30)
        meeting.write_bytes(created.raise_for_status().content)  # the floor stores the same body
        floors, gateways, paced, ratios, paced_ratios = [], [], [], [], []
        for _ in range(args.rounds):
            floors.append(storage_floor(stack, args, meeting))
            script = NEW_KEYS.format(prefix=uuid.uuid4().hex, auth="")
            gateways.append(measured("gateway: new key", server, url, script, args, lambda: graph_creates(stack)))
            paced.append(storage_floor(stack, args, meeting, rate=gateways[-1].rate))
            ratios.append(gateways[-1].cpu_ms / floors[-1].cpu_ms)
            paced_ratios.append(gateways[-1].cpu_ms / paced[-1].cpu_ms)
        defaults = storage_floor(stack, args, meeting, sdk_defaults=True)
        replay = REPLAY.format(body=json.dumps({"externalId": created.json()["externalId"], "subject": "bench"}))
        wrk(plain.url + "/x", replay, warm_up.seconds, warm_up.connections)
        plains, replays = [], []
        for _ in range(args.rounds):
            plains.append(measured("plain uvicorn endpoint", plain, plain.url + "/x", replay, args, None))
            replays.append(measured("gateway: warm replay", server, url, replay, args, None))
    finally:
        plain.stop()
        server.stop()
    return [_sum(floors), defaults, _sum(paced), _sum(gateways), _sum(plains), _sum(replays)], ratios, paced_ratios


def _sum(rows: list[Row]) -> Row:
    total = rows[0]
    for row in rows[1:]:
        total += row
    return total


def report(rows: list[Row], ratios: list[float], paced_ratios: list[float], args: Load) -> None:
    print(
        f"wrk: {args.connections} connections; {args.rounds} alternating windows of {args.seconds} s per row;"
        f" CPU of the serving process only; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'row':<36} {'req/s':>8} {'CPU ms/req':>11} {'x floor':>8} {'RSS MiB':>8} {'non-2xx':>8}")
    floor, _, paced, new, plain, _ = rows
    for row in rows:
        base = plain if row.name.endswith("replay") or row is plain else floor
        rss = f"{row.rss_mib:>8.1f}" if row.rss_mib else f"{'':>8}"
        ratio = row.cpu_ms / base.cpu_ms
        print(f"{row.name:<36} {row.rate:>8.0f} {row.cpu_ms:>11.3f} {ratio:>8.2f} {rss} {row.errors:>8}")
    each = " ".join(f"{ratio:.2f}" for ratio in ratios)
    cpu, rate = new.cpu_ms / floor.cpu_ms, new.rate / floor.rate
    print(f"new key vs floor: CPU {cpu:.2f}x (rounds: {each}), throughput {rate:.2f}x")
    each = " ".join(f"{ratio:.2f}" for ratio in paced_ratios)
    print(f"new key vs floor paced to the gateway's keys/s: CPU {new.cpu_ms / paced.cpu_ms:.2f}x (rounds: {each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    load = Load(args.seconds, args.connections, args.rounds)
    with running_stack() as stack, tempfile.TemporaryDirectory() as tmp:
        rows, ratios, paced_ratios = measure(stack, load, Path(tmp) / "meeting.json")
    report(rows, ratios, paced_ratios, load)


if __name__ == "__main__":
    main()
