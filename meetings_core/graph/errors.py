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
    if status >= 500:
        return GatewayError(502, "BadGateway", f"Graph failed with {status} {code}: {message}")
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
