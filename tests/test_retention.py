"""Retention purge and the operator CLI, against Azurite."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest.mock import ANY

import pytest
from azure.data.tables.aio import TableClient

from meetings_core.idempotency.context import Forward
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.purge import RELEASED_KEPT_FOR, purge
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.table_store import TableReservationStore
from meetings_core.validation import validate_call
from tests.stackutil import ORGANIZER, Stack

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
MINUTE = timedelta(minutes=1)


def record(state: State, *, lease_until: datetime | None = None, expires_at: datetime | None = None) -> Reservation:
    return Reservation(
        key=ReservationKey(ORGANIZER.lower(), f"purge-{uuid.uuid4()}"),
        fingerprint="f",
        state=state,
        api_version="v1.0",
        caller="test",
        created_at=NOW - timedelta(days=40),
        owner="o" if state is State.IN_PROGRESS else None,
        lease_until=lease_until,
        status=201 if state is State.COMPLETED else None,
        body=b'{"id": "m"}' if state is State.COMPLETED else None,
        expires_at=expires_at,
    )


async def test_purge_deletes_expired_and_abandoned_records_in_pages(stack: Stack):
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    try:
        await store.create_table()
        expired = [await store.insert(record(State.COMPLETED, expires_at=NOW - timedelta(days=1))) for _ in range(5)]
        abandoned = await store.insert(record(State.IN_PROGRESS, lease_until=NOW - timedelta(hours=2)))
        kept = [
            await store.insert(record(State.COMPLETED, expires_at=NOW + timedelta(days=1))),
            await store.insert(record(State.IN_PROGRESS, lease_until=NOW - timedelta(minutes=5))),
            await store.insert(record(State.IN_PROGRESS, lease_until=NOW + timedelta(minutes=5))),
        ]
        report = await purge(store, NOW, page_size=2)
        assert report.expired >= 5
        assert report.abandoned >= 1
        assert report.pages >= 3
        for gone in [*expired, abandoned]:
            assert await store.get(gone.key) is None
        for alive in kept:
            assert await store.get(alive.key) is not None
    finally:
        await store.close()


async def test_purge_deletes_a_released_record_once_no_status_url_can_reach_it(stack: Stack):
    """Released after a definite failure and taken over by nobody: kept while a status URL handed out before the
    release may still be polled (RELEASED_KEPT_FOR), deleted after; `cli stuck` never lists it."""
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    lease_ended = NOW - RELEASED_KEPT_FOR - timedelta(hours=2)  # long past the abandoned bound of an ordinary lease
    try:
        await store.create_table()
        young = await store.insert(
            replace(record(State.IN_PROGRESS, lease_until=lease_ended), released_at=NOW - RELEASED_KEPT_FOR + MINUTE)
        )
        old = await store.insert(
            replace(record(State.IN_PROGRESS, lease_until=lease_ended), released_at=NOW - RELEASED_KEPT_FOR - MINUTE)
        )
        assert young.key.digest not in cli(stack, "stuck").stdout
        report = await purge(store, NOW, page_size=1000)
        assert report.abandoned >= 1
        assert await store.get(old.key) is None
        kept = await store.get(young.key)
        assert kept is not None, "a released record was purged while a status URL could still reach it"
        assert kept.released_at == young.released_at
    finally:
        await store.close()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TABLES_CONNECTION_STRING": stack.tables}
    return subprocess.run(
        [sys.executable, "-m", "meetings_core.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_cli_shows_lists_and_releases_a_stuck_reservation(stack: Stack):
    """`release` marks the record released (as the engine does): kept, no longer stuck; `remove` deletes it."""
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    stuck = await store.insert(record(State.IN_PROGRESS, lease_until=NOW - timedelta(minutes=1)))
    await store.close()
    organizer, external_id = stuck.key.organizer_id, stuck.key.external_id

    shown = cli(stack, "show", organizer, external_id)
    assert shown.returncode == 0, shown.stderr
    assert '"state": "in_progress"' in shown.stdout
    assert '"releasedAt": null' in shown.stdout
    assert stuck.key.digest in cli(stack, "stuck").stdout
    released = cli(stack, "release", organizer, external_id)
    assert released.returncode == 0, released.stderr
    kept = await stack.store_get(stuck.key)
    assert kept is not None, "release deleted the record: a poller of its status URL would get 404"
    assert kept.released_at is not None
    assert (kept.state, kept.owner, kept.fingerprint) == (stuck.state, stuck.owner, stuck.fingerprint)
    assert stuck.key.digest not in cli(stack, "stuck").stdout  # released: awaiting a retry, not stuck
    again = cli(stack, "release", organizer, external_id)
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "already released: the next request or status poll for it takes it over",
    )
    removed = cli(stack, "remove", organizer, external_id)
    assert removed.returncode == 0, removed.stderr
    assert cli(stack, "show", organizer, external_id).returncode == 1
    bad = cli(stack, "show", "not-a-guid", "x")
    assert bad.returncode == 2
    assert "GUID" in bad.stderr


def _held_by_a_lost_owner(body: dict[str, object], lease_until: datetime) -> Reservation:
    """What a gateway writes for `body` from a function-key caller, held by an owner that is gone."""
    call = validate_call("v1.0", ORGANIZER.lower(), body)
    return Reservation(
        key=call.key,
        fingerprint=call.fingerprint,
        state=State.IN_PROGRESS,
        api_version="v1.0",
        caller="function-key",
        created_at=NOW,
        owner="lost-owner",
        lease_until=lease_until,
        request=Forward.of_call(call).request,
    )


async def test_cli_release_of_a_live_lease_needs_force_and_its_poller_then_gets_the_meeting(stack: Stack):
    """Released, not deleted: a caller polling its status URL gets the meeting at once, never 404."""
    import httpx

    from tests.stackutil import body_for, create_url

    body = body_for()
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    await store.create_table()
    live = await store.insert(_held_by_a_lost_owner(body, datetime.now(UTC) + timedelta(minutes=5)))
    await store.close()
    organizer, external_id = live.key.organizer_id, live.key.external_id
    refused = cli(stack, "release", organizer, external_id)
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert (await stack.store_get(live.key)) == replace(live, read_at=ANY)  # untouched
    forced = cli(stack, "release", organizer, external_id, "--force")
    assert forced.returncode == 0, forced.stderr
    async with httpx.AsyncClient(timeout=30) as client:
        polled = await client.get(f"{stack.gateway}/operations/{live.key.digest}")
        retried = await client.post(create_url(stack.gateway), json=body)
    assert polled.status_code == 201, polled.text
    assert polled.json()["externalId"] == body["externalId"]
    assert (retried.status_code, retried.json()["id"]) == (200, polled.json()["id"])
    assert (await stack.graph_stats())["creates"] == 1


async def test_cli_release_leaves_a_completed_record_and_remove_force_deletes_it(stack: Stack):
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    await store.create_table()
    done = await store.insert(record(State.COMPLETED, expires_at=NOW + timedelta(days=1)))
    await store.close()
    organizer, external_id = done.key.organizer_id, done.key.external_id
    for args in (("release",), ("release", "--force"), ("remove",)):
        refused = cli(stack, *args, organizer, external_id)
        assert refused.returncode == 1, args
        assert "completed" in refused.stderr
        assert await stack.store_get(done.key) is not None, args
    assert "remove --force" in cli(stack, "release", organizer, external_id).stderr
    assert cli(stack, "remove", organizer, external_id, "--force").returncode == 0
    assert await stack.store_get(done.key) is None


def test_cli_show_names_the_refusal_a_poll_answers():
    from meetings_core import cli as cli_module
    from meetings_core.idempotency.refusal import Refusal

    held = record(State.IN_PROGRESS, lease_until=NOW)
    refused = held.as_released(NOW, Refusal(403, "Forbidden", "no access policy"))
    assert cli_module._describe(refused)["refusal"] == "403 Forbidden"
    assert cli_module._describe(held.as_released(NOW))["refusal"] is None


async def test_store_maps_missing_records_and_tables_to_its_own_errors(stack: Stack):
    from meetings_core.idempotency.store import ReservationChanged, StoreUnavailable

    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    await store.create_table()
    gone = await store.insert(record(State.COMPLETED, expires_at=NOW))
    await store.delete(gone)
    # Deleted meanwhile (by the purge or an operator). A second delete is silent on Azurite (Azure answers
    # 404, which the store maps the same way), so the replace shows the mapping here.
    with pytest.raises(ReservationChanged):
        await store.replace(gone)
    await store.close()
    missing = TableReservationStore(TableClient.from_connection_string(stack.tables, "nosuchtable"))
    with pytest.raises(StoreUnavailable):
        await missing.insert(record(State.IN_PROGRESS, lease_until=NOW))
    await missing.close()


async def test_an_unreadable_record_is_named_skipped_by_the_purge_and_removable(stack: Stack):
    import httpx

    from tests.stackutil import body_for, create_url

    body = body_for()
    key = ReservationKey(ORGANIZER.lower(), body["externalId"])
    async with TableClient.from_connection_string(stack.tables, "meetingreservations") as table:
        await TableReservationStore(table).create_table()
        # Completed and expired, so the purge's query lists it, but without the fields a record needs.
        corrupt = {"PartitionKey": key.digest, "RowKey": "reservation", "State": "completed"}
        await table.upsert_entity({**corrupt, "ExpiresAt": NOW - timedelta(days=1)})
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    expired = await store.insert(record(State.COMPLETED, expires_at=NOW - timedelta(days=1)))
    report = await purge(store, datetime.now(UTC), page_size=1000)  # the corrupt entity is in the listing
    assert await store.get(expired.key) is None
    assert report.expired >= 1
    await store.close()
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.post(create_url(stack.gateway), json=body)
        assert refused.status_code == 500
        assert "remove --force" in refused.json()["error"]["message"]
        assert (await stack.graph_stats())["calls"] == 0
        shown = cli(stack, "show", key.organizer_id, key.external_id)
        assert shown.returncode == 1
        assert "remove --force" in shown.stderr
        not_released = cli(stack, "release", key.organizer_id, key.external_id, "--force")  # nothing to mark
        assert not_released.returncode == 1
        assert "remove --force" in cli(stack, "show", key.organizer_id, key.external_id).stderr  # still there
        assert cli(stack, "remove", key.organizer_id, key.external_id, "--force").returncode == 0
        created = await client.post(create_url(stack.gateway), json=body)
    assert created.status_code == 201
