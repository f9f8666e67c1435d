"""A bounded per-worker cache of completed records: warm replays need no storage operation."""

from __future__ import annotations

from datetime import datetime

from cachetools import TTLCache

from .records import Reservation, State

# A record an operator removed (`cli remove`) or the purge deleted stops being served within this time.
CACHE_TTL_SECONDS = 300


class CompletedCache:
    """TTL-bounded LRU of completed reservations by key digest; never serves one past its `expires_at`."""

    def __init__(self, size: int, ttl_seconds: float = CACHE_TTL_SECONDS) -> None:
        self.size = size
        self._entries: TTLCache[str, Reservation] | None = TTLCache(maxsize=size, ttl=ttl_seconds) if size > 0 else None

    def get(self, digest: str, now: datetime) -> Reservation | None:
        if self._entries is None:
            return None
        record = self._entries.get(digest)
        if record is not None and record.expires_at is not None and record.expires_at <= now:
            self._entries.pop(digest, None)
            return None
        return record

    def put(self, record: Reservation) -> None:
        if self._entries is not None and record.state is State.COMPLETED:
            self._entries[record.key.digest] = record
