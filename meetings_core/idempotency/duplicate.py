"""A createOrGet that finds its key taken: wait for the owner's result, take over a lease that ends
meanwhile (or a meeting stored in the other API version), or answer "in progress" in time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from ..telemetry import signals
from ..validation import CreateOrGetCall
from .answers import accepted, busy, check_caller, check_fingerprint, replayed, retry_after
from .context import Forward, Outcome, RequestContext, Turn
from .keys import ReservationKey
from .owner import Owner
from .records import Reservation, State
from .refusal import Refusal

_POLL_FIRST_SECONDS = 0.05
_POLL_MAX_SECONDS = 1.0


class Settle:
    """Claims a key for one call, or waits for whoever holds it; every step checks the answer's deadline."""

    def __init__(self, owner: Owner, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._owner = owner
        self._sleep = sleep

    async def __call__(self, key: ReservationKey, call: CreateOrGetCall, ctx: RequestContext, turn: Turn) -> Outcome:
        owner, config = self._owner, self._owner.config
        forward = Forward.of_call(call)
        wait_until = min(owner.clock() + timedelta(seconds=config.duplicate_wait_seconds), turn.answer_by)
        delay = _POLL_FIRST_SECONDS
        waited = False
        record = await owner.insert(key, call, ctx, forward, turn)
        while True:
            if record is None:
                if owner.left(turn) < config.store_seconds:
                    raise busy(config, 1.0)
                record = await owner.store.get(key)
            if record is None:  # released between our insert and read: race for it again, if time allows
                if owner.left(turn) < config.owner_step_seconds:
                    raise busy(config, 1.0)
                record = await owner.insert(key, call, ctx, forward, turn)
                continue
            if (lease := turn.held(record)) is not None:  # ours: just inserted, or a retried write that committed
                return await owner.own(record, lease, forward, ctx, turn)
            check_caller(record, ctx)
            if waited and (refusal := _refusal_of(record, call)) is not None:
                # It waited on the very call Graph refused: that answer, as a poll gets it. Sending the body again
                # would hold the key, for Graph's whole call, against the caller's corrected request (a 422).
                raise refusal.error()
            record = _corrected(record, call)
            check_fingerprint(record, call, config)
            now = record.judged_at(owner.clock())  # storage's clock, for the lease
            if record.state is State.COMPLETED:
                owner.cache.put(record)
                if record.api_version == call.api_version:
                    return replayed(record)
            elif ctx.respond_async and not record.lease_ended(now):
                return self._in_progress(record, call, ctx)  # the asynchronous pattern: a status URL at once
            if record.lease_ended(now) or record.state is State.COMPLETED:
                if owner.left(turn) < config.owner_step_seconds:
                    return self._in_progress(record, call, ctx)
                taken = await owner.take(record, forward, turn)
                if taken is not None and (lease := turn.held(taken)) is not None:
                    return await owner.own_taken(taken, lease, forward, ctx, turn, "duplicate")
                record = None
                continue
            if owner.clock() >= wait_until:
                return self._in_progress(record, call, ctx)
            left_to_wait = (wait_until - owner.clock()).total_seconds()
            signals.waiting()
            await self._sleep(max(0.01, min(delay, left_to_wait, max(record.lease_left(now), 0.0))))
            waited = True
            delay = min(delay * 2, _POLL_MAX_SECONDS)
            record = None

    def replay(self, record: Reservation, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """A completed record in the caller's version (from the cache): checked, then answered without Graph."""
        check_caller(record, ctx)
        check_fingerprint(record, call, self._owner.config)
        return replayed(record)

    def _in_progress(self, record: Reservation, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        retry_in = retry_after(record, self._owner.clock())
        if ctx.respond_async:
            return accepted(record, call.api_version, retry_in)
        raise busy(self._owner.config, retry_in)


def _refusal_of(record: Reservation, call: CreateOrGetCall) -> Refusal | None:
    """Graph's refusal of this very body in this version, if the record keeps one (only while released)."""
    if record.api_version == call.api_version and record.fingerprint in call.fingerprints:
        return record.refusal
    return None


def _corrected(record: Reservation, call: CreateOrGetCall) -> Reservation:
    """A released record taken over with another body: Graph created nothing for the old one, so a corrected request
    goes through (as when the key was deleted); the takeover writes the new body's fingerprint."""
    if record.released and record.fingerprint not in call.fingerprints:
        return replace(record, fingerprint=call.fingerprint)
    return record
