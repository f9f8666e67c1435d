"""Issue 19 item 2: one deadline for the whole answer, checked before each step, so no accepted setting and no
schedule of store calls answers later than ANSWER_LIMIT_SECONDS (in-process, fake clock, a slow store)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import timedelta
from itertools import product

import pytest

from meetings_core.errors import GatewayError
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.store import ReservationChanged, ReservationExists
from meetings_core.settings import ANSWER_LIMIT_SECONDS
from tests.memory_store import MemoryStore
from tests.test_engine import CTX, Clock, FakeGraph, call, key

# The issue's settings: accepted (wait + deadline + 5 x store = 110 s), yet 7 store calls answered after 121.9 s.
WAIT, DEADLINE, STORE, LEASE, GRACE = 50.0, 30.0, 6.0, 60.0, 15.0


class SlowStore(MemoryStore):
    """Every operation takes the whole store timeout; `conflicts` makes that many replaces report a conflict
    after committing (an SDK-retried write), the way the longest path arises."""

    def __init__(self, clock: Clock, cost: float = STORE) -> None:
        super().__init__()
        self.fake_clock = clock
        self.cost = cost
        self.insert_cost = cost  # varied, to shift where the polls fall against the end of the wait
        self.conflicts = 0

    async def insert(self, record: Reservation) -> Reservation:
        self.fake_clock.advance(self.insert_cost)
        return await super().insert(record)

    async def get_by_digest(self, digest: str) -> Reservation | None:
        self.fake_clock.advance(self.cost)
        return await super().get_by_digest(digest)

    async def replace(self, record: Reservation) -> Reservation:
        self.fake_clock.advance(self.cost)
        stored = await super().replace(record)
        if self.conflicts > 0:
            self.conflicts -= 1
            raise ReservationChanged(record.key)
        return stored

    async def delete(self, record: Reservation) -> None:
        self.fake_clock.advance(self.cost)
        await super().delete(record)


def engine(clock: Clock, store: MemoryStore, graph: FakeGraph, answer_seconds: float) -> IdempotencyEngine:
    config = EngineConfig(
        lease=timedelta(seconds=LEASE),
        duplicate_wait_seconds=WAIT,
        retention=timedelta(days=1),
        grace_seconds=GRACE,
        answer_seconds=answer_seconds,
        store_seconds=STORE,
        graph_deadline_seconds=DEADLINE,
    )
    return IdempotencyEngine(store, graph, config, CompletedCache(0), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


async def _longest(answer_seconds: float) -> float:
    """The slowest answer over owners whose lease ends at every point of the wait, Graph using its deadline."""
    slowest = 0.0
    for lease_left, insert_cost, conflicts in product(range(0, 62), (i / 2 for i in range(13)), (0, 2)):
        clock = Clock()
        store = SlowStore(clock)
        store.insert_cost = insert_cost
        store.conflicts = conflicts
        graph = FakeGraph(clock, takes_seconds=DEADLINE)
        c = call()
        store._commit(
            Reservation(
                key=key(), fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0",
                caller=CTX.caller, created_at=clock(), owner="crashed",
                lease_until=clock() + timedelta(seconds=lease_left), request=json.dumps(c.body).encode(),
            )
        )  # fmt: skip
        with contextlib.suppress(GatewayError, OutcomeUnknown):
            await engine(clock, store, graph, answer_seconds).create_or_get(c, CTX)
        slowest = max(slowest, clock.elapsed())
    return slowest


async def test_no_schedule_answers_after_the_limit_with_the_issues_settings():
    assert await _longest(ANSWER_LIMIT_SECONDS) <= ANSWER_LIMIT_SECONDS


class FlappingStore(MemoryStore):
    """Other callers keep winning the key and releasing it: every insert conflicts, every read finds nothing
    (for `flaps` calls; then the key is someone's, live, and the duplicate gives up)."""

    def __init__(self, clock: Clock, flaps: int = 400) -> None:
        super().__init__()
        self.fake_clock = clock
        self.flaps = flaps
        self.calls = 0

    async def insert(self, record: Reservation) -> Reservation:
        self.calls += 1
        self.fake_clock.advance(0.5)
        if self.calls > self.flaps:
            live = record.with_owner("another", self.fake_clock() + timedelta(seconds=LEASE), "v1.0", b"{}", LEASE)
            self._commit(live)
        raise ReservationExists(record.key)

    async def get(self, key: ReservationKey) -> Reservation | None:
        self.calls += 1
        self.fake_clock.advance(0.5)
        return self.records.get(key.digest)


@pytest.mark.parametrize("answer_seconds", [ANSWER_LIMIT_SECONDS, 1e9])
async def test_the_insert_again_loop_stops_at_the_deadline(answer_seconds: float):
    """Record gone -> insert again checks the clock; the control (no deadline) loops on past the limit."""
    clock = Clock()
    e = engine(clock, FlappingStore(clock), FakeGraph(clock), answer_seconds)
    with pytest.raises(GatewayError) as raised:
        await e.create_or_get(call(), CTX)
    assert (raised.value.status, raised.value.code) == (503, "RequestInProgress")
    assert "Retry-After" in raised.value.headers
    assert (clock.elapsed() <= ANSWER_LIMIT_SECONDS) == (answer_seconds == ANSWER_LIMIT_SECONDS)


@pytest.mark.parametrize("spent", [0.0, 100.0])
async def test_time_spent_before_the_engine_comes_off_the_answers_deadline(spent: float):
    """The HTTP layer's body read and authentication count: a request that arrived `spent` seconds ago is
    answered by the limit counted from its arrival (issue 19 item 2)."""
    clock = Clock()
    e = engine(clock, FlappingStore(clock, flaps=10**9), FakeGraph(clock), ANSWER_LIMIT_SECONDS)
    with pytest.raises(GatewayError):
        await e.create_or_get(call(), replace(CTX, spent_seconds=spent))
    assert spent + clock.elapsed() <= ANSWER_LIMIT_SECONDS  # counted from the engine's start: 100 + 57 s


async def test_a_graph_sdk_callers_limit_holds_on_every_schedule():
    """CALLER_TIMEOUT_SECONDS=100 (Graph SDKs): the engine answers by 90 s on every schedule, the wait cut short."""
    assert await _longest(90) <= 90
