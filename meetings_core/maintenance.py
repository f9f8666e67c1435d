"""The purge timer's work: measure stuck keys, purge, and report both (metrics and one log line)."""

from __future__ import annotations

import logging
from datetime import datetime

from .idempotency.purge import PurgeReport, purge
from .idempotency.store import ReservationStore
from .stats import StuckKeys, stuck_keys
from .telemetry import flush, instruments
from .telemetry.names import PURGE_LOG_MESSAGE

log = logging.getLogger("meetings_core.purge")


async def purge_and_measure(store: ReservationStore, now: datetime) -> tuple[PurgeReport, StuckKeys]:
    """Count stuck keys before the purge deletes the long-abandoned ones, so each is seen at least once."""
    stuck = await stuck_keys(store, now)
    instruments.stuck_keys.set(stuck.count)
    instruments.stuck_oldest_age.set(stuck.oldest_age_seconds)
    report = await purge(store, now)
    log.info(
        PURGE_LOG_MESSAGE,
        extra={
            "expired": report.expired,
            "abandoned": report.abandoned,
            "skipped": report.skipped,
            "stuck": stuck.count,
            "stuck_oldest_age_seconds": round(stuck.oldest_age_seconds),
        },
    )
    flush()  # the worker may be recycled right after a timer run
    return report, stuck
