"""The Table store's share of the rules, on Azurite (only the real store shows whether an ETag was sent):
the insert is the serialization point, and a replace or delete made from a stale copy never lands."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from devstack.stack import LocalStack
from meetings_core.errors import GatewayError
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.store import ReservationChanged, ReservationExists
from meetings_core.idempotency.table_store import TableReservationStore
from tests.fake_clock import T0, Clock
from tests.rules_rig import CTX, LEASE, ScriptedGraph, call

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(local_stack: LocalStack) -> AsyncIterator[TableReservationStore]:
    """A store over a table of its own, so no other test's records are in the way."""
    connection = local_stack.gateway_env()["TABLES_CONNECTION_STRING"]
    table = TableClient.from_connection_string(connection, f"rules{uuid.uuid4().hex[:16]}")
    store = TableReservationStore(table)
    await store.create_table()
    yield store
    await table.delete_table()
    await store.close()


def in_progress(owner: str = "owner-a") -> Reservation:
    c = call()
    return Reservation(
        key=c.key, fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0", caller=CTX.caller,
        created_at=T0, owner=owner, lease_until=T0 + timedelta(seconds=LEASE), request=json.dumps(c.body).encode(),
    )  # fmt: skip


async def test_a_second_insert_of_a_key_is_refused(store: TableReservationStore):
    await store.insert(in_progress("owner-a"))
    with pytest.raises(ReservationExists):
        await store.insert(in_progress("owner-b"))
    kept = await store.get(in_progress().key)
    assert kept is not None
    assert kept.owner == "owner-a"


async def test_a_replace_from_a_stale_copy_is_refused(store: TableReservationStore):
    stale = await store.insert(in_progress("owner-a"))
    await store.replace(stale.with_owner("taker", T0 + timedelta(seconds=2 * LEASE), "v1.0", b"{}", LEASE))
    with pytest.raises(ReservationChanged):
        await store.replace(stale.with_owner("late", T0 + timedelta(seconds=3 * LEASE), "v1.0", b"{}", LEASE))
    kept = await store.get(stale.key)
    assert kept is not None
    assert kept.owner == "taker"


async def test_a_delete_from_a_stale_copy_is_refused(store: TableReservationStore):
    stale = await store.insert(in_progress("owner-a"))
    await store.replace(stale.with_owner("taker", T0 + timedelta(seconds=2 * LEASE), "v1.0", b"{}", LEASE))
    with pytest.raises(ReservationChanged):
        await store.delete(stale)
    kept = await store.get(stale.key)
    assert kept is not None
    assert kept.owner == "taker"


async def test_control_a_delete_from_the_current_copy_lands(store: TableReservationStore):
    current = await store.insert(in_progress())
    await store.delete(current)
    assert await store.get(current.key) is None


async def test_a_stale_owners_release_through_the_engine_leaves_the_takers_reservation(store: TableReservationStore):
    """The engine over the real store: Graph refuses the owner's call after another instance took over."""
    clock = Clock()
    graph = ScriptedGraph(clock)
    config = EngineConfig(lease=timedelta(seconds=LEASE), duplicate_wait_seconds=50, retention=timedelta(days=1))
    engine = IdempotencyEngine(store, graph, config, CompletedCache(0), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]

    async def taken_over_then_refused() -> GatewayError:
        clock.advance(LEASE)
        current = await store.get(call().key)
        assert current is not None
        assert current.request is not None
        await store.replace(
            current.with_owner("taker", clock() + timedelta(seconds=LEASE), "v1.0", current.request, LEASE)
        )
        return GatewayError(400, "BadRequest", "Graph refused the request.")

    graph.script = [taken_over_then_refused]
    with pytest.raises(GatewayError):
        await engine.create_or_get(call(), CTX)
    kept = await store.get(call().key)
    assert kept is not None, "the stale owner deleted the taker's reservation"
    assert kept.owner == "taker"


async def test_each_store_operation_sends_its_own_random_client_request_id(local_stack: LocalStack):
    """x-ms-client-request-id is set by the store (uuid4, one per operation; azure-core's default is a uuid1,
    which takes libuuid's clock lock each time): still unique, so storage's logs tell operations apart."""
    sent: list[str] = []
    connection = local_stack.gateway_env()["TABLES_CONNECTION_STRING"]
    table = TableClient.from_connection_string(
        connection,
        f"rules{uuid.uuid4().hex[:16]}",
        raw_request_hook=lambda request: sent.append(request.http_request.headers["x-ms-client-request-id"]),
    )
    store = TableReservationStore(table)
    await store.create_table()
    try:
        record = await store.insert(in_progress())
        read = await store.get(record.key)
        assert read is not None
        await store.replace(read)
    finally:
        await table.delete_table()
        await store.close()
    operations = sent[1:-1]  # those of the store (not the test's create and delete of its table)
    assert len(operations) == 3
    assert len(set(operations)) == 3
    assert all(uuid.UUID(value).version == 4 for value in operations)


async def test_an_insert_asks_storage_for_no_content_and_keeps_the_etag_it_answers(local_stack: LocalStack):
    """Storage echoes an inserted entity back unless asked not to, and the SDK would parse it: the store asks
    for 204 and keeps only the ETag, which the completion's replace must then match."""
    answers: list[tuple[int, str | None, str | None]] = []

    def hook(response: Any) -> None:
        request, answer = response.http_request, response.http_response
        if request.method == "POST" and not request.url.rstrip("/").endswith("Tables"):
            answers.append((answer.status_code, request.headers.get("Prefer"), answer.headers.get("ETag")))

    connection = local_stack.gateway_env()["TABLES_CONNECTION_STRING"]
    table = TableClient.from_connection_string(connection, f"rules{uuid.uuid4().hex[:16]}", raw_response_hook=hook)
    store = TableReservationStore(table)
    await store.create_table()
    try:
        record = await store.insert(in_progress())
        completed = await store.replace(record)
    finally:
        await table.delete_table()
        await store.close()
    assert answers == [(204, "return-no-content", record.etag)]
    assert record.etag
    assert completed.etag != record.etag
