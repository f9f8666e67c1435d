"""The reservation state machine: no second request for a key reaches Graph while an earlier one may run.

States and transitions (docs/IDEMPOTENCY.md explains each):
    (none) --insert--> in_progress --Graph 2xx, ETag replace--> completed
    in_progress --Graph's definite error, ETag delete--> (none)
    in_progress --unknown outcome--> in_progress, held until its lease ends
    in_progress(lease ended) --ETag replace by one taker (a duplicate or a status poll)--> in_progress(new owner)
    completed(other API version) --ETag replace--> in_progress(new owner) --> completed in that version
    completed --purge after retention--> (none)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..errors import GatewayError, retry_after_header
from ..graph.client import GraphClient
from ..graph.errors import OutcomeUnknown
from ..validation import API_VERSIONS, CreateOrGetCall
from .cache import CompletedCache
from .keys import ReservationKey
from .records import Reservation, State
from .store import (
    RecordUnreadable,
    ReservationChanged,
    ReservationExists,
    ReservationStore,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger("meetings_core.idempotency")

# Never call Graph with less than this left of the lease (after the grace): the call could not finish.
MIN_GRAPH_SECONDS = 1.0
_POLL_FIRST_SECONDS = 0.05
_POLL_MAX_SECONDS = 1.0
_IN_PROGRESS_RETRY_MAX_SECONDS = 5.0


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


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, what they may see, and how they want an unfinished duplicate answered."""

    caller: str
    client_request_id: str
    respond_async: bool = False
    read_others: bool = False
    # The caller's policy for (organizer id, API version); the status URL checks it on the stored record.
    allows: Callable[[str, str], bool] = _allow_all


@dataclass(frozen=True, slots=True)
class EngineConfig:
    lease: timedelta
    duplicate_wait_seconds: float
    retention: timedelta
    # Time Graph keeps to finish a call after the gateway gave up on it, and room for clock skew.
    grace_seconds: float = 15.0
    return_existing_on_mismatch: bool = False
    in_progress_answer: Literal["retry", "conflict"] = "retry"
    # One deadline for the whole answer, checked before each step (settings.ANSWER_LIMIT_SECONDS).
    answer_seconds: float = 110.0
    # The most one store operation takes, and the Graph deadline: what an owner's step needs left.
    store_seconds: float = 5.0
    graph_deadline_seconds: float = 30.0

    @property
    def owner_step_seconds(self) -> float:
        """Time an owner needs: its write and re-read, Graph's deadline, the completion and its re-read."""
        return 4 * self.store_seconds + self.graph_deadline_seconds


@dataclass(frozen=True, slots=True)
class _Forward:
    """What the owner sends to Graph: from the caller's call, or from the record a poll took over."""

    api_version: str
    organizer_id: str
    body: dict[str, Any]

    @property
    def request(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def of_call(cls, call: CreateOrGetCall) -> _Forward:
        return cls(call.api_version, call.organizer_id, call.body)

    @classmethod
    def of_record(cls, record: Reservation, api_version: str | None = None) -> _Forward:
        assert record.request is not None
        return cls(api_version or record.api_version, record.key.organizer_id, json.loads(record.request))


@dataclass(slots=True)
class _Turn:
    """One answer: when it is due, this request's owner token, and when it last sent a lease write."""

    answer_by: datetime
    mine: str = field(default_factory=lambda: uuid.uuid4().hex)
    leased_at: datetime | None = None


class IdempotencyEngine:
    """Serializes createOrGet per (organizer, externalId) through reservations in a `ReservationStore`."""

    def __init__(
        self,
        store: ReservationStore,
        graph: GraphClient,
        config: EngineConfig,
        cache: CompletedCache,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._graph = graph
        self._config = config
        self._cache = cache
        self._clock = clock
        self._sleep = sleep

    async def create_or_get(self, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """Answer the call: Graph's result for the owner, the stored result for every duplicate."""
        key = call.key  # (organizer, the externalId Graph sees): scoped per caller, see validation.py
        turn = self._turn()
        cached = self._cache.get(key.digest, self._clock())
        try:
            if cached is not None and cached.api_version == call.api_version:
                return self._replayed(cached, call, ctx)
            return await self._settle(key, call, ctx, turn)
        except StoreUnavailable as exc:
            raise storage_unavailable(exc) from exc
        except RecordUnreadable as exc:
            raise _unreadable(exc) from exc

    async def status(self, operation_id: str, ctx: RequestContext) -> Outcome:
        """The status URL: the result once settled, in the version the caller asked in; a poll that finds an
        ended lease (or the meeting stored in the other version) finishes the call."""
        digest, versioned, asked = operation_id.partition("_")
        turn = self._turn()
        try:
            record = await self._visible(digest, asked if versioned else None, ctx)
            version = asked or record.api_version  # status URLs made before versions were named
            if record.lease_ended(record.judged_at(self._clock())) or _other_version(record, version):
                if not record.request:
                    raise _unrecoverable()
                forward = _Forward.of_record(record, version)
                taken = await self._take(record, forward, turn)
                if taken is None:
                    taken = await self._store.get_by_digest(digest)
                if taken is not None and _held_by(taken, turn.mine):
                    log.warning("status poll took over the reservation", extra={"operation_id": digest})
                    restore = record if record.state is State.COMPLETED else None
                    outcome = await self._own(taken, forward, ctx, turn, restore)
                    return replace(outcome, caller=taken.caller)
                record = taken or record
        except StoreUnavailable as exc:
            raise storage_unavailable(exc) from exc
        except RecordUnreadable as exc:
            raise _unreadable(exc) from exc
        if record.state is State.COMPLETED and record.api_version == version:
            return replace(_stored(record), caller=record.caller)
        return self._accepted(record, version)

    def _turn(self) -> _Turn:
        return _Turn(self._clock() + timedelta(seconds=self._config.answer_seconds))

    def _left(self, turn: _Turn) -> float:
        """Seconds left before this answer is due."""
        return (turn.answer_by - self._clock()).total_seconds()

    async def _settle(self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext, turn: _Turn) -> Outcome:
        """Claim the key, or wait for whoever holds it and take over a lease that ends meanwhile."""
        forward = _Forward.of_call(call)
        wait_until = min(self._clock() + timedelta(seconds=self._config.duplicate_wait_seconds), turn.answer_by)
        delay = _POLL_FIRST_SECONDS
        record = await self._insert(key, call, ctx, forward, turn)
        while True:
            if record is None:
                if self._left(turn) < self._config.store_seconds:
                    raise self._busy(key, call.api_version, ctx, 1.0)
                record = await self._store.get(key)
            if record is None:  # released between our insert and read: race for it again, if time allows
                if self._left(turn) < self._config.owner_step_seconds:
                    raise self._busy(key, call.api_version, ctx, 1.0)
                record = await self._insert(key, call, ctx, forward, turn)
                continue
            if _held_by(record, turn.mine):  # ours, though the store reported a conflict (a retried write)
                return await self._own(record, forward, ctx, turn)
            _check_caller(record, ctx)
            self._check_fingerprint(record, call)
            now = record.judged_at(self._clock())  # storage's clock, for the lease
            if record.state is State.COMPLETED:
                self._cache.put(record)
                if record.api_version == call.api_version:
                    return self._replayed(record, call, ctx)
            elif ctx.respond_async and not record.lease_ended(now):
                return self._accepted(record, call.api_version)  # the asynchronous pattern: a status URL at once
            if record.lease_ended(now) or record.state is State.COMPLETED:
                if self._left(turn) < self._config.owner_step_seconds:
                    return self._in_progress(record, call.api_version, ctx)
                taken = await self._take(record, forward, turn)
                if taken is not None:
                    log.warning("took over a reservation", extra={"operation_id": key.digest})
                    restore = record if record.state is State.COMPLETED else None
                    return await self._own(taken, forward, ctx, turn, restore)
                record = None
                continue
            if self._clock() >= wait_until:
                return self._in_progress(record, call.api_version, ctx)
            left_to_wait = (wait_until - self._clock()).total_seconds()
            await self._sleep(max(0.01, min(delay, left_to_wait, max(record.lease_left(now), 0.0))))
            delay = min(delay * 2, _POLL_MAX_SECONDS)
            record = None

    def _replayed(self, record: Reservation, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """The stored meeting, answered without Graph."""
        _check_caller(record, ctx)
        self._check_fingerprint(record, call)
        headers = {"Idempotent-Replayed": "true"}
        if record.graph_request_id:  # the Graph call that created it, to trace the meeting end to end
            headers["graph-request-id"] = record.graph_request_id
        return Outcome(200, _stored(record).body, headers)

    async def _insert(
        self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext, forward: _Forward, turn: _Turn
    ) -> Reservation | None:
        """The new reservation, or None when the key exists (possibly by our own retried insert)."""
        now = turn.leased_at = self._clock()
        record = Reservation(
            key=key,
            fingerprint=call.fingerprint,
            state=State.IN_PROGRESS,
            api_version=call.api_version,
            caller=ctx.caller,
            created_at=now,
            owner=turn.mine,
            lease_until=now + self._config.lease,
            request=forward.request,
            lease_seconds=self._config.lease.total_seconds(),
        )
        try:
            return await self._store.insert(record)
        except ReservationExists:
            return None

    async def _take(self, record: Reservation, forward: _Forward, turn: _Turn) -> Reservation | None:
        """Become the record's owner by ETag replace, or None if someone else changed it first."""
        now = turn.leased_at = self._clock()
        lease = self._config.lease
        taken = record.with_owner(turn.mine, now + lease, forward.api_version, forward.request, lease.total_seconds())
        try:
            return await self._store.replace(taken)
        except ReservationChanged:
            return None

    def _lease_left(self, turn: _Turn) -> float:
        """Seconds left of this request's lease, measured from before its write was sent (no other clock)."""
        sent = turn.leased_at or self._clock()
        return self._config.lease.total_seconds() - (self._clock() - sent).total_seconds()

    async def _own(
        self,
        record: Reservation,
        forward: _Forward,
        ctx: RequestContext,
        turn: _Turn,
        restore: Reservation | None = None,
    ) -> Outcome:
        """Holding the reservation: call Graph, then record the result, release the key, or hold it.
        `restore` is the completed record this owner replaced, put back if Graph refuses."""
        lease_left = self._lease_left(turn)
        # Never in flight during the lease's last grace, and always room for the completion and its re-read.
        budget = min(lease_left - self._config.grace_seconds, self._left(turn) - 2 * self._config.store_seconds)
        if budget < MIN_GRAPH_SECONDS:
            # Acknowledged too late to call Graph inside the lease: let the lease run out untouched.
            raise _unsettled(
                "The gateway's reservation for this request was confirmed too late to call Graph safely.", lease_left
            )
        try:
            result = await self._graph.create_or_get(
                forward.api_version,
                forward.organizer_id,
                forward.body,
                client_request_id=ctx.client_request_id,
                deadline_seconds=budget,
            )
        except OutcomeUnknown as exc:
            self._hold(record, exc, turn)
            raise
        except GatewayError:
            await (self._restore(record, restore) if restore else self._release(record))
            raise
        except Exception as exc:
            unknown = OutcomeUnknown("The gateway failed while calling Graph.")
            log.exception("unexpected failure in the Graph call", extra={"operation_id": record.key.digest})
            self._hold(record, unknown, turn)
            raise unknown from exc
        now, retention = self._clock(), self._config.retention
        await self._complete(record.as_completed(result.status, result.body, result.request_id, now, retention))
        headers = {"graph-request-id": result.request_id} if result.request_id else {}
        return Outcome(result.status, result.body, headers)

    def _hold(self, record: Reservation, exc: OutcomeUnknown, turn: _Turn) -> None:
        """Keep the key reserved: Graph may still be creating the meeting until the lease ends."""
        settle_in = self._lease_left(turn)
        log.warning(
            "Graph outcome unknown (%s); the key stays reserved for %.0f s",
            exc.reason,
            settle_in,
            extra={"operation_id": record.key.digest},
        )
        exc.headers.update(retry_after_header(settle_in + 1))

    async def _complete(self, done: Reservation) -> None:
        """Store Graph's answer; on failure the caller still gets it and a later taker re-records it."""
        try:
            try:
                stored = await self._store.replace(done)
            except ReservationChanged:
                current = await self._store.get(done.key)
                if current is None or current.owner != done.owner or current.state is not State.COMPLETED:
                    raise
                stored = current  # our own replace, retried by the SDK after it had committed
        except StoreError as exc:
            log.warning(
                "meeting created but completion not recorded: %s",
                type(exc).__name__,
                extra={"operation_id": done.key.digest},
            )
            return
        self._cache.put(stored)

    async def _release(self, record: Reservation) -> None:
        try:
            await self._store.delete(record)
        except StoreError as exc:
            log.warning(
                "reservation not released (%s); it frees itself when its lease ends",
                type(exc).__name__,
                extra={"operation_id": record.key.digest},
            )

    async def _restore(self, record: Reservation, completed: Reservation) -> None:
        """Graph refused the other version: the key goes back to the meeting it already had."""
        try:
            await self._store.replace(replace(completed, etag=record.etag, read_at=None))
        except StoreError as exc:
            log.warning(
                "completed reservation not restored (%s); the next request asks Graph again",
                type(exc).__name__,
                extra={"operation_id": record.key.digest},
            )

    async def _visible(self, digest: str, version: str | None, ctx: RequestContext) -> Reservation:
        """The record behind a status URL, or one 404 for absent, another caller's, and not allowed."""
        record = self._cache.get(digest, self._clock())
        known = ReservationKey.is_digest(digest) and (version is None or version in API_VERSIONS)
        if record is None and known:
            try:
                record = await self._store.get_by_digest(digest)
            except RecordUnreadable as exc:  # not named to a poller: that would tell a key exists
                log.error("status poll of an unreadable reservation: %s", exc)
        if record is None or not known or not _may_see(record, ctx, version or record.api_version):
            raise operation_not_found()
        return record

    def _check_fingerprint(self, record: Reservation, call: CreateOrGetCall) -> None:
        if record.fingerprint in call.fingerprints or self._config.return_existing_on_mismatch:
            return
        raise GatewayError(
            422,
            "ExternalIdReused",
            f"externalId '{call.external_id}' was already used for this organizer with a different request "
            "body. A retry must send exactly the same body; to create another meeting, use a new externalId.",
        )

    def _in_progress(self, record: Reservation, version: str, ctx: RequestContext) -> Outcome:
        if ctx.respond_async:
            return self._accepted(record, version)
        raise self._busy(record.key, version, ctx, self._retry_after(record))

    def _busy(self, key: ReservationKey, version: str, ctx: RequestContext, retry_in: float) -> GatewayError:
        """Past the wait (or out of time for another step): come back after Retry-After."""
        retry = retry_after_header(retry_in)
        if self._config.in_progress_answer == "conflict":
            return GatewayError(
                409,
                "RequestInProgress",
                "Another request with this externalId for this organizer is still being processed. Send the "
                "same request again after the Retry-After delay to get its meeting, or send "
                "'Prefer: respond-async' to get a status URL to poll.",
                headers=retry,
            )
        return GatewayError(
            503,
            "RequestInProgress",
            "Another request with this externalId for this organizer is still being processed and did not "
            "finish within the gateway's wait. Send the same request again after the Retry-After delay to get "
            "its meeting.",
            headers=retry,
        )

    def _accepted(self, record: Reservation, version: str) -> Outcome:
        # The status URL names the caller's version: it answers the meeting in that version's shape.
        return Outcome(
            202,
            b'{"status":"inProgress"}',
            {
                "Location": f"/operations/{record.key.digest}_{version}",
                **retry_after_header(self._retry_after(record)),
            },
        )

    def _retry_after(self, record: Reservation) -> float:
        return min(_IN_PROGRESS_RETRY_MAX_SECONDS, max(1.0, record.lease_left(record.judged_at(self._clock()))))


def _other_version(record: Reservation, version: str) -> bool:
    return record.state is State.COMPLETED and record.api_version != version


def _stored(record: Reservation) -> Outcome:
    # A completed record always has both (checked when the record is built).
    assert record.status is not None
    assert record.body is not None
    return Outcome(record.status, record.body)


def _held_by(record: Reservation, owner: str) -> bool:
    return record.state is State.IN_PROGRESS and record.owner == owner


def _may_see(record: Reservation, ctx: RequestContext, version: str) -> bool:
    mine = record.caller == ctx.caller or ctx.read_others
    return (
        mine
        and ctx.allows(record.key.organizer_id, record.api_version)
        and ctx.allows(record.key.organizer_id, version)
    )


def _check_caller(record: Reservation, ctx: RequestContext) -> None:
    if record.caller != ctx.caller and not ctx.read_others:
        raise GatewayError(
            403,
            "Forbidden",
            "This externalId for this organizer belongs to another caller; use your own externalId.",
        )


def operation_not_found() -> GatewayError:
    """The one answer for an unknown, expired or not-yours operation id (and a bad status URL signature)."""
    return GatewayError(
        404,
        "NotFound",
        "No such operation. It may have failed (the original request got the error) or expired; "
        "send the createOrGet request again.",
    )


def _unreadable(exc: RecordUnreadable) -> GatewayError:
    log.error("reservation unreadable: %s", exc)
    return GatewayError(
        500,
        "InternalServerError",
        "The gateway's reservation for this externalId cannot be read, so no request was sent to Graph. An "
        "operator must remove it: python -m meetings_core.cli release --force <organizerId> <externalId> "
        "(with --caller <caller id> for an entra or hmac caller).",
    )


def _unrecoverable() -> GatewayError:
    return GatewayError(
        404,
        "NotFound",
        "This operation was abandoned by a gateway version that did not keep the request for recovery; send the "
        "createOrGet request again to finish it.",
    )


def _unsettled(message: str, settle_in: float) -> GatewayError:
    return GatewayError(
        503,
        "ServiceUnavailable",
        f"{message} No request reached Graph; send the same request again after the Retry-After delay.",
        headers=retry_after_header(settle_in + 1),
    )


def storage_unavailable(exc: StoreUnavailable) -> GatewayError:
    """The one answer for an unreachable reservation store: 503, no Graph call made."""
    log.error("table storage unavailable: %s", exc)
    return GatewayError(
        503,
        "ServiceUnavailable",
        "The gateway's reservation store is unreachable, so no meeting was requested from Graph. "
        "Send the same request again after the Retry-After delay.",
        headers=retry_after_header(5),
    )
