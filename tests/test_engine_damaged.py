"""Issue 19 item 3: every stored shape the gateway did not write is unreadable, never a crash. Against Azurite,
with hand-written damaged entities: the key answers the documented 500 naming the CLI command (no Graph call),
the purge logs and skips it and carries on with the page, `cli show` shows it and `remove --force` deletes it."""

from __future__ import annotations

import base64
import json
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from meetings_core import cli
from meetings_core.idempotency.context import Forward
from meetings_core.idempotency.entities import to_entity
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.purge import purge
from meetings_core.idempotency.records import Reservation, State, compress
from meetings_core.idempotency.store import RecordUnreadable
from meetings_core.idempotency.table_store import TableReservationStore
from tests.stackutil import ORGANIZER, Stack, body_for, create_url

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
Damage = Callable[[dict[str, Any]], None]


def _set(**values: Any) -> Damage:
    return lambda entity: entity.update(values)


DAMAGES: dict[str, Damage] = {
    "string LeaseUntil": _set(LeaseUntil="2026-03-01T09:00:00Z"),
    "string LeaseSeconds": _set(LeaseSeconds="45"),
    "LeaseSeconds out of range": _set(LeaseSeconds=1e12),
    "string request chunk": _set(Request0="not bytes"),
    "string body chunk": _set(Body0="not bytes"),
    "body chunk not deflated": _set(Body0=b"\x00garbage"),
    "body not JSON": _set(Body0=zlib.compress(b"not json")),
    "body a JSON list": _set(Body0=zlib.compress(b"[1, 2]")),
    "string Status": _set(Status="201"),
    "string CreatedAt": _set(CreatedAt="yesterday"),
    "numeric Caller": _set(Caller=7),
    "unknown State": _set(State="finished"),
    "missing Fingerprint": lambda entity: entity.pop("Fingerprint"),
}


def _valid(key: ReservationKey, state: State) -> dict[str, Any]:
    """The entity the gateway writes (completed and expired, or in progress with an ended lease)."""
    completed = state is State.COMPLETED
    record = Reservation(
        key=key, fingerprint="f", state=state, api_version="v1.0", caller="function-key",
        created_at=NOW - timedelta(days=40), owner="o",
        lease_until=None if completed else NOW - timedelta(hours=2),
        lease_seconds=None if completed else 45.0, request=b'{"externalId": "x"}',
        status=201 if completed else None, body=b'{"id": "m"}' if completed else None,
        expires_at=NOW - timedelta(days=1) if completed else None,
    )  # fmt: skip
    return to_entity(record)


def _damaged(key: ReservationKey, name: str) -> dict[str, Any]:
    state = State.IN_PROGRESS if "Lease" in name or "request" in name else State.COMPLETED
    entity = _valid(key, state)
    DAMAGES[name](entity)
    return entity


async def _cli(stack: Stack, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    try:
        code = await cli._dispatch(store, cli._parser().parse_args(args))
    finally:
        await store.close()
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_damaged_record_is_unreadable_everywhere(stack: Stack, damage: str, capsys: pytest.CaptureFixture[str]):
    body = body_for()
    key = ReservationKey(ORGANIZER.lower(), body["externalId"])
    async with TableClient.from_connection_string(stack.tables, "meetingreservations") as table:
        await TableReservationStore(table).create_table()
        await table.upsert_entity(_damaged(key, damage), mode=UpdateMode.REPLACE)
        store = TableReservationStore(table)
        with pytest.raises(RecordUnreadable):
            await store.get(key)
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.post(create_url(stack.gateway), json=body)
        assert refused.status_code == 500, refused.text
        assert refused.json()["error"]["code"] == "InternalServerError"
        assert "python -m meetings_core.cli remove --force" in refused.json()["error"]["message"]
        assert (await stack.graph_stats())["calls"] == 0
        code, shown, err = await _cli(stack, capsys, "show", key.organizer_id, key.external_id)
        assert code == 1
        assert "remove --force" in err
        assert key.digest in shown  # the stored properties, for a look at what is damaged
        code, _, _ = await _cli(stack, capsys, "remove", key.organizer_id, key.external_id, "--force")
        assert code == 0
        created = await client.post(create_url(stack.gateway), json=body)
    assert created.status_code == 201


async def test_the_purge_skips_damaged_records_and_carries_on_with_the_page(
    stack: Stack, caplog: pytest.LogCaptureFixture
):
    keys = [ReservationKey(ORGANIZER.lower(), f"damaged-{name}-{NOW.timestamp()}") for name in DAMAGES]
    async with TableClient.from_connection_string(stack.tables, "meetingreservations") as table:
        store = TableReservationStore(table)
        await store.create_table()
        for key, name in zip(keys, DAMAGES, strict=True):
            await table.upsert_entity(_damaged(key, name), mode=UpdateMode.REPLACE)
        good = [ReservationKey(ORGANIZER.lower(), f"expired-{i}-{NOW.timestamp()}") for i in range(3)]
        for key in good:
            await table.upsert_entity(_valid(key, State.COMPLETED))
        with caplog.at_level(logging.ERROR, logger="meetings_core.store"):
            report = await purge(store, datetime.now(UTC), page_size=1000)
        for key in good:
            assert await store.get(key) is None  # after the damaged ones on the same page
        assert report.expired >= len(good)
        assert "skipping an unreadable reservation" in caplog.text
        for key in keys:
            await store.remove(key)


def test_a_completed_entity_drops_the_kept_request_before_it_outgrows_an_entity():
    """Table Storage holds 1 MiB per entity: the meeting's body comes first, the request only if both fit."""
    key = ReservationKey(ORGANIZER.lower(), "big")
    # Random base64 deflates to about three quarters: 13 chunks of body, 2 of request, 15 > 14.
    big_body = json.dumps({"id": "m", "padding": base64.b64encode(os.urandom(820_000)).decode()}).encode()
    request = json.dumps({"externalId": "x", "padding": base64.b64encode(os.urandom(100_000)).decode()}).encode()
    small = Reservation(
        key=key, fingerprint="f", state=State.COMPLETED, api_version="v1.0", caller="c", created_at=NOW,
        owner="o", request=request, status=201, body=b'{"id": "m"}', expires_at=NOW,
    )  # fmt: skip
    assert any(name.startswith("Request") for name in to_entity(small))
    large = replace(small, body=big_body)
    entity = to_entity(large)
    assert not any(name.startswith("Request") for name in entity)
    assert sum(name.startswith("Body") for name in entity) <= 14


def test_the_stored_request_is_deflated_as_it_is_and_graphs_answer_compacted_first():
    """The request is compact JSON already (Forward.request): stored as `compress` would store it, without a
    second parse; Graph's answer may carry whitespace, so it is compacted before it is deflated."""
    forward = Forward("v1.0", ORGANIZER.lower(), {"externalId": "é x", "subject": "s", "n": 1e15})
    record = Reservation(
        key=ReservationKey(ORGANIZER.lower(), "é x"), fingerprint="f", state=State.COMPLETED, api_version="v1.0",
        caller="c", created_at=NOW, owner="o", request=forward.request, status=201,
        body=b'{ "id": "m",\n  "subject": "s" }', expires_at=NOW,
    )  # fmt: skip
    entity = to_entity(record)
    assert entity["Request0"] == compress(forward.request)
    assert zlib.decompress(entity["Body0"]) == b'{"id":"m","subject":"s"}'
