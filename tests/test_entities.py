"""The lease as the Table entity stores it, read back without Azurite: storage's Timestamp plus LeaseSeconds,
the bound on LeaseSeconds, and a record an older gateway wrote without it (docs/IDEMPOTENCY.md, clocks)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import TableEntity

from meetings_core.idempotency.entities import MAX_STORED_LEASE_SECONDS, from_entity, to_entity
from meetings_core.idempotency.records import Reservation, State
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
