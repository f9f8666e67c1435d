"""Graph's refusal of a request, kept on its released record: a status poll answers it instead of sending the
request again, so only the caller's own request (the same body, or a corrected one) takes the key over."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import GatewayError

# Answers that say nothing about the request itself (Graph's own 4xx otherwise do): never kept.
_NOT_ABOUT_THE_REQUEST = frozenset({408, 429})
# Kept as one ASCII string property, well inside Table Storage's 64 KiB per property and, beside the largest
# request a record keeps (896 KiB), inside its 1 MiB per entity. A longer refusal is not kept: a poll then sends
# the request again, as after a failure that said nothing about the request.
MAX_REFUSAL_CHARS = 32 * 1024


class RefusalUnreadable(ValueError):
    """A stored refusal that is not one the gateway wrote."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """What `graph_error` keeps of Graph's 4xx: status, code, message, Graph's ids (headers and innerError)."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()
    inner: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, error: GatewayError) -> Refusal | None:
        """Graph's refusal of the request itself (its 4xx but 408 and 429), if it fits on the record; else None:
        a 5xx (Graph unavailable or throttling past the deadline, no token, the token refused) refused nobody's body."""
        if not 400 <= error.status < 500 or error.status in _NOT_ABOUT_THE_REQUEST:
            return None
        refusal = cls(error.status, error.code, error.message, _pairs(error.headers), _pairs(error.inner))
        return refusal if len(refusal.to_text()) <= MAX_REFUSAL_CHARS else None

    def error(self) -> GatewayError:
        """The refusal as the caller got it (the answer's own request ids are added when it is answered)."""
        return GatewayError(self.status, self.code, self.message, headers=dict(self.headers), inner=dict(self.inner))

    def to_text(self) -> str:
        fields = {"status": self.status, "code": self.code, "message": self.message}
        return json.dumps({**fields, "headers": dict(self.headers), "inner": dict(self.inner)}, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str) -> Refusal:
        """The stored refusal, or `RefusalUnreadable` for any other shape."""
        try:
            stored: Any = json.loads(text)
        except ValueError as exc:
            raise RefusalUnreadable("the refusal is not JSON") from exc
        if not isinstance(stored, dict) or set(stored) != {"status", "code", "message", "headers", "inner"}:
            raise RefusalUnreadable("the refusal lacks a field or has another")
        status, code, message = stored["status"], stored["code"], stored["message"]
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status < 500:
            raise RefusalUnreadable("the refusal's status is no 4xx")
        if not (isinstance(code, str) and isinstance(message, str)):
            raise RefusalUnreadable("the refusal's code or message is not a string")
        return cls(status, code, message, _texts(stored["headers"]), _texts(stored["inner"]))


def _pairs(mapping: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(mapping.items()))


def _texts(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RefusalUnreadable("the refusal's headers or innerError are not strings")
    return _pairs(value)
