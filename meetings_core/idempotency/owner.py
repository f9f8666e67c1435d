"""The owner's path: win the key (insert or takeover), call Graph inside the lease, then record the result,
release the key for takeover, or hold it (docs/IDEMPOTENCY.md, states and transitions)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..errors import GatewayError, retry_after_header
from ..graph.client import GraphClient
from ..graph.errors import OutcomeUnknown
from ..telemetry import signals
from ..validation import CreateOrGetCall
from .answers import unsettled
from .cache import CompletedCache
from .context import EngineConfig, Forward, Lease, Outcome, RequestContext, Turn
from .keys import ReservationKey
from .records import Reservation, State
from .refusal import Refusal
from .store import ReservationChanged, ReservationExists, ReservationStore, StoreError

log = logging.getLogger("meetings_core.idempotency")

# Never call Graph with less than this left of the lease (after the grace): the call could not finish.
MIN_GRAPH_SECONDS = 1.0


@dataclass(slots=True)
class Owner:
    """The steps of whoever holds a key; the duplicate's wait and the status poll share them."""

    store: ReservationStore
    graph: GraphClient
    config: EngineConfig
    cache: CompletedCache
    clock: Callable[[], datetime]

    def turn(self, ctx: RequestContext) -> Turn:
        return Turn(self.clock() + timedelta(seconds=self.config.answer_seconds - ctx.spent_seconds))

    def left(self, turn: Turn) -> float:
        """Seconds left before this answer is due."""
        return (turn.answer_by - self.clock()).total_seconds()

    async def insert(
        self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext, forward: Forward, turn: Turn
    ) -> Reservation | None:
        """The new reservation, or None when the key exists (possibly by our own retried insert)."""
        now = self.clock()
        turn.lease = Lease(now)
        record = Reservation(
            key=key,
            fingerprint=call.fingerprint,
            state=State.IN_PROGRESS,
            api_version=call.api_version,
            caller=ctx.caller,
            created_at=now,
            owner=turn.mine,
            lease_until=now + self.config.lease,
            request=forward.request,
            lease_seconds=self.config.lease.total_seconds(),
        )
        try:
            return await self.store.insert(record)
        except ReservationExists:
            return None

    async def take(self, record: Reservation, forward: Forward, turn: Turn) -> Reservation | None:
        """Become the record's owner by ETag replace, or None if someone else changed it first."""
        now = self.clock()
        # Kept even if the write is reported as a conflict: a retried write may have committed (then ours).
        turn.lease = Lease(now, record if record.state is State.COMPLETED else None)
        lease = self.config.lease
        taken = record.with_owner(turn.mine, now + lease, forward.api_version, forward.request, lease.total_seconds())
        try:
            return await self.store.replace(taken)
        except ReservationChanged:
            return None

    async def own(
        self, record: Reservation, lease: Lease, forward: Forward, ctx: RequestContext, turn: Turn
    ) -> Outcome:
        """Holding the reservation by `lease`: call Graph, then record the result, release the key (or put back
        the completed record the lease write replaced), or hold it."""
        lease_left = self._lease_left(lease)
        # Never in flight during the lease's last grace, and always room for the completion and its re-read.
        budget = min(lease_left - self.config.grace_seconds, self.left(turn) - 2 * self.config.store_seconds)
        if budget < MIN_GRAPH_SECONDS:
            # Acknowledged too late to call Graph inside the lease: let the lease run out untouched.
            raise unsettled(
                "The gateway's reservation for this request was confirmed too late to call Graph safely.", lease_left
            )
        try:
            result = await self.graph.create_or_get(
                forward.api_version,
                forward.organizer_id,
                forward.body,
                client_request_id=ctx.client_request_id,
                deadline_seconds=budget,
            )
        except OutcomeUnknown as exc:
            self._hold(record, exc, lease)
            raise
        except GatewayError as error:
            restore = lease.replaced
            await (self._restore(record, restore) if restore else self._release(record, Refusal.of(error)))
            raise
        except Exception as exc:
            unknown = OutcomeUnknown("The gateway failed while calling Graph.")
            log.exception("unexpected failure in the Graph call", extra={"operation_id": record.key.digest})
            self._hold(record, unknown, lease)
            raise unknown from exc
        now, retention = self.clock(), self.config.retention
        await self._complete(record.as_completed(result.status, result.body, result.request_id, now, retention))
        headers = {"graph-request-id": result.request_id} if result.request_id else {}
        return Outcome(result.status, result.body, headers)

    async def own_taken(
        self, taken: Reservation, lease: Lease, forward: Forward, ctx: RequestContext, turn: Turn, by: str
    ) -> Outcome:
        """`own` a record this request took over (`by`: a waiting duplicate or a status poll), noted as such."""
        log.warning("took over a reservation (%s)", by, extra={"operation_id": taken.key.digest})
        if lease.replaced is None:  # a lease taken over, not a version switch
            signals.took_over(by)
        return await self.own(taken, lease, forward, ctx, turn)

    def _lease_left(self, lease: Lease) -> float:
        """Seconds left of this request's lease, measured from before its write was sent (no other clock)."""
        return self.config.lease.total_seconds() - (self.clock() - lease.sent_at).total_seconds()

    def _hold(self, record: Reservation, exc: OutcomeUnknown, lease: Lease) -> None:
        """Keep the key reserved: Graph may still be creating the meeting until the lease ends."""
        settle_in = self._lease_left(lease)
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
                stored = await self.store.replace(done)
            except ReservationChanged:
                current = await self.store.get(done.key)
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
        self.cache.put(stored)

    async def _release(self, record: Reservation, refusal: Refusal | None) -> None:
        """Graph created nothing: mark the record released (by its ETag, the request kept), so the caller's retry
        takes it over at once and resends it. A status poll, or a duplicate that waited on this call, answers
        Graph's `refusal` of the request when it is kept; without one (Graph never processed the request) they
        take the record over too."""
        try:
            await self.store.replace(record.as_released(self.clock(), refusal))
        except StoreError as exc:
            log.warning(
                "reservation not released (%s); it frees itself when its lease ends",
                type(exc).__name__,
                extra={"operation_id": record.key.digest},
            )

    async def _restore(self, record: Reservation, completed: Reservation) -> None:
        """Graph refused the other version: the key goes back to the meeting it already had."""
        try:
            await self.store.replace(replace(completed, etag=record.etag, read_at=None))
        except StoreError as exc:
            log.warning(
                "completed reservation not restored (%s); the next request asks Graph again",
                type(exc).__name__,
                extra={"operation_id": record.key.digest},
            )
