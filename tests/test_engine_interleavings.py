"""The rule under random interleavings, in virtual time: many callers for one key, crashes, slow and refused
Graph calls, slow store acknowledgements. Graph here is non-atomic and, like a real backend, finishes a
call after its client gave up; a second call overlapping the first would create a second meeting.

Graph finishes at most GRAPH_GRACE_SECONDS after the gateway gave up, the assumption the rule rests on.
Asserted for every example: no two Graph calls for the key overlap (counting the part that runs after
the client gave up), at most one meeting exists, every 2xx carries it, and every answer comes within
the wait + deadline + five store calls.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphResult
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, RequestContext
from meetings_core.idempotency.records import Reservation
from meetings_core.validation import validate_call
from tests.memory_store import MemoryStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEADLINE, GRACE, WAIT, STORE = 3.0, 2.0, 8.0, 0.5
LEASE = DEADLINE + GRACE  # the least the settings allow: the grace is what keeps calls apart
ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"


class VirtualTime:
    """A clock that moves only when every task is waiting on it: interleavings without real sleeps."""

    def __init__(self) -> None:
        self.now = T0
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + timedelta(seconds=max(seconds, 0)), next(self._order), future))
        await future

    async def run(self, tasks: list[asyncio.Task[Any]], crashes: dict[int, float]) -> None:
        while not all(task.done() for task in tasks):
            for _ in range(20):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            for index, at in list(crashes.items()):
                if self.now >= T0 + timedelta(seconds=at):
                    tasks[index].cancel()  # the worker died: nothing it started is cleaned up
                    del crashes[index]
            if self._sleepers:
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                if not future.done():
                    future.set_result(None)
        while self._sleepers:  # Graph's own continuations, after every caller is done
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)
            for _ in range(20):
                await asyncio.sleep(0)


@dataclass
class SlowStore(MemoryStore):
    """The in-memory store, with each write's acknowledgement arriving late (after it committed)."""

    time: VirtualTime = field(default_factory=VirtualTime)
    delays: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        MemoryStore.__init__(self)

    async def _late(self) -> None:
        await self.time.sleep(self.delays.pop(0) if self.delays else 0.0)

    async def insert(self, record: Reservation) -> Reservation:
        stored = await super().insert(record)
        await self._late()
        return stored

    async def replace(self, record: Reservation) -> Reservation:
        stored = await super().replace(record)
        await self._late()
        return stored


@dataclass
class NonAtomicGraph:
    """createOrGet that creates if absent when it *finishes*, and finishes even after its client left."""

    time: VirtualTime
    script: list[tuple[str, float]]
    in_flight: int = 0
    overlaps: int = 0
    meetings: list[str] = field(default_factory=list)

    async def create_or_get(
        self, api_version: str, organizer_id: str, body: dict[str, Any], *, client_request_id: str,
        deadline_seconds: float | None = None,
    ) -> GraphResult:  # fmt: skip
        budget = min(DEADLINE, deadline_seconds or DEADLINE)
        kind, takes = self.script.pop(0) if self.script else ("ok", 0.1)
        # The documented assumption (docs/IDEMPOTENCY.md, time limits): Graph finishes a call at most
        # GRACE after the gateway gave up on it.
        takes = min(takes, budget + GRACE)
        self.in_flight += 1
        self.overlaps += self.in_flight > 1
        server = asyncio.ensure_future(self._server(kind, takes))
        if takes > budget:
            await self.time.sleep(budget)
            raise OutcomeUnknown("Graph did not answer within the gateway's deadline.", timeout=True)
        return await asyncio.shield(server)

    async def _server(self, kind: str, takes: float) -> GraphResult:
        try:
            await self.time.sleep(takes)
            if kind == "refused":
                raise GatewayError(503, "ServiceUnavailable", "Graph refused the request; nothing was created.")
            created = not self.meetings
            if created:
                self.meetings.append(f"meeting-{len(self.meetings)}")
            body = json.dumps({"id": self.meetings[0], "externalId": "order-1"}).encode()
            return GraphResult(201 if created else 200, body, "graph-request")
        finally:
            self.in_flight -= 1


@dataclass
class Answer:
    status: int
    meeting: str | None
    took: float


async def _caller(engine: IdempotencyEngine, time: VirtualTime, respond_async: bool) -> Answer:
    started = time.now
    call = validate_call("v1.0", ORGANIZER, {"externalId": "order-1", "subject": "Kick-off"})
    ctx = RequestContext(caller="function-key", client_request_id="c", respond_async=respond_async)
    try:
        outcome = await engine.create_or_get(call, ctx)
        status, meeting = outcome.status, json.loads(outcome.body).get("id")
    except GatewayError as error:
        status, meeting = error.status, None
    return Answer(status, meeting, (time.now - started).total_seconds())


# Edges weighted in: the slowest Graph the assumption allows, the latest store acknowledgement.
durations = st.one_of(st.floats(0.0, DEADLINE + GRACE), st.just(DEADLINE + GRACE))
graph_calls = st.lists(st.tuples(st.sampled_from(["ok", "ok", "refused"]), durations), max_size=12)
store_delay = st.one_of(st.floats(0.0, STORE), st.just(STORE))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    callers=st.integers(2, 8),
    script=graph_calls,
    store_delays=st.lists(store_delay, max_size=30),
    crashes=st.dictionaries(st.integers(0, 7), st.floats(0.0, 10.0), max_size=3),
    respond_async=st.booleans(),
)
def test_no_two_graph_calls_overlap_and_every_2xx_has_the_one_meeting(
    callers: int, script: list[tuple[str, float]], store_delays: list[float], crashes: dict[int, float],
    respond_async: bool,
) -> None:  # fmt: skip
    asyncio.run(_example(callers, script, store_delays, crashes, respond_async))


async def _example(
    callers: int, script: list[tuple[str, float]], store_delays: list[float], crashes: dict[int, float],
    respond_async: bool,
) -> None:  # fmt: skip
    time = VirtualTime()
    store = SlowStore(time=time, delays=list(store_delays))
    graph = NonAtomicGraph(time, list(script))
    config = EngineConfig(
        lease=timedelta(seconds=LEASE), duplicate_wait_seconds=WAIT, retention=timedelta(days=1), grace_seconds=GRACE
    )
    engine = IdempotencyEngine(store, graph, config, CompletedCache(100), clock=time, sleep=time.sleep)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(_caller(engine, time, respond_async)) for _ in range(callers)]
    await time.run(tasks, {i: at for i, at in crashes.items() if i < callers})
    answers = [task.result() for task in tasks if not task.cancelled()]
    # Afterwards each caller that lived retries, as its client would, until the key settles.
    for _ in range(6):
        retry = asyncio.create_task(_caller(engine, time, False))
        await time.run([retry], {})
        answers.append(retry.result())
    assert graph.overlaps == 0, "two Graph calls for one key ran at the same time"
    assert len(graph.meetings) <= 1
    for answer in answers:
        assert answer.status in (200, 201, 202, 409, 503, 504), answer
        if answer.status in (200, 201):
            assert answer.meeting == graph.meetings[0]
        assert answer.took <= WAIT + DEADLINE + 5 * STORE + 1, answer
