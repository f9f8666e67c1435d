"""The status URL: the result once settled, in the version its caller asked in; a poll that finds an ended
lease (or the meeting stored in the other version) finishes the call from the request on the record, and a
request Graph refused is answered with that refusal."""

from __future__ import annotations

import logging
from dataclasses import replace

from ..validation import API_VERSIONS
from .answers import accepted, may_see, operation_not_found, retry_after, stored, unrecoverable
from .context import Forward, Outcome, RequestContext
from .keys import ReservationKey
from .owner import Owner
from .records import Reservation, State
from .store import RecordUnreadable

log = logging.getLogger("meetings_core.idempotency")


class StatusPoll:
    """Answers `/operations/{digest}_{version}` (a bare digest: the record's own version)."""

    def __init__(self, owner: Owner) -> None:
        self._owner = owner

    async def __call__(self, operation_id: str, ctx: RequestContext) -> Outcome:
        owner = self._owner
        digest, versioned, asked = operation_id.partition("_")
        turn = owner.turn(ctx)
        record = await self._visible(digest, asked if versioned else None, ctx)
        version = asked or record.api_version  # status URLs made before versions were named
        if record.refusal is not None and version == record.api_version:
            # Graph refused this very request. Sending it again would hold the key, for Graph's whole call, against
            # the caller's corrected request (a 422); the caller's own request (the same body, or another) takes it.
            raise record.refusal.error()
        if record.lease_ended(record.judged_at(owner.clock())) or _other_version(record, version):
            if not record.request:
                raise unrecoverable()
            forward = Forward.of_record(record, version)
            taken = await owner.take(record, forward, turn)
            if taken is None:
                taken = await owner.store.get_by_digest(digest)
            if taken is not None and (lease := turn.held(taken)) is not None:
                outcome = await owner.own_taken(taken, lease, forward, ctx, turn, "status_poll")
                return replace(outcome, caller=taken.caller)
            record = taken or record
        if record.state is State.COMPLETED and record.api_version == version:
            return replace(stored(record), caller=record.caller)
        return accepted(record, version, retry_after(record, owner.clock()))

    async def _visible(self, digest: str, version: str | None, ctx: RequestContext) -> Reservation:
        """The record behind a status URL, or one 404 for absent, another caller's, and not allowed."""
        record = self._owner.cache.get(digest, self._owner.clock())
        if record is not None and not may_see(record, ctx, version or record.api_version):
            record = None  # not yours: read the store like an absent id, so the two take the same time
        known = ReservationKey.is_digest(digest) and (version is None or version in API_VERSIONS)
        if record is None and known:
            try:
                record = await self._owner.store.get_by_digest(digest)
            except RecordUnreadable as exc:  # not named to a poller: that would tell a key exists
                log.error("status poll of an unreadable reservation: %s", exc)
        if record is None or not known or not may_see(record, ctx, version or record.api_version):
            raise operation_not_found()
        return record


def _other_version(record: Reservation, version: str) -> bool:
    return record.state is State.COMPLETED and record.api_version != version
