"""Issue 19 item 1: exactly once when instance clocks differ and Graph finishes late, both at once.

Lease ends are judged by Table Storage's clock (the entity's Timestamp plus the lease, against the read's Date
header), and an owner measures its own lease from before its write: no instance's clock is compared with
another's (docs/IDEMPOTENCY.md, clocks). In-process with skewed fake clocks, then end to end with two gateway
processes, one under libfaketime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from azure.data.tables.aio import TableClient

from devstack.stack import LocalStack, Process
from meetings_core.errors import GatewayError
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.idempotency import table_store
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, utcnow
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.table_store import TableReservationStore
from tests.conftest import GATEWAY_ENV, _view
from tests.memory_store import MemoryStore
from tests.stackutil import ORGANIZER, body_for, create_url
from tests.test_engine import CTX, Clock, FakeGraph, call, key

LEASE, GRACE, DEADLINE = 14.0, 12.0, 2.0


def _engine(store: MemoryStore, graph: FakeGraph, clock: Callable[[], datetime], real: Clock) -> IdempotencyEngine:
    config = EngineConfig(
        lease=timedelta(seconds=LEASE),
        duplicate_wait_seconds=20,
        retention=timedelta(days=1),
        grace_seconds=GRACE,
        store_seconds=1,
        graph_deadline_seconds=DEADLINE,
    )
    return IdempotencyEngine(store, graph, config, CompletedCache(0), clock=clock, sleep=real.sleep)  # type: ignore[arg-type]


@pytest.mark.parametrize("skew", [8.0, -8.0, 3600.0])
async def test_a_skewed_instance_takes_over_only_when_storage_says_the_lease_ended(skew: float):
    real = Clock()  # storage's clock, and the first instance's
    store = MemoryStore(clock=real)
    graph = FakeGraph(real, script=[OutcomeUnknown("timed out", timeout=True)], takes_seconds=DEADLINE)
    first = _engine(store, graph, real, real)
    with pytest.raises(OutcomeUnknown):
        await first.create_or_get(call(), CTX)
    gave_up = real.elapsed()
    skewed = _engine(store, graph, lambda: real() + timedelta(seconds=skew), real)
    outcome = await skewed.create_or_get(call(), CTX)
    assert outcome.status == 201
    second_call = (graph.calls[1]["at"] - graph.calls[0]["at"]).total_seconds()
    assert second_call >= LEASE  # the lease, by storage's clock: whatever the second instance's clock says
    assert second_call - gave_up >= GRACE  # so Graph had the whole grace to finish the first call


async def test_an_owner_measures_its_lease_from_before_its_write_not_by_its_clock():
    real = Clock()
    store = MemoryStore(clock=real)
    graph = FakeGraph(real)
    behind = _engine(store, graph, lambda: real() - timedelta(seconds=3600), real)
    await behind.create_or_get(call(), CTX)
    assert graph.calls[0]["deadline"] == LEASE - GRACE  # not stretched by an hour-slow clock


async def test_two_instances_eight_seconds_apart_and_graph_ten_seconds_late_make_one_meeting(
    local_stack: LocalStack,
):
    """Instance A gives up on Graph (504) after 2 s; Graph creates the meeting 10 s later. Instance B's clock
    is 8 s ahead. The grace (12 s) covers Graph's tail; the skew plays no part. On the old engine, which
    compared A's lease end with B's clock, B took over 8 s early and Graph made a second meeting."""
    env = {
        **GATEWAY_ENV,
        "GRAPH_DEADLINE_SECONDS": str(DEADLINE),
        "GRAPH_GRACE_SECONDS": str(GRACE),
        "RESERVATION_LEASE_SECONDS": str(LEASE),
        "DUPLICATE_WAIT_SECONDS": "20",
    }
    started: list[Process] = []
    try:
        started.append(local_stack.add_gateway(env=env))
        started.append(local_stack.add_gateway(env=env, clock_offset="+8"))
        a, b = (_view(local_stack, process) for process in started)
        await a.reset()
        await a.graph_config(non_atomic=True, latency_ms=12_000, slow_calls=1)
        body = body_for()
        async with httpx.AsyncClient(timeout=60) as client:
            first = await client.post(create_url(a.gateway), json=body)
            assert first.status_code == 504, first.text
            second = await client.post(create_url(b.gateway), json=body)
        assert second.status_code == 200, second.text
        stats = await a.graph_stats()
        assert stats["creates"] == 1, stats
        assert stats["calls"] == 2
        meetings = await _meeting_ids(a.graph)
        assert second.json()["id"] == meetings[f"{ORGANIZER.lower()}|{body['externalId']}"]
    finally:
        for process in started:
            process.stop()
        await asyncio.sleep(0)


async def _meeting_ids(graph: str) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{graph}/_emulator/meetings")
        answer.raise_for_status()
        return dict(json.loads(answer.text))


def test_the_engine_clock_follows_the_monotonic_clock_not_the_wall_clock(monkeypatch: pytest.MonkeyPatch):
    """An NTP step of the wall clock cannot stretch an owner's lease: the engine's UTC advances with
    time.monotonic only."""
    from meetings_core.idempotency import context

    monkeypatch.setattr(context.time, "monotonic", lambda: context._MONOTONIC_ANCHOR + 5.0)
    monkeypatch.setattr(context.time, "time", lambda: 0.0)  # a wall clock stepped back to 1970
    assert context.utcnow() == context._WALL_ANCHOR + timedelta(seconds=5)


async def test_a_read_without_storages_date_is_refused_not_judged_by_the_instances_clock(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    """Without the read's Date header nothing on storage's clock says the lease ended: the instance's clock
    (here an hour ahead) must not stand in for it. The store fails closed: 503, no Graph call, no takeover."""
    monkeypatch.setattr(table_store, "_date_of", lambda dates: lambda response: None)  # an answer without Date
    c = call()
    live = Reservation(
        key=key(), fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0", caller=CTX.caller,
        created_at=utcnow(), owner="live-owner", lease_until=utcnow() + timedelta(seconds=LEASE),
        request=json.dumps(c.body).encode(), lease_seconds=LEASE,
    )  # fmt: skip
    tables = local_stack.gateway_env()["TABLES_CONNECTION_STRING"]
    async with TableClient.from_connection_string(tables, "meetingreservations") as table:
        store = TableReservationStore(table)
        await store.create_table()
        await store.remove(live.key)
        await store.insert(live)
        real = Clock()
        graph = FakeGraph(real)
        ahead = _engine(store, graph, lambda: utcnow() + timedelta(hours=1), real)  # type: ignore[arg-type]
        try:
            with pytest.raises(GatewayError) as raised:
                await ahead.create_or_get(c, CTX)
            assert raised.value.status == 503
            assert graph.calls == []
        finally:
            await store.remove(live.key)
