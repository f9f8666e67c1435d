"""A small in-process rig for the rule tests: the engine over the in-memory store, a scripted Graph, a fake
clock. Only public names of the engine are used, so the rules survive a reshuffle of its modules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from meetings_core.graph.client import GraphResult
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, RequestContext
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation, State
from meetings_core.validation import CreateOrGetCall, validate_call
from tests.fake_clock import Clock
from tests.memory_store import MemoryStore

ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"
OTHER_ORGANIZER = "2a46a3f7-0dbc-45bb-9e6b-c85d25831111"
EXTERNAL_ID = "order-4711"
LEASE, WAIT, GRACE, DEADLINE = 45.0, 50.0, 15.0, 30.0
CTX = RequestContext(caller="hmac:partner-a", client_request_id="c-1")

# What Graph does for one call: a result, an exception to raise, or a coroutine function run first
# (so a test can act while the call is in flight) whose result is used in turn.
Step = GraphResult | BaseException | Callable[[], Awaitable[Any]]


class YieldingStore(MemoryStore):
    """The in-memory store, letting other tasks run before each operation (as a network round trip does)."""

    async def insert(self, record: Reservation) -> Reservation:
        await asyncio.sleep(0)
        return await super().insert(record)

    async def get_by_digest(self, digest: str) -> Reservation | None:
        await asyncio.sleep(0)
        return await super().get_by_digest(digest)

    async def replace(self, record: Reservation) -> Reservation:
        await asyncio.sleep(0)
        return await super().replace(record)

    async def delete(self, record: Reservation) -> None:
        await asyncio.sleep(0)
        await super().delete(record)


class ClaimedAfterRead(MemoryStore):
    """The in-memory store where, right after the first read of the key, another instance claims it (an ETag
    replace with a fresh lease): the reader holds a stale copy, as when two takers read an ended lease."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.armed = True

    async def get_by_digest(self, digest: str) -> Reservation | None:
        stale = await super().get_by_digest(digest)
        if self.armed and stale is not None and stale.request is not None:
            self.armed = False
            lease_until = self.clock() + timedelta(seconds=LEASE)
            self._commit(stale.with_owner("other-taker", lease_until, stale.api_version, stale.request, LEASE))
        return stale


@dataclass
class ScriptedGraph:
    """Answers createOrGet from `script` (a 201 meeting once it is empty) and records every call."""

    clock: Clock
    script: list[Step] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def create_or_get(
        self, api_version: str, organizer_id: str, body: dict[str, Any], *, client_request_id: str,
        deadline_seconds: float | None = None,
    ) -> GraphResult:  # fmt: skip
        self.calls.append(
            {"at": self.clock(), "version": api_version, "organizer": organizer_id, "body": body,
             "deadline": min(DEADLINE, deadline_seconds or DEADLINE)}
        )  # fmt: skip
        for _ in range(3):  # a round trip: other requests run meanwhile
            await asyncio.sleep(0)
        step: Any = self.script.pop(0) if self.script else meeting(201)
        while callable(step):
            step = await step()
        if isinstance(step, BaseException):
            raise step
        return step  # type: ignore[no-any-return]


def meeting(status: int, meeting_id: str = "MSo1", version: str = "v1.0") -> GraphResult:
    body = {"@odata.context": f"https://graph.microsoft.com/{version}/$metadata", "id": meeting_id}
    return GraphResult(status, json.dumps(body).encode(), "graph-req")


@dataclass
class Rig:
    clock: Clock
    store: MemoryStore
    graph: ScriptedGraph
    engine: IdempotencyEngine

    def record(self, organizer: str = ORGANIZER) -> Reservation | None:
        return self.store.records.get(key(organizer).digest)

    def seed(
        self, *, lease_left: float, owner: str = "crashed-owner", body: dict[str, Any] | None = None
    ) -> Reservation:
        """An in-progress reservation of `call(**body)` held by `owner` for `lease_left` more seconds."""
        c = call(**(body or {}))
        record = Reservation(
            key=c.key, fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0", caller=CTX.caller,
            created_at=self.clock(), owner=owner, lease_until=self.clock() + timedelta(seconds=lease_left),
            request=json.dumps(c.body).encode(),
        )  # fmt: skip
        return self.store._commit(record)

    async def take_over(self, owner: str = "taker") -> Reservation:
        """Another instance's takeover of the current record (an ETag replace with a fresh lease)."""
        current = self.record()
        assert current is not None
        assert current.request is not None
        lease_until = self.clock() + timedelta(seconds=LEASE)
        return await self.store.replace(
            current.with_owner(owner, lease_until, current.api_version, current.request, LEASE)
        )


def rig(*, cache_size: int = 100, yielding: bool = False, claimed_after_read: bool = False) -> Rig:
    clock = Clock()
    store = ClaimedAfterRead(clock) if claimed_after_read else YieldingStore() if yielding else MemoryStore()
    graph = ScriptedGraph(clock)
    config = EngineConfig(
        lease=timedelta(seconds=LEASE),
        duplicate_wait_seconds=WAIT,
        retention=timedelta(days=30),
        grace_seconds=GRACE,
    )
    engine = IdempotencyEngine(store, graph, config, CompletedCache(cache_size), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    return Rig(clock, store, graph, engine)


def call(version: str = "v1.0", organizer: str = ORGANIZER, **overrides: Any) -> CreateOrGetCall:
    body = {"externalId": EXTERNAL_ID, "startDateTime": "2026-03-01T09:00:00Z", "subject": "Kick-off", **overrides}
    return validate_call(version, organizer, body)


def key(organizer: str = ORGANIZER) -> ReservationKey:
    return call(organizer=organizer).key
