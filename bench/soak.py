"""Soak under faults: mixed traffic for a bounded time while Graph, Azurite and a gateway worker misbehave.

    .venv/bin/python -m bench.soak [--seconds 120] [--concurrency 12]

Traffic: new keys, concurrent duplicates, replays, changed payloads, against a non-atomic Graph (which would
duplicate any race that reached it). Faults, in turn: Graph 429 and 503 storms, dropped connections, a slow
Graph that answers after the gateway's deadline (and still creates), Azurite frozen (it accepts connections
and never answers; inserts acknowledged on thaw make late owners), Azurite restarted, a gateway process
killed and restarted. Then every key is
requested once more, and the run checks: each key has exactly one meeting at Graph, every 2xx carried that
meeting, no reservation is left in progress, and no 5xx other than 503/504 with Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.data.tables.aio import TableClient

from devstack.stack import LocalStack, Process, start_azurite

from ._stack import ORGANIZER, create_path, running_stack

GATEWAY_ENV = {
    "LOG_LEVEL": "WARNING",
    "GRAPH_DEADLINE_SECONDS": "4",
    "GRAPH_GRACE_SECONDS": "3",
    "RESERVATION_LEASE_SECONDS": "8",
    "DUPLICATE_WAIT_SECONDS": "3",
    "STORE_TIMEOUT_SECONDS": "3",
}


@dataclass
class Tally:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    connection_errors: int = 0
    undocumented_5xx: int = 0
    answered: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, body: dict[str, Any], response: httpx.Response | None) -> None:
        if response is None:
            self.connection_errors += 1
            return
        self.statuses[response.status_code] += 1
        if response.status_code >= 500 and not (
            response.status_code in (503, 504) and "retry-after" in response.headers
        ):
            self.undocumented_5xx += 1
        if response.status_code in (200, 201):
            self.answered[body["externalId"]].add(response.json()["id"])


class Soak:
    def __init__(self, stack: LocalStack, gateways: list[Process], concurrency: int) -> None:
        self.stack = stack
        self.gateways = gateways
        self.concurrency = concurrency
        self.tally = Tally()
        self.completed: list[str] = []
        self.client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency * 4))

    async def send(self, body: dict[str, Any]) -> httpx.Response | None:
        url = random.choice(self.gateways).url + create_path()
        try:
            response = await self.client.post(url, json=body)
        except httpx.TransportError:
            response = None
        self.tally.record(body, response)
        if response is not None and response.status_code in (200, 201):
            self.completed.append(body["externalId"])
        return response

    async def traffic(self, until: float) -> None:
        while time.monotonic() < until:
            roll = random.random()
            if roll < 0.4 or not self.completed:
                body = {"externalId": f"soak-{uuid.uuid4()}", "subject": "soak"}
                self.tally.bodies[body["externalId"]] = body
                await self.send(body)
            elif roll < 0.6:
                body = {"externalId": f"soak-{uuid.uuid4()}", "subject": "soak"}
                self.tally.bodies[body["externalId"]] = body
                await asyncio.gather(*(self.send(body) for _ in range(3)))
            elif roll < 0.9:
                await self.send(self.tally.bodies[random.choice(self.completed)])
            else:
                original = self.tally.bodies[random.choice(self.completed)]
                await self.send({**original, "subject": "changed"})  # 422 expected

    async def faults(self, until: float) -> collections.Counter[str]:
        injected: collections.Counter[str] = collections.Counter()
        kinds = [
            "429 storm",
            "slow Graph",
            "503 storm",
            "frozen Azurite",
            "dropped connections",
            "Azurite restart",
            "gateway killed",
        ]
        index = 0
        while time.monotonic() + 8 < until:
            await asyncio.sleep(6)
            kind = kinds[index % len(kinds)]
            index += 1
            injected[kind] += 1
            print(f"  fault: {kind}", flush=True)
            await self.inject(kind)
        return injected

    async def inject(self, kind: str) -> None:
        graph = f"{self.stack.graph.url}/_emulator/config"
        if kind == "429 storm":
            await self.client.post(graph, json={"faults": [{"status": 429, "retry_after": "0.5", "count": 30}]})
        elif kind == "503 storm":
            await self.client.post(graph, json={"faults": [{"status": 503, "retry_after": None, "count": 30}]})
        elif kind == "dropped connections":
            await self.client.post(graph, json={"drop_connections": 10})
        elif kind == "slow Graph":
            # Slower than GRAPH_DEADLINE_SECONDS, faster than deadline + grace: unknown outcomes that did create.
            await self.client.post(graph, json={"latency_ms": 5000, "slow_calls": 10})
        elif kind == "frozen Azurite":
            with self.stack.azurite.frozen():
                await asyncio.sleep(4.5)
        elif kind == "Azurite restart":
            port, data = self.stack.azurite.port, self.stack.log_dir.parent / "azurite"
            self.stack.azurite.stop()
            await asyncio.sleep(1)
            self.stack.azurite = await asyncio.to_thread(start_azurite, port, data, self.stack.log_dir)
        else:
            victim = self.gateways[1]
            os.killpg(victim.popen.pid, signal.SIGKILL)
            victim.popen.wait()
            await asyncio.sleep(0.5)
            self.stack.gateways.remove(victim)
            self.gateways[1] = await asyncio.to_thread(self.stack.add_gateway, victim.port, 1, GATEWAY_ENV)

    async def settle(self) -> int:
        """After the faults: wait out the leases, then ask for every key once more (takeover recovers)."""
        await self.client.post(
            f"{self.stack.graph.url}/_emulator/config", json={"faults": [], "drop_connections": 0, "slow_calls": 0}
        )
        await asyncio.sleep(float(GATEWAY_ENV["RESERVATION_LEASE_SECONDS"]) + 1)
        gate = asyncio.Semaphore(self.concurrency)

        async def settle_one(body: dict[str, Any]) -> bool:
            async with gate:
                for _ in range(5):
                    response = await self.send(body)
                    if response is not None and response.status_code in (200, 201):
                        return True
                    await asyncio.sleep(1)
            return False

        answered = await asyncio.gather(*(settle_one(b) for b in self.tally.bodies.values()))
        return answered.count(False)


async def in_progress_records(stack: LocalStack) -> int:
    connection = stack.gateway_env()["TABLES_CONNECTION_STRING"]
    async with TableClient.from_connection_string(connection, "meetingreservations") as table:
        return len([e async for e in table.query_entities("State eq 'in_progress'")])


async def run(seconds: float, concurrency: int) -> int:
    with running_stack() as stack:
        gateways = [stack.add_gateway(env=GATEWAY_ENV) for _ in range(2)]
        soak = Soak(stack, gateways, concurrency)
        await soak.client.post(f"{stack.graph.url}/_emulator/config", json={"non_atomic": True})
        until = time.monotonic() + seconds
        print(f"soak: {seconds:.0f} s, {concurrency} concurrent callers, 2 gateway processes", flush=True)
        faults = asyncio.create_task(soak.faults(until))
        await asyncio.gather(*(soak.traffic(until) for _ in range(concurrency)))
        injected = await faults
        unsettled = await soak.settle()
        meetings = (await soak.client.get(f"{stack.graph.url}/_emulator/meetings")).json()
        stats = (await soak.client.get(f"{stack.graph.url}/_emulator/stats")).json()
        stuck = await in_progress_records(stack)
        await soak.client.aclose()
    return report(soak.tally, injected, meetings, stats, stuck, unsettled)


def report(
    tally: Tally, injected: collections.Counter[str], meetings: dict[str, str], stats: Any, stuck: int, unsettled: int
) -> int:
    duplicated = {k: n for k, n in stats["creates_by_key"].items() if n != 1}
    wrong = [external for external, ids in tally.answered.items() if ids != {meetings.get(f"{ORGANIZER}|{external}")}]
    print("\nfaults injected:", dict(injected))
    print(
        "answers:",
        dict(sorted(tally.statuses.items())),
        f"connection errors (killed worker): {tally.connection_errors}",
    )
    print(f"keys: {len(tally.bodies)}; meetings at Graph: {len(meetings)}; Graph creates: {stats['creates']}")
    checks = {
        "every key has exactly one meeting": not duplicated and len(meetings) == len(tally.bodies),
        "every 2xx carried its key's meeting": not wrong,
        "no reservation left in progress": stuck == 0,
        "no 5xx but 503/504 with Retry-After": tally.undocumented_5xx == 0,
        "every key answered after the faults": unsettled == 0,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if duplicated or wrong:
        print("  duplicated:", duplicated, "wrong answers:", wrong[:5])
    return 0 if all(checks.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--concurrency", type=int, default=12)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.seconds, args.concurrency)))


if __name__ == "__main__":
    main()
