"""Graph creates per key: K keys x N concurrent duplicates, through the gateway versus straight to Graph.

    .venv/bin/python -m bench.graph_calls [--keys 20] [--duplicates 10]

The Graph emulator runs in non-atomic mode with 200 ms latency, as a createOrGet raced by duplicates can.
Through the gateway the duplicates are spread over two gateway processes.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import httpx

from devstack.stack import LocalStack

from ._stack import create_path, running_stack
from .latency import graph_token


async def _burst(
    client: httpx.AsyncClient, urls: list[str], keys: int, duplicates: int, headers: dict[str, str]
) -> int:
    bodies = [{"externalId": f"burst-{uuid.uuid4()}", "subject": "bench"} for _ in range(keys)]
    sends = [
        client.post(urls[(k * duplicates + d) % len(urls)], json=bodies[k], headers=headers)
        for k in range(keys)
        for d in range(duplicates)
    ]
    answers = await asyncio.gather(*sends)
    return sum(a.status_code >= 300 for a in answers)


async def _stats(client: httpx.AsyncClient, stack: LocalStack) -> Any:
    return (await client.get(f"{stack.graph.url}/_emulator/stats")).json()


async def measure(stack: LocalStack, keys: int, duplicates: int) -> list[tuple[str, int, int, int]]:
    gateways = [stack.add_gateway(env={"LOG_LEVEL": "WARNING"}) for _ in range(2)]
    rows = []
    limits = httpx.Limits(max_connections=keys * duplicates)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for name, urls, headers in (
            ("straight to Graph", [stack.graph.url + create_path()], await graph_token(stack)),
            ("through the gateway", [g.url + create_path() for g in gateways], {}),
        ):
            await client.post(f"{stack.graph.url}/_emulator/reset")
            await client.post(f"{stack.graph.url}/_emulator/config", json={"non_atomic": True, "latency_ms": 200})
            failed = await _burst(client, urls, keys, duplicates, headers)
            creates = list((await _stats(client, stack))["creates_by_key"].values())
            rows.append((name, sum(creates), max(creates), failed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--duplicates", type=int, default=10)
    args = parser.parse_args()
    with running_stack() as stack:
        rows = asyncio.run(measure(stack, args.keys, args.duplicates))
    print(f"{args.keys} keys x {args.duplicates} concurrent duplicates, non-atomic Graph emulator")
    print(f"{'path':<22} {'creates':>8} {'per key':>8} {'max/key':>8} {'non-2xx':>8}")
    for name, creates, worst, failed in rows:
        print(f"{name:<22} {creates:>8} {creates / args.keys:>8.2f} {worst:>8} {failed:>8}")


if __name__ == "__main__":
    main()
