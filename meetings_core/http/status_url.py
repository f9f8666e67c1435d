"""Signed status URLs: `/operations/{id}?caller=..&exp=..&sig=..`, valid for one operation, one caller, a while.

The signature is HMAC-SHA256 under a server key over a versioned message naming the operation id, the
caller id and the expiry, so a poll with a valid signature is authorized as the caller that got the 202,
without any credential of that caller (function keys included) in the URL. The key is the STATUS_URL_KEY
setting or, when that is unset, a random key created once in the reservations table and read by every
instance.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient

from ..idempotency.store import StoreUnavailable

log = logging.getLogger("meetings_core.http")
SIGNATURE_PARAMS = ("caller", "exp", "sig")
_VERSION = b"status-url-v1"
# The key's entity sits beside the reservations; its partition is no 64-hex digest, so no lookup reaches it.
_KEY_ENTITY = ("gateway", "status-url-key")
_CALLER = re.compile(r"[A-Za-z0-9_-]{1,400}")
_EXPIRY = re.compile(r"[0-9]{1,12}")
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StatusUrlKey:
    """The server key: fixed by setting, or made once in the table (insert-if-absent) and cached."""

    def __init__(
        self, table: TableClient | None, configured: bytes | None = None, timeout_seconds: float = 5.0
    ) -> None:
        self._table = table
        self._key = configured
        self._timeout = timeout_seconds  # STORE_TIMEOUT_SECONDS, as for every reservation store operation
        self._lock = asyncio.Lock()

    async def get(self) -> bytes:
        if self._key is None:
            async with self._lock:
                if self._key is None:
                    self._key = await self._load()
        return self._key

    async def _load(self) -> bytes:
        assert self._table is not None
        try:
            async with asyncio.timeout(self._timeout):
                return await self._create_or_read(self._table)
        except Exception as exc:
            # One path for every failure: storage unreachable or hung, the key's entity damaged, or the SDK failing
            # in its own error path. To a caller each is a store failure (503, retried); the cause is logged here,
            # once, with its traceback: a damaged entity fails every load until an operator mends it.
            log.error("status URL key not loaded from the table (%s)", type(exc).__name__, exc_info=exc)
            raise StoreUnavailable(f"status URL key unavailable: {type(exc).__name__}") from exc

    @staticmethod
    async def _create_or_read(table: TableClient) -> bytes:
        partition, row = _KEY_ENTITY
        fresh = _b64(secrets.token_bytes(32))
        try:
            await table.create_entity({"PartitionKey": partition, "RowKey": row, "Key": fresh})
            return _unb64(fresh)
        except ResourceExistsError:
            # Another instance made it first: every instance must sign with the same key.
            entity = await table.get_entity(partition, row)
            return _unb64(str(entity["Key"]))

    async def close(self) -> None:
        if self._table is not None:
            await self._table.close()


class StatusUrlSigner:
    """Makes and checks signed status URLs."""

    def __init__(self, key: StatusUrlKey, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._ttl = ttl_seconds
        self._clock = clock

    async def path(self, operation_id: str, caller_id: str) -> str:
        """The status URL path for this operation and caller, with its query."""
        caller = _b64(caller_id.encode())
        expiry = str(int(self._clock() + self._ttl))
        sig = _b64(self._mac(await self._key.get(), operation_id, caller, expiry))
        return f"/operations/{operation_id}?" + urlencode({"caller": caller, "exp": expiry, "sig": sig})

    async def verify(self, operation_id: str, query: Mapping[str, str]) -> str | None:
        """The caller id the URL was signed for, or None when it is malformed, forged or expired."""
        caller, expiry, sig = (query.get(name, "") for name in SIGNATURE_PARAMS)
        if not (_CALLER.fullmatch(caller) and _EXPIRY.fullmatch(expiry) and _SIG.fullmatch(sig)):
            return None
        expected = self._mac(await self._key.get(), operation_id, caller, expiry)
        if not hmac.compare_digest(expected, _unb64(sig)) or int(expiry) < self._clock():
            return None
        try:
            return _unb64(caller).decode()
        except UnicodeDecodeError:
            return None

    @staticmethod
    def _mac(key: bytes, operation_id: str, caller: str, expiry: str) -> bytes:
        message = b"\n".join([_VERSION, operation_id.encode(), caller.encode(), expiry.encode()])
        return hmac.new(key, message, hashlib.sha256).digest()


def has_signature(query: Mapping[str, str]) -> bool:
    return any(name in query for name in SIGNATURE_PARAMS)
