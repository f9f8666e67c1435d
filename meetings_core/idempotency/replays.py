"""Answers to byte-identical replays, kept per worker: a request that was validated and answered from a
completed record is answered again without parsing, while that record is the one the engine would replay."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from cachetools import LRUCache

from .cache import CompletedCache
from .context import Outcome
from .records import Reservation


class RequestBytes(NamedTuple):
    """Everything a createOrGet answer depends on besides the stored record: who asks, where, and what."""

    caller: str
    scope: str | None
    api_version: str
    organizer_id: str
    body: bytes

    def digest(self) -> tuple[str, str | None, str, str, bytes]:
        return (self.caller, self.scope, self.api_version, self.organizer_id, hashlib.sha256(self.body).digest())


@dataclass(frozen=True, slots=True)
class _Known:
    digest: str  # the record's key digest, computed once
    record: Reservation
    answer: Outcome


class ReplayIndex:
    """The HTTP answer last given to each request's bytes, valid only while `cache` still holds its record.

    The cache is the one the engine replays from: an entry is never served after its record expired, left the
    cache (its TTL, an eviction) or was replaced (the meeting stored again in the other API version).
    """

    def __init__(self, size: int, cache: CompletedCache, clock: Callable[[], datetime]) -> None:
        self._entries: LRUCache[tuple[str, str | None, str, str, bytes], _Known] | None = (
            LRUCache(maxsize=size) if size > 0 else None
        )
        self._cache = cache
        self._clock = clock

    def answer(self, request: RequestBytes) -> Outcome | None:
        """The answer given before to these bytes, if its record is still the engine's; else None."""
        if self._entries is None:
            return None
        key = request.digest()
        known = self._entries.get(key)
        if known is None:
            return None
        if self._cache.get(known.digest, self._clock()) is not known.record:
            self._entries.pop(key, None)
            return None
        return known.answer

    def remember(self, request: RequestBytes, record: Reservation, answer: Outcome) -> None:
        """Keep `answer`, which the full path gave to `request` from the completed `record`."""
        if self._entries is not None:
            self._entries[request.digest()] = _Known(record.key.digest, record, answer)
