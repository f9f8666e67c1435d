"""Retention: delete completed records past their expiry and reservations abandoned long ago."""

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
