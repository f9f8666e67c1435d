"""Reservations in Azure Table Storage (Azurite locally), one entity per key."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
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

from .keys import ROW_KEY, ReservationKey
from .records import CorruptRecord, Reservation, State, compress, decompress
from .store import RecordUnreadable, ReservationChanged, ReservationExists, StoreUnavailable

log = logging.getLogger("meetings_core.store")

T = TypeVar("T")
# Table Storage caps a binary property at 64 KiB; larger compressed bodies span numbered properties.
_CHUNK = 64 * 1024
_MAX_CHUNKS = 14
# No lease the settings accept is longer (RESERVATION_LEASE_SECONDS); a larger stored value is damage.
_MAX_LEASE_SECONDS = 3600.0


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
            meta = await self._call(self._table.create_entity(_to_entity(record)))
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
            entity = await self._call(self._table.get_entity(digest, ROW_KEY, raw_response_hook=_date_of(dates)))
        except ResourceNotFoundError:
            return None
        return _from_entity(entity, _server_time(dates))

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
                    _to_entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
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
                yield [record async for entity in page if (record := _readable(entity)) is not None]
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
            raise StoreUnavailable(type(exc).__name__) from None


def _error_code(exc: HttpResponseError) -> str | None:
    # create_entity's conflict error carries no error_code; the header has it.
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    response: Any = exc.response
    return response.headers.get("x-ms-error-code") if response is not None else None


def _with_etag(record: Reservation, meta: Mapping[str, Any]) -> Reservation:
    return replace(record, etag=meta["etag"], read_at=None)


def _date_of(dates: list[str]) -> Callable[[Any], None]:
    """A response hook that keeps each answer's Date header: storage's clock at the read."""

    def hook(response: Any) -> None:
        date = response.http_response.headers.get("Date")
        if date:
            dates.append(date)

    return hook


def _server_time(dates: list[str]) -> datetime | None:
    # HTTP dates have whole seconds, rounded down: never later than storage's time of the read.
    try:
        return parsedate_to_datetime(dates[-1]) if dates else None
    except (TypeError, ValueError):
        return None


def _to_entity(record: Reservation) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.key.digest,
        "RowKey": ROW_KEY,
        "OrganizerId": record.key.organizer_id,
        "ExternalId": record.key.external_id,
        "Fingerprint": record.fingerprint,
        "State": record.state.value,
        "ApiVersion": record.api_version,
        "Caller": record.caller,
        "CreatedAt": record.created_at,
        "Owner": record.owner,
        "LeaseUntil": record.lease_until,  # this instance's estimate: for the purge query, the CLI, old versions
        "LeaseSeconds": record.lease_seconds,
        "Status": record.status,
        "GraphRequestId": record.graph_request_id,
        "CompletedAt": record.completed_at,
        "ExpiresAt": record.expires_at,
    }
    entity |= _chunked("Body", record.body) | _chunked("Request", record.request)
    return {name: value for name, value in entity.items() if value is not None}


def _chunked(name: str, data: bytes | None) -> dict[str, bytes]:
    if data is None:
        return {}
    blob = compress(data)
    chunks = [blob[i : i + _CHUNK] for i in range(0, len(blob), _CHUNK)]
    if len(chunks) > _MAX_CHUNKS:
        raise StoreUnavailable(f"{name.lower()} too large to store")
    return {f"{name}{index}": chunk for index, chunk in enumerate(chunks)}


def _unchunked(entity: Any, name: str) -> bytes | None:
    chunks = [entity[f"{name}{i}"] for i in range(_MAX_CHUNKS) if f"{name}{i}" in entity]
    if not all(isinstance(chunk, bytes) for chunk in chunks):
        raise CorruptRecord(f"{name} is not binary")
    blob = b"".join(chunks)
    if not blob:
        return None
    data = decompress(blob)
    if not isinstance(json.loads(data), dict):
        raise CorruptRecord(f"{name} is not a JSON object")
    return data


def _from_entity(entity: Any, read_at: datetime | None = None) -> Reservation:
    """The record, or `RecordUnreadable` for any shape the gateway did not write (every field is checked)."""
    try:
        return _reservation(entity, read_at)
    except (CorruptRecord, KeyError, ValueError, TypeError, AttributeError, OverflowError, zlib.error) as exc:
        raise RecordUnreadable(
            f"reservation {entity.get('PartitionKey')} is unreadable ({type(exc).__name__}: {exc})"
        ) from exc


def _readable(entity: Any) -> Reservation | None:
    # One corrupt entity must not stop a purge: it is logged for an operator and skipped.
    try:
        return _from_entity(entity)
    except RecordUnreadable as exc:
        log.error("skipping an unreadable reservation: %s", exc)
        return None


def _reservation(entity: Any, read_at: datetime | None) -> Reservation:
    lease_seconds = _number(entity, "LeaseSeconds")
    lease_until = _instant(entity, "LeaseUntil")
    if lease_seconds is not None:
        # The lease ends `lease_seconds` after storage wrote the entity, by storage's own clock.
        written_at = entity.metadata["timestamp"]
        if not isinstance(written_at, datetime):
            raise CorruptRecord("the entity has no Timestamp")
        lease_until = written_at + timedelta(seconds=lease_seconds)
    return Reservation(
        key=ReservationKey(_text(entity, "OrganizerId"), _text(entity, "ExternalId")),
        fingerprint=_text(entity, "Fingerprint"),
        state=State(_text(entity, "State")),
        api_version=_text(entity, "ApiVersion"),
        caller=_text(entity, "Caller"),
        created_at=_required(_instant(entity, "CreatedAt"), "CreatedAt"),
        owner=_optional_text(entity, "Owner"),
        lease_until=lease_until,
        request=_unchunked(entity, "Request"),
        status=_integer(entity, "Status"),
        body=_unchunked(entity, "Body"),
        graph_request_id=_optional_text(entity, "GraphRequestId"),
        completed_at=_instant(entity, "CompletedAt"),
        expires_at=_instant(entity, "ExpiresAt"),
        etag=entity.metadata["etag"],
        lease_seconds=lease_seconds,
        read_at=read_at,
    )


def _required(value: T | None, name: str) -> T:
    if value is None:
        raise CorruptRecord(f"{name} is missing")
    return value


def _text(entity: Any, name: str) -> str:
    return _required(_optional_text(entity, name), name)


def _optional_text(entity: Any, name: str) -> str | None:
    value = entity.get(name)
    if value is not None and not isinstance(value, str):
        raise CorruptRecord(f"{name} is not a string")
    return value


def _instant(entity: Any, name: str) -> datetime | None:
    value = entity.get(name)
    if value is not None and not (isinstance(value, datetime) and value.tzinfo is not None):
        raise CorruptRecord(f"{name} is not a date and time")
    return value


def _integer(entity: Any, name: str) -> int | None:
    value = entity.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise CorruptRecord(f"{name} is not an integer")
    return value


def _number(entity: Any, name: str) -> float | None:
    value = entity.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _MAX_LEASE_SECONDS:
        raise CorruptRecord(f"{name} is not a number of seconds in range")
    return float(value)
