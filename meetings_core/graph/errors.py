"""Graph's error answers, passed through with their code and a hint where the cause is known."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..errors import GatewayError

_HINTS = {
    403: (
        " Hint: the gateway's managed identity may create meetings only for organizers covered by a Teams "
        "application access policy; see the README section 'Teams application access policy'."
    ),
    404: (
        " Hint: the organizer in the path was not found; check that userId is the organizer's Entra object "
        "ID and that the user has a Teams license."
    ),
}


def graph_error(response: httpx.Response) -> GatewayError:
    """Map a non-success Graph answer to the caller's error, keeping Graph's code and message."""
    status = response.status_code
    code, message = _code_and_message(response)
    if status == 401:
        # The token is the gateway's, not the caller's: the caller cannot fix this.
        return GatewayError(502, "BadGateway", f"Graph refused the gateway's own token ({code}).")
    return GatewayError(status, code, message + _HINTS.get(status, ""))


def _code_and_message(response: httpx.Response) -> tuple[str, str]:
    try:
        error: Any = json.loads(response.content).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or response.reason_phrase or "Error")
    message = str(error.get("message") or f"Graph answered {response.status_code}.")
    return code, message


class OutcomeUnknown(GatewayError):
    """Graph may or may not have acted: the key stays reserved until its lease ends (docs/IDEMPOTENCY.md).

    The caller gets a status every client retries (504 after a timeout, 503 otherwise); the engine sets
    `Retry-After` to when the key can be settled.
    """

    def __init__(self, reason: str, *, timeout: bool = False) -> None:
        super().__init__(
            504 if timeout else 503,
            "GatewayTimeout" if timeout else "ServiceUnavailable",
            f"{reason} The meeting may exist; send the same request again after the Retry-After delay to get it "
            "(the gateway lets no other request for this externalId reach Graph meanwhile).",
        )
        self.reason = reason
