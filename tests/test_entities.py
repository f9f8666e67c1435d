"""The lease as the Table entity stores it, read back without Azurite: storage's Timestamp plus LeaseSeconds,
the bound on LeaseSeconds, and a record an older gateway wrote without it (docs/IDEMPOTENCY.md, clocks)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import TableEntity

from meetings_core.errors import GatewayError
from meetings_core.idempotency.entities import MAX_STORED_LEASE_SECONDS, from_entity, to_entity
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.refusal import MAX_REFUSAL_CHARS, Refusal
from meetings_core.idempotency.store import RecordUnreadable
from meetings_core.settings import MAX_LEASE_SECONDS
from tests.fake_clock import T0
from tests.rules_rig import CTX, call

WRITTEN = T0 + timedelta(seconds=7)  # storage's Timestamp: after the owner's clock said T0


def in_progress(lease_seconds: float | None) -> Reservation:
    c = call()
    return Reservation(
        key=c.key, fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0", caller=CTX.caller,
        created_at=T0, owner="o", lease_until=T0 + timedelta(seconds=45), request=json.dumps(c.body).encode(),
        lease_seconds=lease_seconds,
    )  # fmt: skip


def stored(properties: dict[str, Any]) -> TableEntity:
    """The entity as the SDK returns it from a read: the properties and storage's metadata."""
    entity = TableEntity(properties)
    entity._metadata = {"etag": "W/1", "timestamp": WRITTEN}
    return entity


@pytest.mark.parametrize("lease", [1.0, 45.0, float(MAX_LEASE_SECONDS), MAX_STORED_LEASE_SECONDS])
def test_a_stored_lease_ends_its_length_after_storages_timestamp(lease: float):
    """Up to the read bound, which is above the longest lease the settings accept (records of a looser setting)."""
    record = from_entity(stored(to_entity(in_progress(lease))))
    assert record.lease_seconds == lease
    assert record.lease_until == WRITTEN + timedelta(seconds=lease)


@pytest.mark.parametrize("lease", [MAX_STORED_LEASE_SECONDS + 0.001, 0.0, -45.0])
def test_a_lease_outside_the_read_bound_is_damage(lease: float):
    entity = to_entity(in_progress(45.0)) | {"LeaseSeconds": lease}
    with pytest.raises(RecordUnreadable, match="LeaseSeconds"):
        from_entity(stored(entity))


def test_a_record_without_lease_seconds_keeps_its_lease_until():
    """Written by a gateway older than the clocks rework: its lease is judged by the end it wrote."""
    entity = to_entity(in_progress(None))
    assert "LeaseSeconds" not in entity
    record = from_entity(stored(entity))
    assert record.lease_seconds is None
    assert record.lease_until == T0 + timedelta(seconds=45)


def test_a_released_record_keeps_its_mark_and_request_and_a_takeover_drops_the_mark():
    released = in_progress(45.0).as_released(T0 + timedelta(seconds=3))
    entity = to_entity(released)
    assert entity["ReleasedAt"] == T0 + timedelta(seconds=3)
    record = from_entity(stored(entity))
    assert (record.released_at, record.request) == (released.released_at, released.request)
    assert record.lease_ended(T0), "a released record waits for its lease"
    assert record.lease_left(T0) == 0.0
    assert released.request is not None
    taken = record.with_owner("taker", T0 + timedelta(seconds=45), "v1.0", released.request, 45.0)
    assert "ReleasedAt" not in to_entity(taken)  # an entity replace drops the property, whichever version writes it


def test_records_without_released_at_and_readers_that_do_not_know_it_read_as_before():
    """A record written before the mark reads as held; the reader reads only the properties it names, so an
    unknown one (as ReleasedAt is to an older gateway) changes nothing: there it is an ordinary lease."""
    entity = to_entity(in_progress(45.0))
    assert "ReleasedAt" not in entity
    record = from_entity(stored(entity))
    assert record.released_at is None
    assert not record.lease_ended(T0)
    assert from_entity(stored(entity | {"SomeLaterProperty": True})) == record


def test_a_completed_record_marked_released_is_damage():
    done = in_progress(45.0).as_completed(201, b'{"id":"m"}', None, T0, timedelta(days=1))
    with pytest.raises(RecordUnreadable, match="released"):
        from_entity(stored(to_entity(done) | {"ReleasedAt": T0}))


REFUSAL = Refusal(400, "BadRequest", "The subject is too long.", (("graph-request-id", "g-1"),), (("graph-date", "d"),))


def test_a_refusal_is_kept_on_its_released_record_and_a_takeover_or_completion_drops_it():
    refused = in_progress(45.0).as_released(T0, REFUSAL)
    record = from_entity(stored(to_entity(refused)))
    assert record.refusal == REFUSAL
    assert record.refusal.error().inner == {"graph-date": "d"}
    assert record.request is not None
    taken = record.with_owner("taker", T0 + timedelta(seconds=45), "v1.0", record.request, 45.0)
    assert "Refusal" not in to_entity(taken)
    done = taken.as_completed(201, b'{"id":"m"}', None, T0, timedelta(days=1))
    assert "Refusal" not in to_entity(done)
    assert "Refusal" not in to_entity(in_progress(45.0).as_released(T0))  # a failure that refused no body


@pytest.mark.parametrize(
    "refusal",
    [
        "not json",
        "[]",
        '{"status": 400, "code": "BadRequest", "message": "m", "headers": {}}',  # a field missing
        '{"status": 503, "code": "x", "message": "m", "headers": {}, "inner": {}}',  # no refusal of the request
        '{"status": true, "code": "x", "message": "m", "headers": {}, "inner": {}}',
        '{"status": 400, "code": 5, "message": "m", "headers": {}, "inner": {}}',
        '{"status": 400, "code": "x", "message": "m", "headers": {"a": 1}, "inner": {}}',
        '{"status": 400, "code": "x", "message": "m", "headers": {}, "inner": [], "more": 1}',
        7,
    ],
)
def test_a_refusal_of_another_shape_is_damage(refusal: object):
    entity = to_entity(in_progress(45.0).as_released(T0, REFUSAL))
    with pytest.raises(RecordUnreadable):
        from_entity(stored(entity | {"Refusal": refusal}))


@pytest.mark.parametrize("state", ["held", "completed"])
def test_a_refusal_on_a_record_that_is_not_released_is_damage(state: str):
    record = in_progress(45.0)
    if state == "completed":
        record = record.as_completed(201, b'{"id":"m"}', None, T0, timedelta(days=1))
    with pytest.raises(RecordUnreadable, match="refusal"):
        from_entity(stored(to_entity(record) | {"Refusal": REFUSAL.to_text()}))


def test_only_graphs_refusals_of_the_request_are_kept():
    assert Refusal.of(GatewayError(403, "Forbidden", "no policy", headers={"graph-request-id": "g"})) == Refusal(
        403, "Forbidden", "no policy", (("graph-request-id", "g"),)
    )
    for status in (408, 429, 500, 502, 503, 504):
        assert Refusal.of(GatewayError(status, "X", "m")) is None, status
    assert Refusal.of(GatewayError(400, "BadRequest", "x" * MAX_REFUSAL_CHARS)) is None  # too long to keep
