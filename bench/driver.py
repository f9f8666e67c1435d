"""A bounded async HTTP load driver: fixed request counts, fixed concurrency, loopback only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from ._stack import percentile


@dataclass
class Run:
    latencies_ms: list[float]
    seconds: float
    errors: int

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def drive(request: Request, count: int, concurrency: int, ok: tuple[int, ...] = (200, 201)) -> Run:
    """Send `count` requests, `concurrency` at a time; request(client, i) makes the i-th."""
    latencies: list[float] = []
    errors = 0
    queue = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                started = time.perf_counter()
                response = await request(client, i)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code not in ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(latencies, time.perf_counter() - started, errors)
