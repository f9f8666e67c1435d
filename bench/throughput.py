"""Throughput of replays and of distinct new keys, per number of gateway worker processes (1, 2, 4).

    .venv/bin/python -m bench.throughput [--count 1500] [--concurrency 32]

The driver runs on the same 2-core machine, so it competes with the workers: compare rows, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import httpx

from devstack.stack import LocalStack

from ._stack import create_path, running_stack
from .driver import Run, drive

BODY = {"subject": "bench"}


async def measure(stack: LocalStack, workers: int, count: int, concurrency: int) -> tuple[Run, Run]:
    gateway = stack.add_gateway(workers=workers, env={"LOG_LEVEL": "WARNING"})
    try:
        url = gateway.url + create_path()
        keys = [{"externalId": f"hot-{i}-{uuid.uuid4()}", **BODY} for i in range(concurrency)]
        async with httpx.AsyncClient(timeout=60) as client:
            for key in keys:  # created once; every worker warms its cache during the run
                await client.post(url, json=key)
        replays = await drive(lambda c, i: c.post(url, json=keys[i % len(keys)]), count, concurrency)
        new_keys = await drive(
            lambda c, i: c.post(url, json={"externalId": f"new-{uuid.uuid4()}", **BODY}), count // 3, concurrency
        )
    finally:
        gateway.stop()
        stack.gateways.remove(gateway)
    return replays, new_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rows = []
    with running_stack() as stack:
        for workers in (1, 2, 4):
            rows.append((workers, *asyncio.run(measure(stack, workers, args.count, args.concurrency))))
    base_replay, base_new = rows[0][1].rate, rows[0][2].rate
    print(f"concurrency {args.concurrency}; {args.count} replays and {args.count // 3} new keys per row")
    columns = ("replays/s", "x 1 worker", "p99 ms", "new keys/s", "x 1 worker", "p99 ms")
    print(f"{'workers':>7} " + " ".join(f"{c:>10}" for c in columns))
    for workers, replays, new in rows:
        print(
            f"{workers:>7} {replays.rate:>10.0f} {replays.rate / base_replay:>10.2f} {replays.p99:>8.1f}"
            f" {new.rate:>11.0f} {new.rate / base_new:>10.2f} {new.p99:>8.1f}"
            + (f"  errors: {replays.errors + new.errors}" if replays.errors + new.errors else "")
        )


if __name__ == "__main__":
    main()
