"""The reservation state machine: exactly one request per key reaches Graph at a time.

States and transitions (docs/IDEMPOTENCY.md explains each):
    (none) --insert--> in_progress --Graph 2xx, ETag replace--> completed
    in_progress --Graph error, ETag delete--> (none)
    in_progress(lease ended) --ETag replace by one taker--> in_progress(new owner)
    completed --purge after retention--> (none)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..errors import GatewayError, retry_after_header
from ..graph.client import GraphClient
from ..validation import CreateOrGetCall
from .cache import CompletedCache
from .keys import ReservationKey
from .records import Reservation, State
from .store import ReservationChanged, ReservationExists, ReservationStore, StoreUnavailable

log = logging.getLogger("meetings_core.idempotency")

# Graph must be done this long before the lease ends, so no call is in flight after it.
_LEASE_SAFETY_SECONDS = 2.0
_POLL_FIRST_SECONDS = 0.05
_POLL_MAX_SECONDS = 1.0
_DIGEST = re.compile(r"[0-9a-f]{64}")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the HTTP layer answers: status, JSON body and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking and how they want an unfinished duplicate answered."""

    caller: str
    client_request_id: str
    respond_async: bool = False
    read_others: bool = True


@dataclass(frozen=True, slots=True)
class EngineConfig:
    lease: timedelta
    duplicate_wait_seconds: float
    retention: timedelta
    return_existing_on_mismatch: bool = False


class IdempotencyEngine:
    """Serializes createOrGet per (organizer, externalId) through reservations in a `ReservationStore`."""

    def __init__(
        self,
        store: ReservationStore,
        graph: GraphClient,
        config: EngineConfig,
        cache: CompletedCache,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._graph = graph
        self._config = config
        self._cache = cache
        self._clock = clock

    async def create_or_get(self, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """Answer the call: Graph's result for the owner, the stored result for every duplicate."""
        key = call.key  # (organizer, the externalId Graph sees): scoped per caller, see validation.py
        cached = self._cache.get(key.digest)
        if cached is not None:
            return self._replay(cached, call, ctx)
        try:
            try:
                record = await self._store.insert(self._reservation(key, call, ctx))
            except ReservationExists:
                return await self._join(key, call, ctx)
            return await self._own(record, call, ctx)
        except StoreUnavailable as exc:
            raise _storage_down(exc) from None

    async def status(self, digest: str, ctx: RequestContext) -> Outcome:
        """The status URL of the asynchronous pattern: 202 while in progress, then the final result."""
        record = self._cache.get(digest)
        try:
            if record is None and _DIGEST.fullmatch(digest):
                record = await self._store.get_by_digest(digest)
        except StoreUnavailable as exc:
            raise _storage_down(exc) from None
        if record is None:
            raise GatewayError(
                404,
                "NotFound",
                "No such operation. It may have failed (the original request got the error) or expired; "
                "send the createOrGet request again.",
            )
        _check_caller(record, ctx)
        if record.state is State.COMPLETED:
            return Outcome(record.status or 200, record.body or b"{}")
        return self._accepted(record)

    async def _join(self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """Wait, within the bounded wait, for the key's owner; take over a reservation whose lease ended."""
        deadline = time.monotonic() + self._config.duplicate_wait_seconds
        delay = _POLL_FIRST_SECONDS
        while True:
            record = await self._store.get(key)
            if record is None:  # released between our insert and read: race for it again
                try:
                    record = await self._store.insert(self._reservation(key, call, ctx))
                except ReservationExists:
                    continue
                return await self._own(record, call, ctx)
            _check_caller(record, ctx)
            self._check_fingerprint(record, call)
            if record.state is State.COMPLETED:
                self._cache.put(record)
                return self._replay(record, call, ctx)
            now = self._clock()
            if record.lease_ended(now):
                try:
                    taken = await self._store.replace(record.taken_over(_owner(), now + self._config.lease))
                except ReservationChanged:
                    continue
                log.warning("took over an abandoned reservation", extra={"operation_id": key.digest})
                return await self._own(taken, call, ctx)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._in_progress(record, ctx)
            lease_left = (record.lease_until - now).total_seconds() if record.lease_until else 0.0
            await asyncio.sleep(max(0.01, min(delay, remaining, lease_left)))
            delay = min(delay * 2, _POLL_MAX_SECONDS)

    async def _own(self, record: Reservation, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """Holding the reservation: call Graph, then record the result (or release the key on error)."""
        assert record.lease_until is not None
        budget = (record.lease_until - self._clock()).total_seconds() - _LEASE_SAFETY_SECONDS
        try:
            result = await self._graph.create_or_get(
                call.api_version,
                call.organizer_id,
                call.body,
                client_request_id=ctx.client_request_id,
                deadline_seconds=max(budget, 0.1),
            )
        except GatewayError:
            await self._release(record)
            raise
        done = record.completed(result.status, result.body, result.request_id, self._clock(), self._config.retention)
        try:
            self._cache.put(await self._store.replace(done))
        except (ReservationChanged, StoreUnavailable) as exc:
            # The caller still gets the meeting; a later duplicate recovers the record by takeover.
            log.warning(
                "meeting created but completion not recorded: %s",
                type(exc).__name__,
                extra={"operation_id": record.key.digest},
            )
        headers = {"graph-request-id": result.request_id} if result.request_id else {}
        return Outcome(result.status, result.body, headers)

    async def _release(self, record: Reservation) -> None:
        try:
            await self._store.delete(record)
        except (ReservationChanged, StoreUnavailable) as exc:
            log.warning(
                "reservation not released (%s); it frees itself when its lease ends",
                type(exc).__name__,
                extra={"operation_id": record.key.digest},
            )

    def _reservation(self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext) -> Reservation:
        now = self._clock()
        return Reservation(
            key=key,
            fingerprint=call.fingerprint,
            state=State.IN_PROGRESS,
            api_version=call.api_version,
            caller=ctx.caller,
            created_at=now,
            owner=_owner(),
            lease_until=now + self._config.lease,
        )

    def _check_fingerprint(self, record: Reservation, call: CreateOrGetCall) -> None:
        if record.fingerprint == call.fingerprint or self._config.return_existing_on_mismatch:
            return
        raise GatewayError(
            422,
            "ExternalIdReused",
            f"externalId '{call.external_id}' was already used for this organizer with a different request "
            "body. A retry must send exactly the same body; to create another meeting, use a new externalId.",
        )

    def _replay(self, record: Reservation, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        _check_caller(record, ctx)
        self._check_fingerprint(record, call)
        return Outcome(200, record.body or b"{}", {"Idempotent-Replayed": "true"})

    def _in_progress(self, record: Reservation, ctx: RequestContext) -> Outcome:
        if ctx.respond_async:
            return self._accepted(record)
        raise GatewayError(
            409,
            "RequestInProgress",
            "Another request with this externalId for this organizer is still being processed. Send the "
            "same request again after the Retry-After delay to get its meeting, or send "
            "'Prefer: respond-async' to get a status URL to poll.",
            headers=retry_after_header(self._retry_after(record)),
        )

    def _accepted(self, record: Reservation) -> Outcome:
        return Outcome(
            202,
            b'{"status":"inProgress"}',
            {"Location": f"/operations/{record.key.digest}", **retry_after_header(self._retry_after(record))},
        )

    def _retry_after(self, record: Reservation) -> float:
        if record.lease_until is None:
            return 1.0
        return min(5.0, max(1.0, (record.lease_until - self._clock()).total_seconds()))


def _check_caller(record: Reservation, ctx: RequestContext) -> None:
    if record.caller != ctx.caller and not ctx.read_others:
        raise GatewayError(
            403,
            "Forbidden",
            "This externalId for this organizer belongs to another caller; use your own externalId.",
        )


def _owner() -> str:
    return uuid.uuid4().hex


def _storage_down(exc: StoreUnavailable) -> GatewayError:
    log.error("table storage unavailable: %s", exc)
    return GatewayError(
        503,
        "ServiceUnavailable",
        "The gateway's reservation store is unreachable, so no meeting was requested from Graph. "
        "Send the same request again after the Retry-After delay.",
        headers=retry_after_header(5),
    )
