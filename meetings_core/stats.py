"""Counts over the reservations table: by state, stuck keys and their age, recent completions.

A stuck key is an in-progress reservation whose lease has ended: its owner died or gave up after an
unknown outcome, and no request for the key came back to finish it (docs/OPERATIONS.md). A released one (its
owner had a definite failure: Graph created nothing) is counted apart: it awaits a retry, nothing is stuck.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .idempotency.records import Reservation, State
from .idempotency.store import ReservationStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Past every expiry and lease: the store's `expired` query then returns every readable record.
_EVERYTHING = timedelta(days=365 * 100)
PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class StuckKeys:
    count: int
    # Seconds since the lease of the oldest stuck reservation ended; 0 when there is none.
    oldest_age_seconds: float


@dataclass(frozen=True, slots=True)
class ReservationStats:
    in_progress: int
    completed: int
    stuck: int
    # In progress, released by an owner after a definite failure: the next request for the key takes it over.
    released: int
    oldest_in_progress_age_seconds: int | None
    oldest_stuck_age_seconds: int | None
    completed_last_hour: int
    completed_last_day: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def stuck_keys(store: ReservationStore, now: datetime) -> StuckKeys:
    """One filtered query: in-progress reservations whose lease ended before `now`."""
    ages = [
        (now - record.lease_until).total_seconds()
        async for page in store.expired(_EPOCH, now, PAGE_SIZE)
        for record in page
        if record.state is State.IN_PROGRESS and record.lease_until is not None and not record.released
    ]
    return StuckKeys(len(ages), max(ages, default=0.0))


async def reservation_stats(store: ReservationStore, now: datetime) -> ReservationStats:
    """Read every record once (an operator's command, not a request path) and count."""
    beyond = now + _EVERYTHING
    records = [record async for page in store.expired(beyond, beyond, PAGE_SIZE) for record in page]
    running = [r for r in records if r.state is State.IN_PROGRESS]
    released = [r for r in running if r.released]
    stuck = [r for r in running if r.lease_ended(now) and not r.released]
    done = [r.completed_at for r in records if r.state is State.COMPLETED and r.completed_at is not None]
    return ReservationStats(
        in_progress=len(running),
        completed=len(records) - len(running),
        stuck=len(stuck),
        released=len(released),
        oldest_in_progress_age_seconds=_oldest(now, [r.created_at for r in running]),
        oldest_stuck_age_seconds=_oldest(now, [_lease_end(r) for r in stuck]),
        completed_last_hour=sum(1 for at in done if at > now - timedelta(hours=1)),
        completed_last_day=sum(1 for at in done if at > now - timedelta(days=1)),
    )


_LABELS = {
    "in_progress": "in progress",
    "completed": "completed",
    "stuck": "stuck (in progress, lease ended)",
    "released": "released, awaiting a retry",
    "oldest_in_progress_age_seconds": "oldest in progress, age (s)",
    "oldest_stuck_age_seconds": "oldest stuck, since its lease ended (s)",
    "completed_last_hour": "completed in the last hour",
    "completed_last_day": "completed in the last day",
}


def print_stats(stats: ReservationStats, *, as_json: bool) -> None:
    """`cli stats`: a two-column table, or one JSON object with the same keys."""
    values = stats.as_dict()
    if as_json:
        print(json.dumps(values))
        return
    width = max(len(label) for label in _LABELS.values())
    for name, label in _LABELS.items():
        value = values[name]
        print(f"{label:<{width}}  {'-' if value is None else value}")


def _lease_end(record: Reservation) -> datetime:
    assert record.lease_until is not None  # in progress: checked when the record is built
    return record.lease_until


def _oldest(now: datetime, moments: list[datetime]) -> int | None:
    return round((now - min(moments)).total_seconds()) if moments else None
