"""ASGI middleware: correlation ids on every request, security headers on every answer."""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import SECURITY_HEADERS

# A caller's client-request-id is echoed and sent to Graph, so only plain ids are kept.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:]{1,100}")
_SECURITY = tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items())


class CorrelationMiddleware:
    """Sets `request.state.request_id` and `client_request_id`, and adds security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        sent = _header(scope, b"client-request-id")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["arrived"] = time.monotonic()  # the answer's deadline counts from here (RequestContext)
        state["client_request_id"] = sent if sent and _CLIENT_REQUEST_ID.fullmatch(sent) else request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_missing(message, ((b"request-id", request_id.encode("latin-1")),))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _add_missing(message: Message, extra: tuple[tuple[bytes, bytes], ...]) -> None:
    """Add the security headers and `extra` that the answer does not set itself (names compared lower-cased)."""
    headers = message["headers"] = list(message.get("headers", ()))
    present = {name.lower() for name, _ in headers}
    headers.extend(header for header in (*_SECURITY, *extra) if header[0] not in present)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
