"""Table keys that survive any externalId, spread so no organizer makes a hot partition."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

ROW_KEY = "reservation"
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ReservationKey:
    """The idempotency key: canonical organizer object id and the externalId Graph sees, verbatim.

    That is the caller's externalId for function-key callers, tagged with the caller (`scoped_external_id`)
    for entra and hmac callers.
    """

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


def scoped_external_id(scope: str | None, external_id: str) -> str:
    """The externalId Graph sees: the caller's own when unscoped, else prefixed with a tag of the caller.

    Graph keeps one meeting per (organizer, externalId) and every caller reaches it as the gateway's one
    identity, so two callers' "order-1" must be two Graph externalIds: the tag is `g` and 24 hex digits of
    SHA-256 over the caller id, then `.`. The reservation key uses this value too, so one caller can neither
    block another's externalIds nor be handed another's meeting (docs/SECURITY.md, key squatting).
    """
    if scope is None:
        return external_id
    return f"{scope_tag(scope)}.{external_id}"


def scope_tag(scope: str) -> str:
    return "g" + hashlib.sha256(f"meeting-gateway caller\n{scope}".encode()).hexdigest()[:24]


def unscoped_body(body: bytes, scope: str | None) -> bytes:
    """Graph's onlineMeeting JSON with the externalId the caller sent, not the tagged one Graph stores."""
    if scope is None:
        return body
    prefix = scope_tag(scope) + "."
    try:
        meeting = json.loads(body)
    except ValueError:
        return body
    external_id = meeting.get("externalId") if isinstance(meeting, dict) else None
    if not isinstance(external_id, str) or not external_id.startswith(prefix):
        return body
    meeting["externalId"] = external_id.removeprefix(prefix)
    return json.dumps(meeting, separators=(",", ":"), ensure_ascii=False).encode()
