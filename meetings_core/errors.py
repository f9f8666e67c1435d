"""Errors the gateway answers with, always in Microsoft Graph's error envelope."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


class GatewayError(Exception):
    """An answer other than success: HTTP status, Graph-style code, and a message a flow author can act on."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
        inner: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details or []
        self.inner = dict(inner or {})  # more innerError fields, such as Graph's own request-id and date

    def envelope(self, request_id: str, client_request_id: str | None = None) -> dict[str, Any]:
        """The body Graph's SDKs parse into `ODataError`."""
        envelope = error_envelope(self.code, self.message, request_id, client_request_id, self.details)
        if self.inner:  # the gateway's own ids win: innerError's request-id is the answer's request-id header
            envelope["error"]["innerError"] = {**self.inner, **envelope["error"]["innerError"]}
        return envelope


def error_envelope(
    code: str,
    message: str,
    request_id: str,
    client_request_id: str | None = None,
    details: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Build `{"error": {"code", "message", "innerError": {...}}}` as Graph does."""
    inner: dict[str, str] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
    }
    if client_request_id:
        inner["client-request-id"] = client_request_id
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    error["innerError"] = inner
    return {"error": error}


def retry_after_header(seconds: float) -> dict[str, str]:
    """A `Retry-After` header in whole seconds, never below 1."""
    return {"Retry-After": str(max(1, round(seconds)))}
