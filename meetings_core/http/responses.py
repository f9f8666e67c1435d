"""Building answers: JSON bodies, Graph error envelopes, correlation and security headers."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import Response

from ..errors import GatewayError

log = logging.getLogger("meetings_core.http")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def json_response(request: Request, status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer carrying the request's correlation ids; relative Locations made absolute."""
    extra = dict(headers or {})
    location = extra.get("Location")
    if location and location.startswith("/"):
        extra["Location"] = str(request.base_url).rstrip("/") + location
    extra["request-id"] = request.state.request_id
    extra["client-request-id"] = request.state.client_request_id
    return Response(body, status_code=status, headers=extra, media_type="application/json")


def error_response(request: Request, error: GatewayError) -> Response:
    """The error in Graph's envelope, which Graph SDKs parse into `ODataError`."""
    envelope = error.envelope(request.state.request_id, request.state.client_request_id)
    # Messages may quote what the caller sent; a lone surrogate in it must not turn the 4xx into a 500.
    body = json.dumps(envelope, ensure_ascii=False).encode("utf-8", "backslashreplace")
    log.info(
        "request refused",
        extra={"status": error.status, "code": error.code, "request_id": request.state.request_id},
    )
    return json_response(request, error.status, body, error.headers)
