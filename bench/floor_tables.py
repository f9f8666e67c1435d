"""The storage floor: a bare `azure.data.tables.aio` client doing what a new key needs, nothing else.

    .venv/bin/python -m bench.floor_tables CONNECTION_STRING [--seconds 10] [--concurrency 32] [--meeting FILE]
                                           [--sdk-defaults] [--rate KEYS_PER_SECOND]

Per key: insert an in-progress entity, then replace it with the completed one on its ETag, the same
entities (properties and compressed bodies; `--meeting`: a meeting the gateway stored) the gateway writes,
with the gateway's transport options (`--sdk-defaults`: the SDK's own), as fast as it can or paced to `--rate`
keys per second (an asyncio client's CPU per operation falls as its rate rises: more answers per wake-up).
Prints one JSON line: keys, seconds and this process's CPU seconds over the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from meetings_core.outbound import azure_transport_options

TABLE = "benchfloor"
_REQUEST = json.dumps({"externalId": "x" * 40, "subject": "bench"}).encode()
_MEETING = json.dumps(
    {"id": "MSo" + "x" * 60, "subject": "bench", "joinWebUrl": "https://teams.example/" + "x" * 300}
).encode()


def _entities(key: str, meeting: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    now = datetime.now(UTC)
    reserved = {
        "PartitionKey": key, "RowKey": "reservation", "OrganizerId": "1f35f2e6-9cab-44ad-8d5a-b74c14720000",
        "ExternalId": key, "Fingerprint": key, "State": "in_progress", "ApiVersion": "v1.0",
        "Caller": "function-key", "CreatedAt": now, "Owner": key, "LeaseUntil": now + timedelta(seconds=45),
        "Request0": zlib.compress(_REQUEST),
    }  # fmt: skip
    completed = {k: v for k, v in reserved.items() if k not in ("LeaseUntil", "Request0")} | {
        "State": "completed", "Status": 201, "GraphRequestId": key, "CompletedAt": now,
        "ExpiresAt": now + timedelta(days=30), "Body0": zlib.compress(meeting),
    }  # fmt: skip
    return reserved, completed


async def _one_key(table: TableClient, meeting: bytes) -> None:
    reserved, completed = _entities(uuid.uuid4().hex, meeting)
    meta = await table.create_entity(reserved)
    await table.update_entity(
        completed, mode=UpdateMode.REPLACE, etag=meta["etag"], match_condition=MatchConditions.IfNotModified
    )


async def run(
    connection: str, seconds: float, concurrency: int, meeting: bytes, sdk_defaults: bool, rate: float = 0.0
) -> dict[str, float]:
    options = {} if sdk_defaults else azure_transport_options()
    async with TableClient.from_connection_string(connection, TABLE, **options) as table:
        with contextlib.suppress(ResourceExistsError):
            await table.create_table()
        await asyncio.gather(*(_one_key(table, meeting) for _ in range(concurrency)))  # open the pool's connections
        keys = 0
        start = time.monotonic()
        stop = start + seconds

        async def worker() -> None:
            nonlocal keys
            while time.monotonic() < stop:
                if rate and (ahead := start + keys / rate - time.monotonic()) > 0:
                    await asyncio.sleep(ahead)  # at most one timer per key: microseconds against a key's ~2 ms
                keys += 1
                await _one_key(table, meeting)

        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"keys": keys, "seconds": time.monotonic() - wall, "cpu_seconds": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("connection")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--meeting", type=Path)
    parser.add_argument("--sdk-defaults", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0, help="keys per second (0: as fast as it can)")
    args = parser.parse_args()
    meeting = args.meeting.read_bytes() if args.meeting else _MEETING
    result = asyncio.run(run(args.connection, args.seconds, args.concurrency, meeting, args.sdk_defaults, args.rate))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
