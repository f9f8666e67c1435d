"""A bounded per-worker cache of completed records: warm replays need no storage operation."""

from __future__ import annotations

from cachetools import LRUCache

from .records import Reservation, State


class CompletedCache:
    """LRU of completed reservations by key digest; completed records never change, so no staleness."""

    def __init__(self, size: int) -> None:
        self._entries: LRUCache[str, Reservation] | None = LRUCache(maxsize=size) if size > 0 else None

    def get(self, digest: str) -> Reservation | None:
        return self._entries.get(digest) if self._entries is not None else None

    def put(self, record: Reservation) -> None:
        if self._entries is not None and record.state is State.COMPLETED:
            self._entries[record.key.digest] = record
