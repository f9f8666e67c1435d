"""The reservation record and its two states."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .keys import ReservationKey
from .refusal import Refusal


class State(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class CorruptRecord(ValueError):
    """A stored record lacks a field its state requires."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """One (organizer, externalId): who holds it and until when, or Graph's final answer.

    `owner` is the token of the request that last held the key (kept after completion, so a request
    recognises its own write); `request` is the Graph request body, so any reader can finish the call.
    Read from Table Storage, `lease_until` and `read_at` are on storage's clock (docs/IDEMPOTENCY.md, clocks).
    """

    key: ReservationKey
    fingerprint: str
    state: State
    api_version: str
    caller: str
    created_at: datetime
    owner: str | None = None
    lease_until: datetime | None = None
    request: bytes | None = None
    status: int | None = None
    body: bytes | None = None
    graph_request_id: str | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    etag: str | None = None
    # The lease's length, kept so that storage can date its end by its own clock (the entity's Timestamp).
    # Every lease this version writes has it; None on a completed record, and on an in-progress one written by
    # a gateway older than the clocks rework (its lease is judged by `lease_until`, docs/IDEMPOTENCY.md).
    lease_seconds: float | None = None
    # Storage's time when this record was read (the answer's Date header); None for a record not read back.
    read_at: datetime | None = None
    # When its owner released it after a definite failure (Graph created nothing; this instance's clock): any
    # request for the key may take it over at once. None on a held or completed record (docs/IDEMPOTENCY.md).
    released_at: datetime | None = None
    # Graph's refusal of this record's request, kept when its owner released it after one (a status poll answers
    # it instead of sending the request again); None otherwise, and on any other record (docs/IDEMPOTENCY.md).
    refusal: Refusal | None = None

    def __post_init__(self) -> None:
        if self.state is State.IN_PROGRESS and (self.owner is None or self.lease_until is None):
            raise CorruptRecord(f"in-progress record {self.key.digest} has no owner or lease")
        if self.state is State.COMPLETED and (self.status is None or self.body is None or self.expires_at is None):
            raise CorruptRecord(f"completed record {self.key.digest} has no status, body or expiry")
        if self.state is State.COMPLETED and self.released_at is not None:
            raise CorruptRecord(f"completed record {self.key.digest} is marked released")
        if self.refusal is not None and not (self.state is State.IN_PROGRESS and self.released):
            raise CorruptRecord(f"record {self.key.digest} keeps a refusal but is not released")

    def judged_at(self, local_now: datetime) -> datetime:
        """The instant to judge this record's lease at: storage's clock when it was read (the Table store
        always gives it, or fails the read), else `local_now` (a store with no clock of its own, in tests)."""
        return self.read_at or local_now

    @property
    def released(self) -> bool:
        return self.released_at is not None

    def lease_ended(self, now: datetime) -> bool:
        """An in-progress record anyone may take over: its lease ran out, or its owner released it (no grace)."""
        if self.state is not State.IN_PROGRESS:
            return False
        return self.released or (self.lease_until is not None and self.lease_until <= now)

    def lease_left(self, now: datetime) -> float:
        """Seconds until the lease ends (negative once it has); 0 for a completed or released record."""
        return (self.lease_until - now).total_seconds() if self.lease_until is not None and not self.released else 0.0

    def as_released(self, now: datetime, refusal: Refusal | None = None) -> Reservation:
        """The same in-progress record (its request kept), released by its owner at `now`: Graph created nothing;
        `refusal` when Graph refused the request itself."""
        return replace(self, released_at=now, refusal=refusal, read_at=None)

    def with_owner(
        self, owner: str, lease_until: datetime, api_version: str, request: bytes, lease_seconds: float
    ) -> Reservation:
        """The in-progress record taken over by `owner` for `lease_seconds` (until `lease_until` by its clock), to
        send `request` to `api_version` (from an ended lease, or from a meeting completed in the other version)."""
        return replace(
            self,
            state=State.IN_PROGRESS,
            owner=owner,
            lease_until=lease_until,
            lease_seconds=lease_seconds,
            api_version=api_version,
            request=request,
            status=None,
            body=None,
            graph_request_id=None,
            completed_at=None,
            expires_at=None,
            read_at=None,
            released_at=None,
            refusal=None,
        )

    def as_completed(
        self, status: int, body: bytes, graph_request_id: str | None, now: datetime, retention: timedelta
    ) -> Reservation:
        """The record holding Graph's answer; the owner and the request are kept (the other version needs it)."""
        return replace(
            self,
            state=State.COMPLETED,
            lease_until=None,
            lease_seconds=None,
            read_at=None,
            released_at=None,
            refusal=None,
            status=status,
            body=body,
            graph_request_id=graph_request_id,
            completed_at=now,
            expires_at=now + retention,
        )

    def meeting(self) -> dict[str, Any]:
        return dict(json.loads(self.body or b"{}"))


def compress(body: bytes) -> bytes:
    """Compact JSON, deflated: meeting bodies shrink about fourfold."""
    return deflate(json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode())


def deflate(compact: bytes) -> bytes:
    """JSON that is compact already (a stored request, as `Forward.request` writes it), deflated as `compress` does."""
    return zlib.compress(compact, 6)


def decompress(blob: bytes) -> bytes:
    return zlib.decompress(blob)
