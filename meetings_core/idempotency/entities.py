"""A reservation as a Table Storage entity, and back: every property's type is checked as it is read, so a
shape the gateway did not write is `RecordUnreadable`, never a crash (docs/IDEMPOTENCY.md)."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from .keys import ROW_KEY, ReservationKey, scoped_external_id
from .records import CorruptRecord, Reservation, State, compress, decompress, deflate
from .refusal import Refusal
from .store import RecordTooLarge, RecordUnreadable

log = logging.getLogger("meetings_core.store")

T = TypeVar("T")
# Table Storage caps a binary property at 64 KiB; larger compressed bodies span numbered properties.
_CHUNK = 64 * 1024
_MAX_CHUNKS = 14
# The most one compressed request (or answer) may take: 14 x 64 KiB = 896 KiB, which leaves the entity's other
# properties (keys, ids, times: under 4 KiB) well inside Table Storage's 1 MiB per entity.
STORED_BYTES_LIMIT = _CHUNK * _MAX_CHUNKS
# The longest stored lease a reader honours; a larger LeaseSeconds is damage (`RecordUnreadable`). Above the
# settings' bound on purpose (settings.MAX_LEASE_SECONDS, 300 s): the first gateway to write LeaseSeconds had
# no upper bound on RESERVATION_LEASE_SECONDS, and a later one may raise it. Honouring a longer lease only delays
# a takeover; refusing a record a gateway wrote makes its key answer 500 until an operator removes it (the purge
# skips it). Every version that reads LeaseSeconds has used this bound, so a mixed fleet agrees on what it reads.
MAX_STORED_LEASE_SECONDS = 3600.0


def to_entity(record: Reservation) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.key.digest,
        "RowKey": ROW_KEY,
        "OrganizerId": record.key.organizer_id,
        "ExternalId": record.key.external_id,
        "Fingerprint": record.fingerprint,
        "State": record.state.value,
        "ApiVersion": record.api_version,
        "Caller": record.caller,
        "CreatedAt": record.created_at,
        "Owner": record.owner,
        "LeaseUntil": record.lease_until,  # this instance's estimate: for the purge query, the CLI, old versions
        "LeaseSeconds": record.lease_seconds,
        "Status": record.status,
        "GraphRequestId": record.graph_request_id,
        "CompletedAt": record.completed_at,
        "ExpiresAt": record.expires_at,
        # Only on a released record; an older gateway ignores it (an ordinary lease) and a takeover drops it.
        "ReleasedAt": record.released_at,
        # Only on a record released after Graph refused its request; older gateways ignore it, a takeover drops it.
        "Refusal": record.refusal.to_text() if record.refusal else None,
    }
    # The request is compact JSON already (Forward.request wrote it, or it was read back from storage): parsing
    # and writing it again, twice per new key, would only cost CPU. Graph's answer is compacted here.
    body, request = _chunked("Body", record.body, compress), _chunked("Request", record.request, deflate)
    if record.state is State.COMPLETED and len(body) + len(request) > _MAX_CHUNKS:
        request = {}  # an entity holds 1 MiB: the meeting comes first; the other version then asks the caller's body
    entity |= body | request
    return {name: value for name, value in entity.items() if value is not None}


def _deflate_bound(size: int) -> int:
    """zlib's compressBound(): the most deflate (as `compress` runs it) can output for `size` bytes."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def largest_storable_body() -> int:
    """The largest JSON body whose stored request always fits: compacting never lengthens JSON (exponent
    floats such as 1e15 aside, refused at insert), a caller's tag adds its length to the externalId."""
    growth = len(scoped_external_id("any caller", ""))
    size = STORED_BYTES_LIMIT - growth
    while _deflate_bound(size + growth) > STORED_BYTES_LIMIT:
        size -= 1
    return size


def _chunked(name: str, data: bytes | None, encode: Callable[[bytes], bytes]) -> dict[str, bytes]:
    if data is None:
        return {}
    blob = encode(data)
    if len(blob) > STORED_BYTES_LIMIT:
        raise RecordTooLarge(f"the {name.lower()}", len(blob), STORED_BYTES_LIMIT)
    chunks = [blob[i : i + _CHUNK] for i in range(0, len(blob), _CHUNK)]
    return {f"{name}{index}": chunk for index, chunk in enumerate(chunks)}


def _unchunked(entity: Any, name: str) -> bytes | None:
    chunks = [entity[f"{name}{i}"] for i in range(_MAX_CHUNKS) if f"{name}{i}" in entity]
    if not all(isinstance(chunk, bytes) for chunk in chunks):
        raise CorruptRecord(f"{name} is not binary")
    blob = b"".join(chunks)
    if not blob:
        return None
    data = decompress(blob)
    if not isinstance(json.loads(data), dict):
        raise CorruptRecord(f"{name} is not a JSON object")
    return data


def from_entity(entity: Any, read_at: datetime | None = None) -> Reservation:
    """The record, or `RecordUnreadable` for any shape the gateway did not write (every field is checked)."""
    try:
        return _reservation(entity, read_at)
    except (CorruptRecord, KeyError, ValueError, TypeError, AttributeError, OverflowError, zlib.error) as exc:
        raise RecordUnreadable(
            f"reservation {entity.get('PartitionKey')} is unreadable ({type(exc).__name__}: {exc})"
        ) from exc


def readable(entity: Any) -> Reservation | None:
    # One corrupt entity must not stop a purge: it is logged for an operator and skipped.
    try:
        return from_entity(entity)
    except RecordUnreadable as exc:
        log.error("skipping an unreadable reservation: %s", exc)
        return None


def _reservation(entity: Any, read_at: datetime | None) -> Reservation:
    lease_seconds = _number(entity, "LeaseSeconds")
    lease_until = _instant(entity, "LeaseUntil")
    if lease_seconds is not None:
        # The lease ends `lease_seconds` after storage wrote the entity, by storage's own clock.
        written_at = entity.metadata["timestamp"]
        if not isinstance(written_at, datetime):
            raise CorruptRecord("the entity has no Timestamp")
        lease_until = written_at + timedelta(seconds=lease_seconds)
    return Reservation(
        key=ReservationKey(_text(entity, "OrganizerId"), _text(entity, "ExternalId")),
        fingerprint=_text(entity, "Fingerprint"),
        state=State(_text(entity, "State")),
        api_version=_text(entity, "ApiVersion"),
        caller=_text(entity, "Caller"),
        created_at=_required(_instant(entity, "CreatedAt"), "CreatedAt"),
        owner=_optional_text(entity, "Owner"),
        lease_until=lease_until,
        request=_unchunked(entity, "Request"),
        status=_integer(entity, "Status"),
        body=_unchunked(entity, "Body"),
        graph_request_id=_optional_text(entity, "GraphRequestId"),
        completed_at=_instant(entity, "CompletedAt"),
        expires_at=_instant(entity, "ExpiresAt"),
        etag=entity.metadata["etag"],
        lease_seconds=lease_seconds,
        read_at=read_at,
        released_at=_instant(entity, "ReleasedAt"),
        refusal=_refusal(entity),
    )


def _refusal(entity: Any) -> Refusal | None:
    text = _optional_text(entity, "Refusal")
    return None if text is None else Refusal.from_text(text)


def _required(value: T | None, name: str) -> T:
    if value is None:
        raise CorruptRecord(f"{name} is missing")
    return value


def _text(entity: Any, name: str) -> str:
    return _required(_optional_text(entity, name), name)


def _optional_text(entity: Any, name: str) -> str | None:
    value = entity.get(name)
    if value is not None and not isinstance(value, str):
        raise CorruptRecord(f"{name} is not a string")
    return value


def _instant(entity: Any, name: str) -> datetime | None:
    value = entity.get(name)
    if value is not None and not (isinstance(value, datetime) and value.tzinfo is not None):
        raise CorruptRecord(f"{name} is not a date and time")
    return value


def _integer(entity: Any, name: str) -> int | None:
    value = entity.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise CorruptRecord(f"{name} is not an integer")
    return value


def _number(entity: Any, name: str) -> float | None:
    value = entity.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_STORED_LEASE_SECONDS:
        raise CorruptRecord(f"{name} is not a number of seconds in range")
    return float(value)
