"""Table keys that survive any externalId, spread so no organizer makes a hot partition."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

ROW_KEY = "reservation"
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ReservationKey:
    """The idempotency key: canonical organizer object id and the caller's externalId, verbatim."""

    organizer_id: str
    external_id: str

    @property
    def digest(self) -> str:
        """SHA-256 hex of both parts: the partition key and the operation id in status URLs.

        Hashing keeps forbidden characters (/ \\ # ? and controls) and long ids out of table keys,
        and one partition per key spreads a busy organizer over the whole table.
        """
        raw = f"{self.organizer_id}\n{self.external_id}".encode()
        return hashlib.sha256(raw).hexdigest()

    @staticmethod
    def is_digest(value: str) -> bool:
        """True for a string shaped like `digest` (status URLs are checked before any storage call)."""
        return bool(_DIGEST.fullmatch(value))
