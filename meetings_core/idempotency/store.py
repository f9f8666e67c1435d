"""The persistence interface the engine needs; one implementation per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from .keys import ReservationKey
from .records import Reservation


class StoreError(Exception):
    """Base of the store's expected failures."""


class ReservationExists(StoreError):
    """Insert lost the race: the key is already reserved (the serialization point)."""


class ReservationChanged(StoreError):
    """An ETag-conditional write or delete found the record changed or gone."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or answered unexpectedly: fail closed."""


class RecordTooLarge(StoreError):
    """A record holds more than the store can keep (a request too large to store): retrying cannot help."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} takes {size} bytes compressed; the store keeps at most {limit}")
        self.size = size
        self.limit = limit


class RecordUnreadable(StoreError):
    """A stored record cannot be read (a field its state requires is missing or corrupt)."""


class ReservationStore(Protocol):
    """Reservation records keyed by `ReservationKey`, with optimistic concurrency by ETag."""

    async def insert(self, record: Reservation) -> Reservation:
        """Create the record; raise `ReservationExists` if the key is taken. Returns it with its ETag."""
        ...

    async def get(self, key: ReservationKey) -> Reservation | None: ...

    async def get_by_digest(self, digest: str) -> Reservation | None:
        """Look a record up by `ReservationKey.digest` (status URLs carry only the digest)."""
        ...

    async def replace(self, record: Reservation) -> Reservation:
        """Overwrite if the ETag still matches; raise `ReservationChanged` otherwise."""
        ...

    async def delete(self, record: Reservation) -> None:
        """Delete if the ETag still matches; raise `ReservationChanged` otherwise."""
        ...

    async def remove(self, key: ReservationKey) -> None:
        """Delete whatever is stored for `key`, unconditionally (an operator's `remove --force`)."""
        ...

    def expired(
        self, completed_before: datetime, abandoned_before: datetime, page_size: int
    ) -> AsyncIterator[list[Reservation]]:
        """Pages of completed records that expired before `completed_before` and in-progress ones
        whose lease ended before `abandoned_before`; unreadable records are logged and skipped."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""
        ...

    async def close(self) -> None: ...
