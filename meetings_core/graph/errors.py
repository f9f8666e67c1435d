"""Graph's error answers, passed through with their code and a hint where the cause is known."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

import httpx

from ..errors import GatewayError

# Graph's ids and dates are echoed to the caller only when they look like ids and dates: nothing else of Graph's
# answer (which the gateway does not control) reaches a header or the envelope.
_GRAPH_ID = re.compile(r"[A-Za-z0-9\-_.:]{1,100}")
_GRAPH_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{2,20}Z?")
_GRAPH_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,99}")
_HINTS = {
    403: (
        " Hint: the gateway's managed identity may create meetings only for organizers covered by a Teams "
        "application access policy; see docs/DEPLOY.md, section 'Teams application access policy'."
    ),
    404: (
        " Hint: the organizer in the path was not found; check that userId is the organizer's Entra object "
        "ID and that the user has a Teams license."
    ),
}


def graph_error(response: httpx.Response) -> GatewayError:
    """Map a non-success Graph answer to the caller's error, keeping Graph's code and message."""
    status = response.status_code
    error = _error_of(response)
    # Graph's own code and message when its answer has them; a proxy's page or an empty body gets the code Graph
    # uses for the status (BadRequest, not "Bad Request").
    code = _plain(error.get("code"), _GRAPH_CODE) or _status_code(status)
    message = error.get("message") if isinstance(error.get("message"), str) and error["message"] else None
    message = message or f"Graph answered {status}."
    request_id = _plain(response.headers.get("request-id"), _GRAPH_ID)
    headers = {"graph-request-id": request_id} if request_id else {}
    inner = _graph_inner(error.get("innerError"), request_id)
    if status == 401:
        # The token is the gateway's, not the caller's: the caller cannot fix this.
        return GatewayError(502, "BadGateway", f"Graph refused the gateway's own token ({code}).", headers=headers)
    return GatewayError(status, code, message + _HINTS.get(status, ""), headers=headers, inner=inner)


def _status_code(status: int) -> str:
    try:
        return "".join(HTTPStatus(status).phrase.replace("-", " ").split())
    except ValueError:
        return "Error"


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error: Any = json.loads(response.content).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    return error if isinstance(error, dict) else {}


def _graph_inner(inner: Any, header_request_id: str | None) -> dict[str, str]:
    """Graph's innerError request-id and date, as `graph-request-id` and `graph-date` beside the gateway's own."""
    inner = inner if isinstance(inner, dict) else {}
    found = {
        "graph-request-id": _plain(inner.get("request-id"), _GRAPH_ID) or header_request_id,
        "graph-date": _plain(inner.get("date"), _GRAPH_DATE),
    }
    return {name: value for name, value in found.items() if value}


def _plain(value: Any, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


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
