"""An in-memory `ReservationStore` with ETags, for exact in-process tests of the engine's branches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation
from meetings_core.idempotency.store import ReservationChanged, ReservationExists

Hook = Callable[[str, Reservation], None]


class MemoryStore:
    """Records by digest; every write gets a new ETag. `after` runs after an operation has committed,
    so a test can make it report a failure the way a retried request would. With `clock` (storage's own
    clock, as Table Storage's Timestamp and Date), reads date a lease by it, as the Table store does."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.records: dict[str, Reservation] = {}
        self.operations: list[str] = []
        self.after: Hook | None = None
        self.clock = clock
        self._written: dict[str, datetime] = {}
        self._etag = 0

    def _commit(self, record: Reservation) -> Reservation:
        self._etag += 1
        stored = replace(record, etag=f"W/{self._etag}", read_at=None)
        self.records[record.key.digest] = stored
        if self.clock is not None:
            self._written[record.key.digest] = self.clock()
        return stored

    def _as_read(self, record: Reservation | None) -> Reservation | None:
        if record is None or self.clock is None:
            return record
        if record.lease_seconds is not None:
            written = self._written[record.key.digest]
            record = replace(record, lease_until=written + timedelta(seconds=record.lease_seconds))
        return replace(record, read_at=self.clock())

    def _done(self, operation: str, record: Reservation) -> None:
        self.operations.append(operation)
        if self.after is not None:
            self.after(operation, record)

    async def insert(self, record: Reservation) -> Reservation:
        if record.key.digest in self.records:
            self.operations.append("insert-conflict")
            raise ReservationExists(record.key)
        stored = self._commit(record)
        self._done("insert", stored)
        return stored

    async def get(self, key: ReservationKey) -> Reservation | None:
        return await self.get_by_digest(key.digest)

    async def get_by_digest(self, digest: str) -> Reservation | None:
        self.operations.append("get")
        return self._as_read(self.records.get(digest))

    async def replace(self, record: Reservation) -> Reservation:
        current = self.records.get(record.key.digest)
        if current is None or current.etag != record.etag:
            self.operations.append("replace-conflict")
            raise ReservationChanged(record.key)
        stored = self._commit(record)
        self._done("replace", stored)
        return stored

    async def delete(self, record: Reservation) -> None:
        current = self.records.get(record.key.digest)
        if current is None or current.etag != record.etag:
            self.operations.append("delete-conflict")
            raise ReservationChanged(record.key)
        del self.records[record.key.digest]
        self._done("delete", record)

    async def remove(self, key: ReservationKey) -> None:
        self.records.pop(key.digest, None)

    async def expired(
        self, completed_before: datetime, abandoned_before: datetime, page_size: int
    ) -> AsyncIterator[list[Reservation]]:
        yield []

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
