"""Gateway overhead, side by side in one run: p50/p99 and ratios to the straight call or the floor.

    .venv/bin/python -m bench.latency [--count 300]

New key: through the gateway versus straight to the Graph emulator. Replay: warm (in-process cache) and
cold (record in Table Storage) versus one Azurite point read and a plain uvicorn endpoint (the floor).
Requests are sequential (concurrency 1): this measures latency, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import httpx
from azure.data.tables.aio import TableClient

from devstack.stack import LocalStack, free_port, graph_bearer, start

from ._stack import create_path, running_stack
from .driver import Run, drive

BODY = {"subject": "bench", "startDateTime": "2026-03-01T09:00:00Z", "endDateTime": "2026-03-01T09:30:00Z"}


async def measure(stack: LocalStack, count: int) -> dict[str, Run]:
    cached = stack.add_gateway(env={"LOG_LEVEL": "WARNING"})
    uncached = stack.add_gateway(env={"LOG_LEVEL": "WARNING", "REPLAY_CACHE_SIZE": "0"})
    floor = start(
        "floor",
        [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port := free_port()), "--no-access-log"],
        port,
        stack.log_dir,
    )
    try:
        token = await graph_token(stack)
        key = {"externalId": f"bench-replay-{uuid.uuid4()}", **BODY}
        async with httpx.AsyncClient() as client:
            for gateway in (cached, uncached):  # create the replayed key; warm connections and tokens
                await client.post(gateway.url + create_path(), json=key)
        graph_url = stack.graph.url + create_path()
        runs = {
            "new key, straight to Graph emulator": await drive(
                lambda c, i: c.post(graph_url, json=_new(), headers=token), count, 1
            ),
            "new key, through the gateway": await drive(
                lambda c, i: c.post(cached.url + create_path(), json=_new()), count, 1
            ),
            "plain uvicorn endpoint (floor)": await drive(lambda c, i: c.post(floor.url + "/x", json=key), count, 1),
            "replay, warm (in-process cache)": await drive(
                lambda c, i: c.post(cached.url + create_path(), json=key), count, 1
            ),
            "replay, cold (Table Storage)": await drive(
                lambda c, i: c.post(uncached.url + create_path(), json=key), count, 1
            ),
            "one Azurite point read": await _point_reads(stack, count),
        }
    finally:
        floor.stop()
    return runs


def _new() -> dict[str, str]:
    return {"externalId": f"bench-{uuid.uuid4()}", **BODY}


async def graph_token(stack: LocalStack) -> dict[str, str]:
    return await graph_bearer(stack.identity.url, stack.identity_header)


async def _point_reads(stack: LocalStack, count: int) -> Run:
    import time

    connection = stack.gateway_env()["TABLES_CONNECTION_STRING"]
    async with TableClient.from_connection_string(connection, "meetingreservations") as table:
        entity = await anext(aiter(table.list_entities(results_per_page=1)))
        latencies = []
        started = time.perf_counter()
        for _ in range(count):
            t = time.perf_counter()
            await table.get_entity(entity["PartitionKey"], entity["RowKey"])
            latencies.append((time.perf_counter() - t) * 1000)
    return Run(latencies, time.perf_counter() - started, 0)


def report(runs: dict[str, Run]) -> None:
    straight = runs["new key, straight to Graph emulator"]
    floor = runs["plain uvicorn endpoint (floor)"]
    print(f"{'path':<38} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>18} {'errors':>7}")
    for name, run in runs.items():
        base, label = (straight, "x straight") if name.startswith("new key") else (floor, "x floor")
        print(f"{name:<38} {run.p50:>8.2f} {run.p99:>8.2f} {run.p50 / base.p50:>9.2f} {label:<8} {run.errors:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with running_stack() as stack:
        runs = asyncio.run(measure(stack, args.count))
    report(runs)


if __name__ == "__main__":
    main()
