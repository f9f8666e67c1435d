"""Reservations in Azure Table Storage (Azurite locally), one entity per key."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from .entities import from_entity, readable, to_entity
from .keys import ROW_KEY, ReservationKey
from .records import Reservation
from .store import ReservationChanged, ReservationExists, StoreUnavailable

log = logging.getLogger("meetings_core.store")

T = TypeVar("T")
# Insert Entity's `Prefer` header: answer 204 with the ETag, not 201 with the entity.
_NO_CONTENT = "return-no-content"


class TableReservationStore:
    """`ReservationStore` over an `azure.data.tables.aio.TableClient`; counts the operations it makes.

    Every operation, the SDK's own retries included, ends within `timeout_seconds`: a store that hangs
    instead of refusing becomes `StoreUnavailable` in seconds, not after azure-core's 300 s read timeout.
    """

    def __init__(self, table: TableClient, timeout_seconds: float = 5.0) -> None:
        self._table = table
        self._timeout = timeout_seconds
        self.operations = 0

    async def create_table(self) -> None:
        """Create the table if missing (Azurite; in Azure the template already made it)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._table.create_table()
        except ResourceExistsError:
            pass
        except (AzureError, TimeoutError) as exc:
            # A table-scoped role may not create tables (the template made it), and an unreachable
            # store is reported by the first real operation, as a 503.
            log.info("table not created (%s); assuming it exists", type(exc).__name__)

    async def insert(self, record: Reservation) -> Reservation:
        try:
            meta = await self._call(
                # Only the ETag is kept: without `return-no-content` storage echoes the whole entity back (201) and
                # the SDK parses it, about a tenth of an insert's CPU.
                self._table.create_entity(to_entity(record), request_id=_request_id(), response_preference=_NO_CONTENT)
            )
        except ResourceExistsError:
            raise ReservationExists(record.key) from None
        except ResourceNotFoundError:
            raise StoreUnavailable(f"the table {self._table.table_name} does not exist") from None
        return _with_etag(record, meta)

    async def get(self, key: ReservationKey) -> Reservation | None:
        return await self.get_by_digest(key.digest)

    async def get_by_digest(self, digest: str) -> Reservation | None:
        dates: list[str] = []
        try:
            entity = await self._call(
                self._table.get_entity(digest, ROW_KEY, raw_response_hook=_date_of(dates), request_id=_request_id())
            )
        except ResourceNotFoundError:
            return None
        return from_entity(entity, _server_time(dates))

    async def entity(self, key: ReservationKey) -> dict[str, Any] | None:
        """The stored properties as they are, for an operator looking at a record that cannot be read."""
        try:
            entity = await self._call(self._table.get_entity(key.digest, ROW_KEY))
        except ResourceNotFoundError:
            return None
        return dict(entity)

    async def replace(self, record: Reservation) -> Reservation:
        try:
            meta = await self._call(
                self._table.update_entity(
                    to_entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
                    request_id=_request_id(),
                )
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ReservationChanged(record.key) from None
        return _with_etag(record, meta)

    async def delete(self, record: Reservation) -> None:
        try:
            await self._call(
                self._table.delete_entity(
                    record.key.digest,
                    ROW_KEY,
                    etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ReservationChanged(record.key) from None

    async def expired(
        self, completed_before: datetime, abandoned_before: datetime, page_size: int
    ) -> AsyncIterator[list[Reservation]]:
        # The SDK substitutes @names only where they stand alone between spaces.
        query = (
            "( State eq 'completed' and ExpiresAt lt @now ) or ( State eq 'in_progress' and LeaseUntil lt @abandoned )"
        )
        pages = self._table.query_entities(
            query, parameters={"now": completed_before, "abandoned": abandoned_before}, results_per_page=page_size
        ).by_page()
        try:
            async for page in pages:
                self.operations += 1
                yield [record async for entity in page if (record := readable(entity)) is not None]
        except AzureError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def remove(self, key: ReservationKey) -> None:
        try:
            await self._call(self._table.delete_entity(key.digest, ROW_KEY))
        except ResourceNotFoundError:
            return

    async def ping(self) -> None:
        # A point read needs only the data role the gateway already has; 404 proves the table answers.
        try:
            await self._call(self._table.get_entity("health", "probe"))
        except ResourceNotFoundError:
            return

    async def close(self) -> None:
        await self._table.close()

    async def _call(self, operation: Awaitable[T]) -> T:
        self.operations += 1
        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except TimeoutError as exc:
            raise StoreUnavailable(f"Table Storage did not answer within {self._timeout:g} s") from exc
        except (ResourceExistsError, ResourceNotFoundError, ResourceModifiedError):
            raise
        except HttpResponseError as exc:
            if exc.status_code == 409 and _error_code(exc) == "EntityAlreadyExists":
                raise ResourceExistsError(message=str(exc.message)) from None
            if exc.status_code == 412:
                raise ResourceModifiedError(message=str(exc.message)) from None
            raise StoreUnavailable(f"Table Storage answered {exc.status_code}") from exc
        except AzureError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        except Exception as exc:
            # Not a store answer but the SDK failing in its own error path (an unsigned request's AzureSigningError
            # becomes an AttributeError there): to the engine the store is unavailable, a 503 the caller retries.
            log.exception("Table Storage SDK failed with %s", type(exc).__name__)
            raise StoreUnavailable(f"the Table Storage SDK failed ({type(exc).__name__})") from exc


def _error_code(exc: HttpResponseError) -> str | None:
    # create_entity's conflict error carries no error_code; the header has it.
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    response: Any = exc.response
    return response.headers.get("x-ms-error-code") if response is not None else None


def _request_id() -> str:
    """The operation's x-ms-client-request-id: random, as unique as azure-core's own time-based uuid1, which
    takes libuuid's clock lock (about 12 us, more under load) on every operation."""
    return str(uuid.uuid4())


def _with_etag(record: Reservation, meta: Mapping[str, Any]) -> Reservation:
    return replace(record, etag=meta["etag"], read_at=None)


def _date_of(dates: list[str]) -> Callable[[Any], None]:
    """A response hook that keeps each answer's Date header: storage's clock at the read."""

    def hook(response: Any) -> None:
        date = response.http_response.headers.get("Date")
        if date:
            dates.append(date)

    return hook


def _server_time(dates: list[str]) -> datetime:
    """Storage's clock at the read; without it a lease could only be judged by this instance's clock, so the
    read fails closed (Table Storage dates every answer: RFC 9110, 6.6.1)."""
    try:
        when = parsedate_to_datetime(dates[-1]) if dates else None
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise StoreUnavailable(f"Table Storage's answer had no usable Date header ({dates[-1:]})")
    return when
