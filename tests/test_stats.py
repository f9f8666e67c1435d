"""`cli stats` and the purge timer's stuck-key count, against Azurite, with records in every state."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableClient

from meetings_core import maintenance
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.table_store import TableReservationStore
from meetings_core.maintenance import purge_and_measure
from meetings_core.stats import reservation_stats
from tests.otel_memory import collect
from tests.stackutil import ORGANIZER, Stack

pytestmark = pytest.mark.integration
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def running(now: datetime, *, created: timedelta, lease_left: timedelta) -> Reservation:
    """In progress, created `created` ago, its lease ending `lease_left` from now (negative: ended)."""
    return Reservation(
        key=ReservationKey(ORGANIZER.lower(), f"stats-{uuid.uuid4()}"),
        fingerprint="f",
        state=State.IN_PROGRESS,
        api_version="v1.0",
        caller="function-key",
        created_at=now - created,
        owner="o",
        lease_until=now + lease_left,
        request=b'{"externalId": "x"}',
    )


def done(now: datetime, *, completed: timedelta, expires_in: timedelta = 30 * DAY) -> Reservation:
    record = running(now, created=completed + MINUTE, lease_left=-completed)
    return record.as_completed(201, b'{"id": "m"}', "g", now - completed, completed + expires_in)


def every_state(now: datetime) -> list[Reservation]:
    return [
        running(now, created=MINUTE, lease_left=40 * timedelta(seconds=1)),  # live: an owner is calling Graph
        running(now, created=41 * MINUTE, lease_left=-40 * MINUTE),  # stuck for 40 minutes
        running(now, created=2 * HOUR + MINUTE, lease_left=-2 * HOUR),  # stuck 2 h: the purge abandons it
        # Released 3 h ago after a definite failure: not stuck (the next request takes it over), and a status URL
        # handed out before its release may still be polled, so the purge keeps it.
        replace(running(now, created=3 * HOUR, lease_left=-3 * HOUR), released_at=now - 3 * HOUR),
        done(now, completed=10 * MINUTE),
        done(now, completed=3 * HOUR),
        done(now, completed=2 * DAY),
        done(now, completed=31 * DAY, expires_in=-DAY),  # past retention: the purge deletes it
    ]


@pytest.fixture
async def table(stack: Stack) -> AsyncIterator[tuple[str, TableReservationStore]]:
    """A fresh table holding one record in each state."""
    name = f"stats{uuid.uuid4().hex[:12]}"
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, name))
    await store.create_table()
    for record in every_state(datetime.now(UTC)):
        await store.insert(record)
    yield name, store
    await store.close()


def cli(stack: Stack, table: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TABLES_CONNECTION_STRING": stack.tables, "TABLE_NAME": table}
    return subprocess.run(
        [sys.executable, "-m", "meetings_core.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


EXPECTED = {
    "in_progress": 4,
    "completed": 4,
    "stuck": 2,
    "released": 1,
    "completed_last_hour": 1,
    "completed_last_day": 2,
}


async def test_cli_stats_counts_every_state_as_json_and_as_a_table(stack: Stack, table):
    name, _ = table
    result = cli(stack, name, "stats", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert {key: stats[key] for key in EXPECTED} == EXPECTED
    assert abs(stats["oldest_in_progress_age_seconds"] - 3 * 3600) < 60
    assert abs(stats["oldest_stuck_age_seconds"] - 2 * 3600) < 60

    shown = cli(stack, name, "stats")
    assert shown.returncode == 0, shown.stderr
    rows = {label.strip(): int(value) for label, value in (line.rsplit("  ", 1) for line in shown.stdout.splitlines())}
    ages = {"oldest in progress, age (s)": 3 * 3600, "oldest stuck, since its lease ended (s)": 2 * 3600}
    assert all(abs(rows.pop(label) - age) < 60 for label, age in ages.items())
    assert rows == {
        "in progress": 4,
        "completed": 4,
        "stuck (in progress, lease ended)": 2,
        "released, awaiting a retry": 1,
        "completed in the last hour": 1,
        "completed in the last day": 2,
    }


async def test_cli_stats_of_an_empty_table_has_no_ages(stack: Stack):
    name = f"stats{uuid.uuid4().hex[:12]}"
    store = TableReservationStore(TableClient.from_connection_string(stack.tables, name))
    await store.create_table()
    await store.close()
    stats = json.loads(cli(stack, name, "stats", "--json").stdout)
    assert stats == dict.fromkeys(EXPECTED, 0) | {
        "oldest_in_progress_age_seconds": None,
        "oldest_stuck_age_seconds": None,
    }


async def test_purge_timer_counts_stuck_keys_before_it_deletes_the_abandoned_one(table, caplog, monkeypatch):
    _, store = table
    now = datetime.now(UTC)
    # The run ends with a flush; the in-memory reader is read below instead (OpenTelemetry SDKs before 1.45
    # report a gauge's value to one collection only, so a flush here would leave the reader nothing to show).
    flushed: list[bool] = []
    monkeypatch.setattr(maintenance, "flush", lambda: flushed.append(True))
    with caplog.at_level(logging.INFO, logger="meetings_core.purge"):
        report, stuck = await purge_and_measure(store, now)
    assert (stuck.count, round(stuck.oldest_age_seconds)) == (2, 2 * 3600)
    assert (report.expired, report.abandoned) == (1, 1)
    # Emitted as gauges (the alert and the workbook read them) and in the run's log line.
    assert flushed == [True]
    gauges = collect()
    assert [value for _, value in gauges["gateway.reservations.stuck"]] == [2]
    assert [round(value) for _, value in gauges["gateway.reservations.stuck.oldest_age"]] == [7200]
    line = next(r for r in caplog.records if r.getMessage() == "purge finished")
    assert (line.stuck, line.stuck_oldest_age_seconds, line.expired, line.abandoned) == (2, 7200, 1, 1)  # type: ignore[attr-defined]
    after = await reservation_stats(store, now)
    assert (after.in_progress, after.completed, after.stuck, after.released) == (3, 3, 1, 1)
