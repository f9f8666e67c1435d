"""The request target (path and query) that HMAC signatures cover, the same under uvicorn and the Functions host."""

from __future__ import annotations

from starlette.types import Scope


def request_target(scope: Scope) -> str:
    """`/path?query`: the path with percent-escapes decoded, the query as sent.

    The decoded path, because the Functions host's ASGI adapter passes only that (its `raw_path` is the
    decoded path too); the gateway's own paths hold no escapes, so for them it is the path as sent.
    """
    query = scope.get("query_string", b"")
    query_text = query.decode("latin-1") if isinstance(query, bytes) else str(query)
    path = str(scope.get("path", ""))
    return f"{path}?{query_text}" if query_text else path
