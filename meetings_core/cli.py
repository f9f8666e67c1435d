"""Operator CLI: see a reservation, list stuck ones, release or remove one, purge now.

    python -m meetings_core.cli show ORGANIZER_ID EXTERNAL_ID
    python -m meetings_core.cli stuck
    python -m meetings_core.cli release ORGANIZER_ID EXTERNAL_ID [--force]
    python -m meetings_core.cli remove ORGANIZER_ID EXTERNAL_ID [--force]
    python -m meetings_core.cli purge
    python -m meetings_core.cli stats [--json]

Reads the same settings as the gateway (TABLES_CONNECTION_STRING or TABLES_ENDPOINT, TABLE_NAME).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.identity.aio import DefaultAzureCredential

from .errors import GatewayError
from .idempotency.keys import ReservationKey, scoped_external_id
from .idempotency.purge import purge
from .idempotency.records import Reservation, State
from .idempotency.store import RecordUnreadable, ReservationChanged, StoreUnavailable
from .idempotency.table_store import TableReservationStore
from .services import table_client
from .settings import SettingsError, load_settings
from .stats import print_stats, reservation_stats
from .validation import validate_organizer_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The commands that name one key: (help, help of --force or None). "Released" means what it means to the engine.
_KEY_COMMANDS = {
    "show": ("print one reservation", None),
    "release": (
        "mark an in-progress reservation released, as the gateway does after a definite failure: the next request "
        "or status poll for it takes it over at once and asks Graph again (a poller never gets 404)",
        "also release one whose lease is live (an owner may still be calling Graph)",
    ),
    "remove": (
        "delete a reservation (its status URLs then answer 404): a completed one, or one that cannot be read",
        "required for a completed record, one whose lease is live, or one that cannot be read",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"Table Storage is unreachable: {exc}", file=sys.stderr)
        return 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m meetings_core.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (text, force) in _KEY_COMMANDS.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("organizer_id", help="the organizer's Entra object id (as in the request path)")
        command.add_argument("external_id", help="the externalId, exactly as the caller sent it")
        command.add_argument(
            "--caller",
            help="the caller id (entra:<id> or hmac:<partner>) of an entra or hmac caller, whose keys are its own",
        )
        if force:
            command.add_argument("--force", action="store_true", help=force)
    commands.add_parser("stuck", help="list in-progress reservations whose lease has ended")
    commands.add_parser("purge", help="delete expired and abandoned records now")
    stats = commands.add_parser("stats", help="count records by state, stuck keys, recent completions")
    stats.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    return parser


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    # An operator runs this with their own Azure login (or Azurite's connection string), not the Function's.
    async with DefaultAzureCredential() as credential:
        store = TableReservationStore(table_client(settings, credential))
        try:
            return await _dispatch(store, args)
        finally:
            await store.close()


async def _dispatch(store: TableReservationStore, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.command == "stuck":
        async for page in store.expired(completed_before=_EPOCH, abandoned_before=now, page_size=100):
            for stuck in page:
                if not stuck.released:  # released after a definite failure: the next request takes it over
                    print(json.dumps(_describe(stuck)))
        return 0
    if args.command == "stats":
        print_stats(await reservation_stats(store, now), as_json=args.json)
        return 0
    if args.command == "purge":
        report = await purge(store, now)
        print(f"deleted {report.expired} expired and {report.abandoned} abandoned records ({report.skipped} skipped)")
        return 0
    try:
        organizer_id = validate_organizer_id(args.organizer_id)
    except GatewayError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    key = ReservationKey(organizer_id, scoped_external_id(args.caller, args.external_id))
    try:
        record = await store.get(key)
    except RecordUnreadable as exc:
        return await _unreadable(store, key, exc, remove=args.command == "remove" and args.force)
    if record is None:
        print("no reservation for this organizer and externalId", file=sys.stderr)
        return 1
    if args.command == "show":
        print(json.dumps(_describe(record), indent=2))
        return 0
    if args.command == "release":
        return await _release(store, record, force=args.force, now=now)
    return await _remove(store, record, force=args.force, now=now)


async def _release(store: TableReservationStore, record: Reservation, *, force: bool, now: datetime) -> int:
    """Mark the record released, as the engine's owner does (ETag replace, its request kept): never a delete."""
    if record.state is State.COMPLETED:
        print(
            "the reservation is completed (a meeting exists): nothing to release, the next request gets the meeting. "
            "'remove --force' deletes the record, and the next request then asks Graph again.",
            file=sys.stderr,
        )
        return 1
    if record.released:
        print("already released: the next request or status poll for it takes it over")
        return 0
    if _refused_live(record, now, force, "releasing"):
        return 1
    if not await _written(store.replace(record.as_released(now))):  # the engine's clock: this instance's
        return 1
    print("released: the next request or status poll for it takes it over and asks Graph again")
    return 0


async def _remove(store: TableReservationStore, record: Reservation, *, force: bool, now: datetime) -> int:
    if record.state is State.COMPLETED and not force:
        print("the reservation is completed (a meeting exists); pass --force to delete it anyway", file=sys.stderr)
        return 1
    if _refused_live(record, now, force, "removing") or not await _written(store.delete(record)):
        return 1
    print("removed: its status URLs now answer 404, and the next request asks Graph again")
    return 0


def _refused_live(record: Reservation, now: datetime, force: bool, doing: str) -> bool:
    """True (and says why) when the record's lease is live and --force was not given."""
    now = record.judged_at(now)  # storage's clock at the read, as the gateway judges leases
    if record.state is not State.IN_PROGRESS or record.lease_ended(now) or force:
        return False
    print(
        f"its lease is live for {record.lease_left(now):.0f} s more: an owner may still be calling Graph, and "
        f"{doing} it now could let a second request create a second meeting. Wait, or pass --force.",
        file=sys.stderr,
    )
    return True


async def _written(write: Awaitable[object]) -> bool:
    """The ETag-conditional write or delete done; False (and says so) when the record changed meanwhile."""
    try:
        await write
    except ReservationChanged:
        print("the reservation changed meanwhile; look again with 'show'", file=sys.stderr)
        return False
    return True


async def _unreadable(store: TableReservationStore, key: ReservationKey, exc: RecordUnreadable, *, remove: bool) -> int:
    if not remove:
        print(f"{exc}; 'remove --force' deletes it", file=sys.stderr)
        entity = await store.entity(key)
        if entity is not None:
            print(json.dumps({"operationId": key.digest, "unreadable": str(exc), "stored": _raw(entity)}, indent=2))
        return 1
    await store.remove(key)
    print("removed the unreadable reservation")
    return 0


def _raw(entity: dict[str, Any]) -> dict[str, str]:
    """Each stored property with its type, binary ones by length only, for a look at what is damaged."""
    shown = {}
    for name, value in sorted(entity.items()):
        text = f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)
        shown[name] = f"{type(value).__name__}: {text[:80]}"
    return shown


def _describe(record: Reservation) -> dict[str, Any]:
    meeting = record.meeting() if record.body else {}
    return {
        "organizerId": record.key.organizer_id,
        "externalId": record.key.external_id,
        "operationId": record.key.digest,
        "state": record.state.value,
        "caller": record.caller,
        "apiVersion": record.api_version,
        "createdAt": record.created_at.isoformat(),
        "leaseUntil": record.lease_until.isoformat() if record.lease_until else None,
        "graphStatus": record.status,
        "meetingId": meeting.get("id"),
        "expiresAt": record.expires_at.isoformat() if record.expires_at else None,
        "releasedAt": record.released_at.isoformat() if record.released_at else None,
        # Graph's refusal of the request, which a status poll answers (docs/IDEMPOTENCY.md)
        "refusal": f"{record.refusal.status} {record.refusal.code}" if record.refusal else None,
    }


if __name__ == "__main__":
    sys.exit(main())
