"""The reservation record and its two states."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .keys import ReservationKey


class State(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Reservation:
    """One (organizer, externalId): who holds it and until when, or Graph's final answer."""

    key: ReservationKey
    fingerprint: str
    state: State
    api_version: str
    caller: str
    created_at: datetime
    owner: str | None = None
    lease_until: datetime | None = None
    status: int | None = None
    body: bytes | None = None
    graph_request_id: str | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    etag: str | None = None

    def lease_ended(self, now: datetime) -> bool:
        return self.state is State.IN_PROGRESS and (self.lease_until is None or self.lease_until <= now)

    def taken_over(self, owner: str, lease_until: datetime) -> Reservation:
        return replace(self, owner=owner, lease_until=lease_until)

    def completed(
        self, status: int, body: bytes, graph_request_id: str | None, now: datetime, retention: timedelta
    ) -> Reservation:
        return replace(
            self,
            state=State.COMPLETED,
            owner=None,
            lease_until=None,
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
    compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
    return zlib.compress(compact, 6)


def decompress(blob: bytes) -> bytes:
    return zlib.decompress(blob)
