"""Reservations in Azure Table Storage (Azurite locally), one entity per key."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import replace
from datetime import datetime
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

from .keys import ROW_KEY, ReservationKey, scoped_external_id
from .records import CorruptRecord, Reservation, State, compress, decompress
from .store import RecordTooLarge, RecordUnreadable, ReservationChanged, ReservationExists, StoreUnavailable

log = logging.getLogger("meetings_core.store")

T = TypeVar("T")
# Table Storage caps a binary property at 64 KiB; larger compressed bodies span numbered properties.
_CHUNK = 64 * 1024
_MAX_CHUNKS = 14
# The most one compressed request (or answer) may take: 14 x 64 KiB = 896 KiB, which leaves the entity's other
# properties (keys, ids, times: under 4 KiB) well inside Table Storage's 1 MiB per entity.
STORED_BYTES_LIMIT = _CHUNK * _MAX_CHUNKS


def _deflate_bound(size: int) -> int:
    """zlib's compressBound(): the most deflate (as `compress` runs it) can output for `size` bytes."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def largest_storable_body() -> int:
    """The largest JSON body whose stored request always fits: compacting never lengthens JSON (exponent
    floats such as 1e15 aside, refused at insert), a caller's tag adds its length to the externalId."""
    growth = len(scoped_external_id("any caller", ""))
    size = STORED_BYTES_LIMIT - growth
    while _deflate_bound(size + growth) > STORED_BYTES_LIMIT:
        size -= 1
    return size


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
        try:
            entity = await self._call(self._table.get_entity(digest, ROW_KEY))
        except ResourceNotFoundError:
            return None
        return _from_entity(entity)

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
    return replace(record, etag=meta["etag"])


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
        "LeaseUntil": record.lease_until,
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
    if len(blob) > STORED_BYTES_LIMIT:
        raise RecordTooLarge(f"the {name.lower()}", len(blob), STORED_BYTES_LIMIT)
    chunks = [blob[i : i + _CHUNK] for i in range(0, len(blob), _CHUNK)]
    return {f"{name}{index}": chunk for index, chunk in enumerate(chunks)}


def _unchunked(entity: Any, name: str) -> bytes | None:
    blob = b"".join(entity[f"{name}{i}"] for i in range(_MAX_CHUNKS) if f"{name}{i}" in entity)
    return decompress(blob) if blob else None


def _from_entity(entity: Any) -> Reservation:
    try:
        return _reservation(entity)
    except (CorruptRecord, KeyError, ValueError, zlib.error) as exc:
        raise RecordUnreadable(
            f"reservation {entity.get('PartitionKey')} is unreadable ({type(exc).__name__})"
        ) from exc


def _readable(entity: Any) -> Reservation | None:
    # One corrupt entity must not stop a purge: it is logged for an operator and skipped.
    try:
        return _from_entity(entity)
    except RecordUnreadable as exc:
        log.error("skipping an unreadable reservation: %s", exc)
        return None


def _reservation(entity: Any) -> Reservation:
    return Reservation(
        key=ReservationKey(entity["OrganizerId"], entity["ExternalId"]),
        fingerprint=entity["Fingerprint"],
        state=State(entity["State"]),
        api_version=entity["ApiVersion"],
        caller=entity["Caller"],
        created_at=entity["CreatedAt"],
        owner=entity.get("Owner"),
        lease_until=entity.get("LeaseUntil"),
        request=_unchunked(entity, "Request"),
        status=entity.get("Status"),
        body=_unchunked(entity, "Body"),
        graph_request_id=entity.get("GraphRequestId"),
        completed_at=entity.get("CompletedAt"),
        expires_at=entity.get("ExpiresAt"),
        etag=entity.metadata["etag"],
    )
