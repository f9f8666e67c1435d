"""A `ReservationStore` that times each operation of the store it wraps (semantic conventions' DB metric)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

from ..idempotency.keys import ReservationKey
from ..idempotency.records import Reservation
from ..idempotency.store import ReservationStore
from . import instruments
from . import names as n

DB_SYSTEM = "azure.tables"


@contextlib.contextmanager
def _timed(operation: str) -> Iterator[None]:
    started = time.monotonic()
    attributes = {n.DB_SYSTEM: DB_SYSTEM, n.DB_OPERATION: operation}
    try:
        yield
    except Exception as exc:  # the store's own errors: a lost race, unavailable, unreadable
        attributes[n.ERROR_TYPE] = type(exc).__name__
        raise
    finally:
        instruments.store_duration.record(time.monotonic() - started, attributes)


class MeteredStore:
    """Delegates every call to `inner`, recording its duration and, on failure, the error's type."""

    def __init__(self, inner: ReservationStore) -> None:
        self._inner = inner

    async def insert(self, record: Reservation) -> Reservation:
        with _timed("insert"):
            return await self._inner.insert(record)

    async def get(self, key: ReservationKey) -> Reservation | None:
        with _timed("get"):
            return await self._inner.get(key)

    async def get_by_digest(self, digest: str) -> Reservation | None:
        with _timed("get"):
            return await self._inner.get_by_digest(digest)

    async def replace(self, record: Reservation) -> Reservation:
        with _timed("replace"):
            return await self._inner.replace(record)

    async def delete(self, record: Reservation) -> None:
        with _timed("delete"):
            await self._inner.delete(record)

    async def remove(self, key: ReservationKey) -> None:
        with _timed("remove"):
            await self._inner.remove(key)

    async def expired(
        self, completed_before: datetime, abandoned_before: datetime, page_size: int
    ) -> AsyncIterator[list[Reservation]]:
        pages = aiter(self._inner.expired(completed_before, abandoned_before, page_size))
        while True:
            with _timed("query"):
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    return
            yield page

    async def ping(self) -> None:
        with _timed("ping"):
            await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
