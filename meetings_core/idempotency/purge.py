"""Retention: delete completed records past their expiry, reservations abandoned long ago, and released ones
nobody took over while a status URL for them could still be polled."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from .records import State
from .store import ReservationChanged, ReservationStore

log = logging.getLogger("meetings_core.purge")

# An in-progress record whose lease ended this long ago has no owner left; a new request for its key
# simply asks Graph again, which returns the meeting if the lost owner created it.
ABANDONED_AFTER = timedelta(hours=1)
# A released record waits this long after its release for a poller to take it over: the longest a status URL
# handed out before the release stays valid (settings: STATUS_URL_TTL_SECONDS is at most 86400). Every status URL
# handed out later is a poll's, which takes the record over; so past this bound no poll can reach it.
RELEASED_KEPT_FOR = timedelta(seconds=86400)


@dataclass(slots=True)
class PurgeReport:
    expired: int = 0
    abandoned: int = 0
    skipped: int = 0
    pages: int = 0


async def purge(store: ReservationStore, now: datetime, *, page_size: int = 100) -> PurgeReport:
    """Delete, page by page, each record past retention; a record changed meanwhile is left alone."""
    report = PurgeReport()
    async for page in store.expired(now, now - ABANDONED_AFTER, page_size):
        report.pages += 1
        for record in page:
            if record.released_at is not None and record.released_at > now - RELEASED_KEPT_FOR:
                continue  # a poller may still come for it: kept, and read again by the next run
            try:
                await store.delete(record)
            except ReservationChanged:
                report.skipped += 1
                continue
            if record.state is State.COMPLETED:
                report.expired += 1
            else:
                report.abandoned += 1
        log.info("purge page done", extra={"page": report.pages, "deleted": report.expired + report.abandoned})
    return report
