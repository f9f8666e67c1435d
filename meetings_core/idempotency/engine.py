"""The reservation state machine: no second request for a key reaches Graph while an earlier one may run.

States and transitions (docs/IDEMPOTENCY.md explains each):
    (none) --insert--> in_progress --Graph 2xx, ETag replace--> completed
    in_progress --Graph's definite error, ETag replace--> in_progress(released: anyone takes it over at once;
        with Graph's refusal of the request kept, a status poll answers it and only a POST takes it over)
    in_progress --unknown outcome--> in_progress, held until its lease ends
    in_progress(lease ended or released) --ETag replace by one taker (a duplicate, a status poll or a retry)-->
        in_progress(new owner)
    completed(other API version) --ETag replace--> in_progress(new owner) --> completed in that version
    completed --purge after retention--> (none)
    in_progress(released) --purge once no status URL for it can be polled--> (none)

Who acts, one module each: the owner (`owner.py`), a duplicate that waits and takes over (`duplicate.py`),
a status poll (`poll.py`); `answers.py` holds the engine's own answers, `context.py` what a request carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from ..graph.client import GraphClient
from ..validation import CreateOrGetCall
from .answers import operation_not_found, storage_unavailable, unreadable
from .cache import CompletedCache
from .context import EngineConfig, Outcome, RequestContext, utcnow
from .duplicate import Settle
from .owner import MIN_GRAPH_SECONDS, Owner
from .poll import StatusPoll
from .replays import ReplayIndex
from .store import RecordUnreadable, ReservationStore, StoreUnavailable

__all__ = [
    "MIN_GRAPH_SECONDS",
    "EngineConfig",
    "IdempotencyEngine",
    "Outcome",
    "RequestContext",
    "operation_not_found",
    "storage_unavailable",
    "utcnow",
]


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
        self._owner = Owner(store, graph, config, cache, clock)
        self._settle = Settle(self._owner, sleep)
        self._poll = StatusPoll(self._owner)
        # As many answers as records: one request's bytes per record, unless a caller varies the bytes.
        self.replays = ReplayIndex(cache.size, cache, clock)

    async def create_or_get(self, call: CreateOrGetCall, ctx: RequestContext) -> Outcome:
        """Answer the call: Graph's result for the owner, the stored result for every duplicate."""
        key = call.key  # (organizer, the externalId Graph sees): scoped per caller, see validation.py
        owner = self._owner
        cached = owner.cache.get(key.digest, owner.clock())
        if cached is not None and cached.api_version == call.api_version:
            # The same checks as a stored replay (duplicate.py): whose key, and the same body. No store call.
            return self._settle.replay(cached, call, ctx)
        return await _store_failures_answered(self._settle(key, call, ctx, owner.turn(ctx)))

    async def status(self, operation_id: str, ctx: RequestContext) -> Outcome:
        """The status URL: the result once settled, in the version the caller asked in; a poll that finds an
        ended lease (or the meeting stored in the other version) finishes the call."""
        return await _store_failures_answered(self._poll(operation_id, ctx))


async def _store_failures_answered(answer: Awaitable[Outcome]) -> Outcome:
    """The answer, or the one documented error for a store that cannot be reached or a record it cannot read."""
    try:
        return await answer
    except StoreUnavailable as exc:
        raise storage_unavailable(exc) from exc
    except RecordUnreadable as exc:
        raise unreadable(exc) from exc
