"""What one answer carries through the engine: its settings, the caller, its deadline and what it sends."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..validation import CreateOrGetCall
from .records import Reservation, State

_WALL_ANCHOR = datetime.now(UTC)
_MONOTONIC_ANCHOR = time.monotonic()


def utcnow() -> datetime:
    """UTC that never steps: owners measure their lease by it, so an NTP step cannot stretch a lease."""
    return _WALL_ANCHOR + timedelta(seconds=time.monotonic() - _MONOTONIC_ANCHOR)


def _allow_all(organizer_id: str, api_version: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the HTTP layer answers: status, JSON body and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # Whose record answered (a status poll may be another caller's, with `readOthers`).
    caller: str | None = None
    # The completed record a replay was answered from: the HTTP layer keeps the answer for the same bytes.
    replay_of: Reservation | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, what they may see, and how they want an unfinished duplicate answered."""

    caller: str
    client_request_id: str
    respond_async: bool = False
    read_others: bool = False
    # The caller's policy for (organizer id, API version); the status URL checks it on the stored record.
    allows: Callable[[str, str], bool] = _allow_all
    # Seconds the HTTP layer spent before the engine was called (body read, authentication): the answer's
    # deadline counts from the request's arrival, not from the engine's start.
    spent_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    lease: timedelta
    duplicate_wait_seconds: float
    retention: timedelta
    # Time Graph keeps to finish a call after the gateway gave up on it (docs/IDEMPOTENCY.md, clocks).
    grace_seconds: float = 15.0
    return_existing_on_mismatch: bool = False
    in_progress_answer: Literal["retry", "conflict"] = "retry"
    # One deadline for the whole answer, checked before each step (settings.answer_limit_seconds).
    answer_seconds: float = 110.0
    # The most one store operation takes, and the Graph deadline: what an owner's step needs left.
    store_seconds: float = 5.0
    graph_deadline_seconds: float = 30.0

    @property
    def owner_step_seconds(self) -> float:
        """Time an owner needs: its write and re-read, Graph's deadline, the completion and its re-read."""
        return 4 * self.store_seconds + self.graph_deadline_seconds


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease write this request sent: when (its stopwatch starts there, docs/IDEMPOTENCY.md "Clocks"), and the
    completed record it replaced (a switch of API version), to put back if Graph refuses."""

    sent_at: datetime
    replaced: Reservation | None = None


@dataclass(slots=True)
class Turn:
    """One answer: when it is due, this request's owner token, and its last lease write."""

    answer_by: datetime
    mine: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Set just before each insert or takeover is sent, so a record under `mine` always has it.
    lease: Lease | None = None

    def held(self, record: Reservation) -> Lease | None:
        """This request's lease if the record is in progress under its token (its own write, maybe retried)."""
        return self.lease if record.state is State.IN_PROGRESS and record.owner == self.mine else None


@dataclass(frozen=True, slots=True)
class Forward:
    """What the owner sends to Graph: from the caller's call, or from the record a poll took over."""

    api_version: str
    organizer_id: str
    body: dict[str, Any]

    @property
    def request(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def of_call(cls, call: CreateOrGetCall) -> Forward:
        return cls(call.api_version, call.organizer_id, call.body)

    @classmethod
    def of_record(cls, record: Reservation, api_version: str) -> Forward:
        """The request the record keeps, sent in `api_version` (the status URL's, maybe not the record's)."""
        assert record.request is not None  # the poll checks it first: a record without one is unrecoverable
        return cls(api_version, record.key.organizer_id, json.loads(record.request))
