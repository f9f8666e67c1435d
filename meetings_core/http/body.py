"""Reading the request body: bounded in size and time, JSON content type, strict JSON."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request

from ..errors import GatewayError

# Graph's createOrGet body nests 6 levels deep; anything far deeper is an attack on the parser.
MAX_DEPTH = 32
# No createOrGet field is a number; long digit strings only cost CPU (int() refuses over 4,300 digits).
MAX_INT_DIGITS = 100
_DIGITS = re.compile(r"[0-9]{1,20}")
# An oversized body is read (and dropped) up to this much past the limit before the 413: a server that closes
# with unread data makes the client's TCP stack reset the connection, and the client never sees the 413.
DRAIN_BYTES = 1024 * 1024
# With this the server closes the connection after the answer: what is left of the body is never parsed.
_CLOSE = {"Connection": "close"}


async def read_body(request: Request, max_bytes: int, timeout_seconds: float) -> bytes:
    """The raw body of a JSON request, bounded in size and in time (signatures are checked over these bytes)."""
    _check_content_type(request.headers.get("content-type"))
    try:
        async with asyncio.timeout(timeout_seconds):
            return await _read_bounded(request, max_bytes)
    except ClientDisconnect:  # nobody reads the answer; a refusal, not an unexpected error in the logs
        raise GatewayError(400, "BadRequest", "The connection closed before the whole body arrived.") from None
    except TimeoutError:
        # Sent too slowly or never finished (slowloris): the rest of it must not be read as the next request.
        raise GatewayError(
            408,
            "RequestTimeout",
            f"The request body did not arrive within {timeout_seconds:g} s; send the request again.",
            headers=_CLOSE,
        ) from None


def parse_json(raw: bytes) -> Any:
    """Strict JSON (no duplicate keys, no NaN, bounded nesting and numbers, valid Unicode), else a 400."""
    if not raw.strip():
        raise GatewayError(400, "BadRequest", "The request body is empty: send a JSON object with at least externalId.")
    try:
        # A leading byte order mark is ignored, as RFC 8259 section 8.1 allows (.NET's StreamWriter writes one).
        text = raw.decode("utf-8-sig")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite,
            parse_int=_bounded_int,
        )
    except UnicodeDecodeError:
        raise GatewayError(400, "BadRequest", "The request body is not valid UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise GatewayError(
            400,
            "BadRequest",
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
        ) from None
    except RecursionError:
        raise _too_deep() from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    """Nesting within MAX_DEPTH and no lone surrogates (from \\ud800 escapes), which no store can encode."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise GatewayError(
                    400, "BadRequest", "The request body contains a \\u escape of a lone surrogate, not a character."
                ) from None


def _too_deep() -> GatewayError:
    return GatewayError(400, "BadRequest", f"The request body is nested deeper than {MAX_DEPTH} levels.")


def _check_content_type(value: str | None) -> None:
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise GatewayError(
            415,
            "UnsupportedMediaType",
            f"Content-Type must be application/json (got {media_type or 'none'}).",
        )


async def _read_bounded(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    announced = int(declared) if _DIGITS.fullmatch(declared) else 0
    if announced > max_bytes + DRAIN_BYTES or (announced > max_bytes and _waits_for_continue(request)):
        raise _too_large(max_bytes, _CLOSE)  # not worth reading, or not yet sent: answer before it comes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes + DRAIN_BYTES:
            raise _too_large(max_bytes, _CLOSE)
        if size <= max_bytes:
            chunks.append(chunk)
    if size > max_bytes:  # read to its end, so the client reads the 413 instead of a reset
        raise _too_large(max_bytes)
    return b"".join(chunks)


def _waits_for_continue(request: Request) -> bool:
    """The client sends the body only once we start reading it (`Expect: 100-continue`)."""
    return "100-continue" in request.headers.get("expect", "").lower()


def _too_large(max_bytes: int, headers: dict[str, str] | None = None) -> GatewayError:
    return GatewayError(
        413,
        "RequestEntityTooLarge",
        f"The request body is larger than the gateway accepts ({max_bytes} bytes).",
        headers=headers,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise GatewayError(
                400, "BadRequest", f"The request body has the key '{_printable(key)}' twice in one object."
            )
        result[key] = value
    return result


def _printable(text: str) -> str:
    # A key may be a lone surrogate ("\\ud800"), which no UTF-8 answer can carry: show it as its escape.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise GatewayError(400, "BadRequest", f"The request body contains the number {text[:20]}, too large for JSON.")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise GatewayError(
            400, "BadRequest", f"The request body contains a number with more than {MAX_INT_DIGITS} digits."
        )
    return int(text)


def _no_constants(name: str) -> Any:
    raise GatewayError(400, "BadRequest", f"The request body contains {name}, which is not valid JSON.")
