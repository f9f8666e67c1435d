"""The reservation state machine in-process: an in-memory store, a scripted Graph and a fake clock make
each branch an exact, fast test (the process and Azurite tests cover what only they can show)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphResult
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, RequestContext
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.store import (
    RecordUnreadable,
    ReservationChanged,
    ReservationExists,
    StoreError,
    StoreUnavailable,
)
from meetings_core.settings import CALLER_LIMIT_SECONDS
from meetings_core.validation import CreateOrGetCall, validate_call
from tests.fake_clock import T0, Clock
from tests.memory_store import MemoryStore
from tests.rules_rig import meeting

ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"
LEASE, WAIT, GRACE, DEADLINE = 45.0, 50.0, 15.0, 30.0


@dataclass
class FakeGraph:
    """Answers from a script: a GraphResult, an exception, or a callable; records each call."""

    clock: Clock
    script: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    takes_seconds: float = 0.0

    async def create_or_get(
        self, api_version: str, organizer_id: str, body: dict[str, Any], *, client_request_id: str,
        deadline_seconds: float,
    ) -> GraphResult:  # fmt: skip
        self.calls.append({"at": self.clock(), "version": api_version, "body": body, "deadline": deadline_seconds})
        self.clock.advance(min(self.takes_seconds, deadline_seconds))
        answer = self.script.pop(0) if self.script else meeting(201, version=api_version)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


@dataclass
class Rig:
    clock: Clock
    store: MemoryStore
    graph: FakeGraph
    engine: IdempotencyEngine
    config: EngineConfig

    def rebuild(self, cache_size: int = 100, graph: Any = None, sleep: Any = None) -> None:
        """The same store and clock behind a new engine: another cache, Graph or sleep."""
        self.engine = IdempotencyEngine(
            self.store, graph or self.graph, self.config, CompletedCache(cache_size), clock=self.clock,
            sleep=sleep or self.clock.sleep,
        )  # fmt: skip


def rig(answer: str = "retry", cache_size: int = 100, lease: float = LEASE) -> Rig:
    clock = Clock()
    store = MemoryStore()
    graph = FakeGraph(clock)
    graph_deadline_cap(graph)
    config = EngineConfig(
        lease=timedelta(seconds=lease),
        duplicate_wait_seconds=WAIT,
        retention=timedelta(days=30),
        grace_seconds=GRACE,
        in_progress_answer=answer,  # type: ignore[arg-type]
    )
    engine = IdempotencyEngine(store, graph, config, CompletedCache(cache_size), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    return Rig(clock, store, graph, engine, config)


def graph_deadline_cap(fake: FakeGraph) -> None:
    """The real client caps every budget at GRAPH_DEADLINE_SECONDS; the fake does it here."""
    original = fake.create_or_get

    async def capped(*args: Any, deadline_seconds: float | None = None, **kwargs: Any) -> GraphResult:
        return await original(*args, deadline_seconds=min(DEADLINE, deadline_seconds or DEADLINE), **kwargs)

    fake.create_or_get = capped  # type: ignore[method-assign]


def call(version: str = "v1.0", **overrides: Any) -> CreateOrGetCall:
    body = {"externalId": "order-4711", "startDateTime": "2026-03-01T09:00:00Z", "subject": "Kick-off", **overrides}
    return validate_call(version, ORGANIZER, body)


CTX = RequestContext(caller="function-key", client_request_id="c-1")


def key() -> ReservationKey:
    return ReservationKey(ORGANIZER, "order-4711")


def stored(r: Rig) -> Reservation:
    record = r.store.records[key().digest]
    return record


def seed_in_progress(r: Rig, *, lease_left: float, owner: str = "crashed-owner") -> Reservation:
    c = call()
    record = Reservation(
        key=key(), fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0", caller=CTX.caller,
        created_at=r.clock(), owner=owner, lease_until=r.clock() + timedelta(seconds=lease_left),
        request=json.dumps(c.body).encode(),
    )  # fmt: skip
    return r.store._commit(record)


async def test_new_key_costs_one_graph_call_and_two_writes():
    r = rig()
    outcome = await r.engine.create_or_get(call(), CTX)
    assert outcome.status == 201
    assert len(r.graph.calls) == 1
    assert r.store.operations == ["insert", "replace"]
    assert stored(r).state is State.COMPLETED
    assert stored(r).request is not None  # kept: a poll in the other version re-sends it


async def test_owner_budget_leaves_the_grace_before_the_lease_ends():
    r = rig(lease=GRACE + 20)  # lease minus grace (20 s) is shorter than the Graph deadline (30 s)
    await r.engine.create_or_get(call(), CTX)
    assert r.graph.calls[0]["deadline"] == pytest.approx(20)


@pytest.mark.parametrize(
    ("operation", "state", "error", "ended_lease"),
    [
        ("insert", State.IN_PROGRESS, ReservationExists, False),  # a new key
        ("replace", State.IN_PROGRESS, ReservationChanged, True),  # a takeover
    ],
    ids=["insert", "takeover"],
)
async def test_a_write_committed_then_reported_as_a_conflict_continues_as_owner(
    operation: str, state: State, error: type[Exception], ended_lease: bool
):
    """azure-core retried a write whose answer was lost after it had committed: the conflict is our own."""
    r = rig()
    if ended_lease:
        seed_in_progress(r, lease_left=-1)

    def retried(done: str, record: Reservation) -> None:
        if done == operation and record.state is state:
            r.store.after = None
            raise error(record.key)

    r.store.after = retried
    outcome = await r.engine.create_or_get(call(), CTX)
    assert outcome.status == 201
    assert len(r.graph.calls) == 1
    assert stored(r).state is State.COMPLETED
    assert r.clock.elapsed() == 0  # recognised at once, not after waiting out its own lease


async def test_completion_committed_then_reported_changed_is_recognised_and_cached():
    r = rig()

    def retried(operation: str, record: Reservation) -> None:
        if operation == "replace" and record.state is State.COMPLETED:
            r.store.after = None
            raise ReservationChanged(record.key)

    r.store.after = retried
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    r.store.operations.clear()
    replay = await r.engine.create_or_get(call(), CTX)
    assert replay.status == 200
    assert r.store.operations == []  # served from the cache the recognised write filled


async def test_unknown_outcome_holds_the_key_and_says_when_to_come_back():
    r = rig()
    r.graph.script = [OutcomeUnknown("Graph did not answer.", timeout=True)]
    r.graph.takes_seconds = DEADLINE
    with pytest.raises(OutcomeUnknown) as raised:
        await r.engine.create_or_get(call(), CTX)
    assert raised.value.status == 504
    record = stored(r)
    assert record.state is State.IN_PROGRESS  # not released
    assert "delete" not in r.store.operations
    assert int(raised.value.headers["Retry-After"]) == round(record.lease_left(r.clock()) + 1)


async def test_no_second_graph_call_before_the_lease_of_an_unknown_outcome_ends():
    r = rig()
    r.graph.script = [OutcomeUnknown("Graph did not answer.", timeout=True), meeting(200)]
    r.graph.takes_seconds = DEADLINE
    with pytest.raises(OutcomeUnknown):
        await r.engine.create_or_get(call(), CTX)
    lease_until = stored(r).lease_until
    assert lease_until is not None
    r.graph.takes_seconds = 0
    retried = await r.engine.create_or_get(call(), CTX)  # the caller's retry, at once
    assert retried.status == 200
    assert len(r.graph.calls) == 2
    assert r.graph.calls[1]["at"] >= lease_until


@pytest.mark.parametrize("failure", [RuntimeError("bug"), ValueError("odd body"), KeyError("x")])
async def test_any_unexpected_failure_in_the_owner_path_is_an_unknown_outcome(failure: Exception):
    r = rig()
    r.graph.script = [failure]
    with pytest.raises(OutcomeUnknown) as raised:
        await r.engine.create_or_get(call(), CTX)
    assert raised.value.status == 503
    assert stored(r).state is State.IN_PROGRESS
    assert raised.value.__cause__ is failure


async def test_a_definite_graph_error_releases_the_key():
    r = rig()
    r.graph.script = [GatewayError(400, "BadRequest", "no")]
    with pytest.raises(GatewayError):
        await r.engine.create_or_get(call(), CTX)
    assert stored(r).released
    assert (await r.engine.create_or_get(call(), CTX)).status == 201


async def test_a_late_owner_never_calls_graph():
    """The insert was acknowledged after the lease had (nearly) ended: answer 503 and let it run out."""
    r = rig()

    def slow_ack(operation: str, record: Reservation) -> None:
        if operation == "insert":
            r.clock.advance(LEASE - GRACE - 0.5)

    r.store.after = slow_ack
    with pytest.raises(GatewayError) as raised:
        await r.engine.create_or_get(call(), CTX)
    assert raised.value.status == 503
    assert int(raised.value.headers["Retry-After"]) >= 1
    assert r.graph.calls == []
    assert stored(r).state is State.IN_PROGRESS


async def test_a_duplicate_waits_for_the_owner_and_gets_its_meeting():
    r = rig()
    seed_in_progress(r, lease_left=LEASE, owner="live-owner")

    def owner_finishes() -> None:
        if r.clock.elapsed() >= 3:
            current = stored(r)
            done = current.as_completed(201, meeting(201).body, None, r.clock(), timedelta(days=1))
            r.store.records[key().digest] = replace(done, etag="W/done")
            r.clock.on_sleep = None

    r.clock.on_sleep = owner_finishes
    outcome = await r.engine.create_or_get(call(), CTX)
    assert outcome.status == 200
    assert outcome.headers["Idempotent-Replayed"] == "true"
    assert r.graph.calls == []
    assert 3 <= r.clock.elapsed() < 5


async def test_a_duplicate_takes_over_when_the_lease_ends_within_its_wait():
    r = rig()
    seed_in_progress(r, lease_left=LEASE)  # the owner crashed just now
    outcome = await r.engine.create_or_get(call(), CTX)
    assert outcome.status == 201
    assert len(r.graph.calls) == 1
    assert r.graph.calls[0]["at"] >= T0 + timedelta(seconds=LEASE)


async def test_a_duplicate_asking_for_the_asynchronous_pattern_gets_its_status_url_at_once():
    r = rig()
    seed_in_progress(r, lease_left=LEASE, owner="live-owner")
    outcome = await r.engine.create_or_get(call(), replace(CTX, respond_async=True))
    assert outcome.status == 202
    assert outcome.headers["Location"] == f"/operations/{key().digest}_v1.0"
    assert r.clock.elapsed() == 0


async def test_a_poll_of_an_ended_lease_without_a_stored_request_says_to_send_again():
    r = rig()
    legacy = replace(seed_in_progress(r, lease_left=-1), request=None)
    r.store.records[key().digest] = legacy
    with pytest.raises(GatewayError) as raised:
        await r.engine.status(key().digest, CTX)
    assert raised.value.status == 404
    assert "send the createOrGet request again" in raised.value.message
    assert r.graph.calls == []


@pytest.mark.parametrize(("answer", "respond_async", "status"), [("retry", False, 503), ("conflict", False, 409)])
async def test_past_the_wait_the_answer_is_one_the_client_retries(answer: str, respond_async: bool, status: int):
    r = rig(answer)
    seed_in_progress(r, lease_left=LEASE, owner="live-owner")

    def renew() -> None:  # a live owner keeps a fresh lease: the wait runs out first
        current = stored(r)
        r.store.records[key().digest] = replace(current, lease_until=r.clock() + timedelta(seconds=LEASE))

    r.clock.on_sleep = renew
    ctx = replace(CTX, respond_async=respond_async)
    with pytest.raises(GatewayError) as raised:
        await r.engine.create_or_get(call(), ctx)
    assert raised.value.status == status
    assert raised.value.code == "RequestInProgress"
    assert 1 <= int(raised.value.headers["Retry-After"]) <= 5
    assert WAIT <= r.clock.elapsed() < WAIT + 2


async def test_the_longest_answer_with_defaults_fits_power_automates_limit():
    """Owner crashed at once; the duplicate waits out the lease, takes over, and Graph uses its whole deadline."""
    r = rig()
    seed_in_progress(r, lease_left=LEASE)
    r.graph.takes_seconds = DEADLINE
    await r.engine.create_or_get(call(), CTX)
    assert r.clock.elapsed() <= LEASE + DEADLINE + 1
    assert r.clock.elapsed() < CALLER_LIMIT_SECONDS - 10


async def test_a_status_poll_finishes_an_abandoned_call_from_the_stored_request():
    r = rig()
    seed_in_progress(r, lease_left=-1)
    outcome = await r.engine.status(key().digest, CTX)
    assert outcome.status == 201
    assert r.graph.calls[0]["body"] == call().body
    assert stored(r).state is State.COMPLETED
    again = await r.engine.status(key().digest, CTX)
    assert (again.status, len(r.graph.calls)) == (201, 1)


async def test_a_status_poll_of_a_live_lease_is_202_without_graph():
    r = rig()
    seed_in_progress(r, lease_left=10, owner="live-owner")
    outcome = await r.engine.status(key().digest, CTX)
    assert outcome.status == 202
    assert r.graph.calls == []


@pytest.mark.parametrize(
    "ctx",
    [
        RequestContext(caller="hmac:other", client_request_id="c"),
        RequestContext(caller="function-key", client_request_id="c", allows=lambda organizer, version: False),
    ],
)
async def test_status_is_the_same_404_for_absent_foreign_and_disallowed(ctx: RequestContext):
    r = rig()
    await r.engine.create_or_get(call(), CTX)
    r.rebuild(cache_size=0)
    with pytest.raises(GatewayError) as foreign:
        await r.engine.status(key().digest, ctx)
    with pytest.raises(GatewayError) as absent:
        await r.engine.status("0" * 64, CTX)
    assert (
        (foreign.value.status, foreign.value.message)
        == (absent.value.status, absent.value.message)
        == (
            404,
            absent.value.message,
        )
    )


@pytest.mark.parametrize(
    "variant",
    [
        {"startDateTime": "2026-03-01T10:00:00+01:00"},
        {"chatInfo": None},
        {"@odata.type": "#microsoft.graph.onlineMeeting"},
        {"subject@odata.type": "#String"},
    ],
)
async def test_the_same_meeting_written_another_way_is_a_replay(cache_variant: int, variant: dict[str, Any]):
    r = rig(cache_size=cache_variant)
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    replay = await r.engine.create_or_get(call(**variant), CTX)
    assert replay.status == 200
    assert len(r.graph.calls) == 1


async def test_a_record_with_the_legacy_fingerprint_still_replays(cache_variant: int):
    r = rig(cache_size=cache_variant)
    await r.engine.create_or_get(call(), CTX)
    legacy = replace(stored(r), fingerprint=call().legacy_fingerprint)
    r.store.records[key().digest] = legacy
    r.rebuild(cache_size=cache_variant)
    assert (await r.engine.create_or_get(call(), CTX)).status == 200
    with pytest.raises(GatewayError) as changed:
        await r.engine.create_or_get(call(subject="other"), CTX)
    assert changed.value.status == 422


@pytest.fixture(params=[0, 100], ids=["cache-off", "cache-on"])
def cache_variant(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_the_cache_never_serves_past_expiry_or_ttl():
    cache = CompletedCache(10, ttl_seconds=0.05)
    c = call()
    record = Reservation(
        key=key(), fingerprint=c.fingerprint, state=State.COMPLETED, api_version="v1.0", caller="x", created_at=T0,
        owner="o", status=201, body=b"{}", expires_at=T0 + timedelta(seconds=10),
    )  # fmt: skip
    cache.put(record)
    assert cache.get(key().digest, T0) is record
    assert cache.get(key().digest, T0 + timedelta(seconds=10)) is None  # past ExpiresAt
    cache.put(record)
    import time

    time.sleep(0.06)
    assert cache.get(key().digest, T0) is None  # past the TTL


def test_records_refuse_to_exist_without_their_states_fields():
    with pytest.raises(ValueError, match="no owner or lease"):
        Reservation(key=key(), fingerprint="f", state=State.IN_PROGRESS, api_version="v1.0", caller="x", created_at=T0)
    with pytest.raises(ValueError, match="no status, body or expiry"):
        Reservation(key=key(), fingerprint="f", state=State.COMPLETED, api_version="v1.0", caller="x", created_at=T0)


class FailingReads(MemoryStore):
    """Reads fail with `error` after `good_reads` of them; every takeover loses its ETag claim (another taker)."""

    def __init__(self, error: StoreError, good_reads: int) -> None:
        super().__init__()
        self.error = error
        self.good_reads = good_reads

    async def get_by_digest(self, digest: str) -> Reservation | None:
        if self.good_reads == 0:
            raise self.error
        self.good_reads -= 1
        return await super().get_by_digest(digest)

    async def replace(self, record: Reservation) -> Reservation:
        raise ReservationChanged(record.key)


STORE_FAILURES = {
    "unreachable": (StoreUnavailable("down"), 503, "ServiceUnavailable"),
    "unreadable": (RecordUnreadable("damaged"), 500, "InternalServerError"),
}


@pytest.mark.parametrize("failure", list(STORE_FAILURES))
@pytest.mark.parametrize("path", ["create", "status"])
async def test_a_store_failure_is_one_documented_answer_on_either_path(failure: str, path: str):
    """A duplicate's read, or a status poll's read after its takeover lost: the error's own answer, no Graph."""
    error, status, code = STORE_FAILURES[failure]
    r = rig()
    r.store = FailingReads(error, good_reads=0 if path == "create" else 1)
    r.rebuild()
    if path == "create":
        seed_in_progress(r, lease_left=LEASE)  # someone else's key: the insert conflicts, the read fails
        answer = r.engine.create_or_get(call(), CTX)
    else:
        seed_in_progress(r, lease_left=-1)  # ended: the poll tries to take it, loses, and re-reads
        answer = r.engine.status(key().digest, CTX)
    with pytest.raises(GatewayError) as raised:
        await answer
    assert (raised.value.status, raised.value.code) == (status, code)
    assert r.graph.calls == []
