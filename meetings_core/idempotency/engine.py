"""The reservation state machine: no second request for a key reaches Graph while an earlier one may run.

States and transitions (docs/IDEMPOTENCY.md explains each):
    (none) --insert--> in_progress --Graph 2xx, ETag replace--> completed
    in_progress --Graph's definite error, ETag delete--> (none)
    in_progress --unknown outcome--> in_progress, held until its lease ends
    in_progress(lease ended) --ETag replace by one taker (a duplicate or a status poll)--> in_progress(new owner)
    completed(other API version) --ETag replace--> in_progress(new owner)
    completed --purge after retention--> (none)
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..errors import GatewayError, retry_after_header
from ..graph.client import GraphClient
from ..graph.errors import OutcomeUnknown
from ..telemetry import signals
from ..validation import CreateOrGetCall
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


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    def of_record(cls, record: Reservation) -> _Forward:
        assert record.request is not None
        return cls(record.api_version, record.key.organizer_id, json.loads(record.request))


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
        cached = self._cache.get(key.digest, self._clock())
        try:
            if cached is not None:
                return await self._answer_completed(cached, call, ctx)
            return await self._settle(key, call, ctx)
        except StoreUnavailable as exc:
            raise storage_unavailable(exc) from exc
        except RecordUnreadable as exc:
            raise _unreadable(exc) from exc

    async def status(self, digest: str, ctx: RequestContext) -> Outcome:
        """The status URL: the result once settled; a poll that finds an ended lease finishes the call."""
        try:
            record = await self._visible(digest, ctx)
            if record.lease_ended(self._clock()):
                if not record.request:
                    raise _unrecoverable()
                mine = _owner()
                taken = await self._take(record, mine, _Forward.of_record(record))
                if taken is None:
                    taken = await self._store.get_by_digest(digest)
                if taken is not None and _held_by(taken, mine):
                    log.warning("status poll took over an ended lease", extra={"operation_id": digest})
                    signals.took_over("status_poll")
                    outcome = await self._own(taken, _Forward.of_record(taken), ctx)
                    return replace(outcome, caller=taken.caller)
                record = taken or record
        except StoreUnavailable as exc:
            raise storage_unavailable(exc) from exc
        except RecordUnreadable as exc:
            raise _unreadable(exc) from exc
        if record.state is State.COMPLETED:
            return replace(_stored(record), caller=record.caller)
        return self._accepted(record)

    async def _settle(self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """Claim the key, or wait for whoever holds it and take over a lease that ends meanwhile."""
        mine = _owner()
        forward = _Forward.of_call(call)
        wait_until = self._clock() + timedelta(seconds=self._config.duplicate_wait_seconds)
        delay = _POLL_FIRST_SECONDS
        record = await self._insert(key, call, ctx, mine, forward)
        while True:
            if record is None:
                record = await self._store.get(key)
            if record is None:  # released between our insert and read: race for it again
                record = await self._insert(key, call, ctx, mine, forward)
                continue
            if _held_by(record, mine):  # ours, though the store reported a conflict (a retried write)
                return await self._own(record, forward, ctx)
            if record.state is State.COMPLETED:
                self._cache.put(record)
                return await self._answer_completed(record, call, ctx)
            _check_caller(record, ctx)
            self._check_fingerprint(record, call)
            now = self._clock()
            if ctx.respond_async and not record.lease_ended(now) and record.api_version == call.api_version:
                return self._accepted(record)  # the asynchronous pattern: a status URL at once, no wait
            if record.lease_ended(now):
                taken = await self._take(record, mine, forward)
                if taken is not None:
                    log.warning("took over a reservation", extra={"operation_id": key.digest})
                    signals.took_over("duplicate")
                    return await self._own(taken, forward, ctx)
                record = None
                continue
            if now >= wait_until:
                return self._in_progress(record, ctx)
            pause = min(delay, (wait_until - now).total_seconds(), max(record.lease_left(now), 0.0))
            signals.waiting()
            await self._sleep(max(0.01, pause))
            delay = min(delay * 2, _POLL_MAX_SECONDS)
            record = None

    async def _answer_completed(self, record: Reservation, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """The stored meeting; for the other API version, Graph's (it returns the existing meeting)."""
        _check_caller(record, ctx)
        self._check_fingerprint(record, call)
        if record.api_version == call.api_version:
            headers = {"Idempotent-Replayed": "true"}
            if record.graph_request_id:  # the Graph call that created it, to trace the meeting end to end
                headers["graph-request-id"] = record.graph_request_id
            return Outcome(200, _stored(record).body, headers)
        # The meeting exists, so no reservation is needed: the record keeps its own version's answer.
        try:
            result = await self._graph.create_or_get(
                call.api_version, call.organizer_id, call.body, client_request_id=ctx.client_request_id
            )
        except OutcomeUnknown as exc:
            exc.headers.update(retry_after_header(1))
            raise
        headers = {"graph-request-id": result.request_id} if result.request_id else {}
        return Outcome(result.status, result.body, headers)

    async def _insert(
        self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext, mine: str, forward: _Forward
    ) -> Reservation | None:
        """The new reservation, or None when the key exists (possibly by our own retried insert)."""
        now = self._clock()
        record = Reservation(
            key=key,
            fingerprint=call.fingerprint,
            state=State.IN_PROGRESS,
            api_version=call.api_version,
            caller=ctx.caller,
            created_at=now,
            owner=mine,
            lease_until=now + self._config.lease,
            request=forward.request,
        )
        try:
            return await self._store.insert(record)
        except ReservationExists:
            return None

    async def _take(self, record: Reservation, mine: str, forward: _Forward) -> Reservation | None:
        """Become the record's owner by ETag replace, or None if someone else changed it first."""
        lease_until = self._clock() + self._config.lease
        try:
            return await self._store.replace(record.with_owner(mine, lease_until, forward.api_version, forward.request))
        except ReservationChanged:
            return None

    async def _own(self, record: Reservation, forward: _Forward, ctx: RequestContext) -> Outcome:
        """Holding the reservation: call Graph, then record the result, release the key, or hold it."""
        budget = record.lease_left(self._clock()) - self._config.grace_seconds
        if budget < MIN_GRAPH_SECONDS:
            # Acknowledged too late to call Graph inside the lease: let the lease run out untouched.
            raise _unsettled(
                "The gateway's reservation for this request was confirmed too late to call Graph safely.",
                record.lease_left(self._clock()),
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
            self._hold(record, exc)
            raise
        except GatewayError:
            await self._release(record)
            raise
        except Exception as exc:
            unknown = OutcomeUnknown("The gateway failed while calling Graph.")
            log.exception("unexpected failure in the Graph call", extra={"operation_id": record.key.digest})
            self._hold(record, unknown)
            raise unknown from exc
        now, retention = self._clock(), self._config.retention
        await self._complete(record.as_completed(result.status, result.body, result.request_id, now, retention))
        headers = {"graph-request-id": result.request_id} if result.request_id else {}
        return Outcome(result.status, result.body, headers)

    def _hold(self, record: Reservation, exc: OutcomeUnknown) -> None:
        """Keep the key reserved: Graph may still be creating the meeting until the lease ends."""
        settle_in = record.lease_left(self._clock())
        signals.key_held(record.api_version)
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

    async def _visible(self, digest: str, ctx: RequestContext) -> Reservation:
        """The record behind a status URL, or one 404 for absent, another caller's, and not allowed."""
        record = self._cache.get(digest, self._clock())
        record = record if record is not None and _may_see(record, ctx) else None  # not yours: read like absent
        if record is None and ReservationKey.is_digest(digest):
            try:
                record = await self._store.get_by_digest(digest)
            except RecordUnreadable as exc:  # not named to a poller: that would tell a key exists
                log.error("status poll of an unreadable reservation: %s", exc)
        if record is None or not _may_see(record, ctx):
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

    def _in_progress(self, record: Reservation, ctx: RequestContext) -> Outcome:
        if ctx.respond_async:
            return self._accepted(record)
        retry = retry_after_header(self._retry_after(record))
        if self._config.in_progress_answer == "conflict":
            raise GatewayError(
                409,
                "RequestInProgress",
                "Another request with this externalId for this organizer is still being processed. Send the "
                "same request again after the Retry-After delay to get its meeting, or send "
                "'Prefer: respond-async' to get a status URL to poll.",
                headers=retry,
            )
        raise GatewayError(
            503,
            "RequestInProgress",
            "Another request with this externalId for this organizer is still being processed and did not "
            "finish within the gateway's wait. Send the same request again after the Retry-After delay to get "
            "its meeting.",
            headers=retry,
        )

    def _accepted(self, record: Reservation) -> Outcome:
        return Outcome(
            202,
            b'{"status":"inProgress"}',
            {"Location": f"/operations/{record.key.digest}", **retry_after_header(self._retry_after(record))},
        )

    def _retry_after(self, record: Reservation) -> float:
        return min(_IN_PROGRESS_RETRY_MAX_SECONDS, max(1.0, record.lease_left(self._clock())))


def _stored(record: Reservation) -> Outcome:
    # A completed record always has both (checked when the record is built).
    assert record.status is not None
    assert record.body is not None
    return Outcome(record.status, record.body)


def _held_by(record: Reservation, owner: str) -> bool:
    return record.state is State.IN_PROGRESS and record.owner == owner


def _may_see(record: Reservation, ctx: RequestContext) -> bool:
    mine = record.caller == ctx.caller or ctx.read_others
    return mine and ctx.allows(record.key.organizer_id, record.api_version)


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


def _owner() -> str:
    return uuid.uuid4().hex


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
