"""The request target (path and query) exactly as the client sent it, which HMAC signatures cover."""

from __future__ import annotations

from starlette.types import Scope


def request_target(scope: Scope) -> str:
    """`/path?query` as received: the raw, still percent-encoded path when the server gives it."""
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes) and raw_path:
        # Some servers have put the query into raw_path too; the ASGI spec says it is the path only.
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
    else:
        path = str(scope.get("path", ""))
    query = scope.get("query_string", b"")
    query_text = query.decode("latin-1") if isinstance(query, bytes) else str(query)
    return f"{path}?{query_text}" if query_text else path
