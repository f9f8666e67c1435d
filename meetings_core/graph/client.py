"""The Graph createOrGet call: token, retries honouring Retry-After, one overall deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import stamina

from ..errors import GatewayError, retry_after_header
from ..telemetry import tracer
from .errors import graph_error
from .retry_after import parse_retry_after
from .token import TokenProvider

log = logging.getLogger("meetings_core.graph")

_RETRY_STATUSES = frozenset({429, 503, 504})
# Never start an attempt with less time than this left: it could not finish.
_MIN_ATTEMPT_SECONDS = 1.0
_BACKOFF_MAX_SECONDS = 2.0
_BACKOFF_JITTER_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class GraphResult:
    """Graph's success answer: 201 created or 200 existing, with the onlineMeeting body."""

    status: int
    body: bytes
    request_id: str | None


class _Transient(Exception):
    """A 429/503/504 answer that may be retried."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"Graph answered {response.status_code}")
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))


class GraphClient:
    """Calls `POST /{version}/users/{id}/onlineMeetings/createOrGet` over one pooled httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        *,
        deadline_seconds: float,
        attempt_timeout_seconds: float,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._deadline_seconds = deadline_seconds
        self._attempt_timeout = attempt_timeout_seconds

    async def create_or_get(
        self,
        api_version: str,
        organizer_id: str,
        body: dict[str, Any],
        *,
        client_request_id: str,
        deadline_seconds: float | None = None,
    ) -> GraphResult:
        """Forward the caller's body; raise `GatewayError` with Graph's code, or 503/504 when time runs out."""
        budget = min(self._deadline_seconds, deadline_seconds or self._deadline_seconds)
        deadline = time.monotonic() + budget
        path = f"/{api_version}/users/{quote(organizer_id, safe='')}/onlineMeetings/createOrGet"
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            async for attempt in stamina.retry_context(
                on=lambda exc: self._backoff(exc, deadline),
                attempts=None,
                timeout=budget,
                wait_initial=0.2,
                wait_max=_BACKOFF_MAX_SECONDS,
                wait_jitter=_BACKOFF_JITTER_SECONDS,
            ):
                with attempt:
                    response = await self._send(path, content, client_request_id, deadline, attempt.num)
        except _Transient as exc:
            raise _exhausted(exc.response.status_code, exc.retry_after) from None
        except (httpx.TimeoutException, TimeoutError):
            raise _exhausted(504, None) from None
        except httpx.TransportError:
            raise _exhausted(503, None) from None
        return _result(response)

    async def _send(
        self, path: str, content: bytes, client_request_id: str, deadline: float, attempt: int
    ) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the Graph deadline has passed")
        started = time.monotonic()
        # An absolute bound on the whole attempt (token, connect, send, slow-drip read): with the deadline
        # inside the reservation's lease, no request of ours is in flight once the lease ends.
        async with asyncio.timeout(remaining):
            token = await self._tokens.get()
            with tracer.start_as_current_span("graph createOrGet") as span:
                span.set_attribute("graph.attempt", attempt)
                response = await self._http.post(
                    path,
                    content=content,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                        "client-request-id": client_request_id,
                    },
                    timeout=min(self._attempt_timeout, remaining),
                )
                span.set_attribute("http.response.status_code", response.status_code)
        log.info(
            "graph createOrGet answered",
            extra={
                "graph_status": response.status_code,
                "graph_request_id": response.headers.get("request-id"),
                "client_request_id": client_request_id,
                "attempt": attempt,
                "elapsed_ms": round((time.monotonic() - started) * 1000),
            },
        )
        if response.status_code in _RETRY_STATUSES:
            raise _Transient(response)
        return response

    def _backoff(self, exc: Exception, deadline: float) -> bool | float:
        """Stamina hook: the wait before the next attempt, or False when the deadline forbids one."""
        if not isinstance(exc, _Transient | httpx.TransportError | TimeoutError):
            return False
        remaining = deadline - time.monotonic()
        wait = exc.retry_after if isinstance(exc, _Transient) else None
        worst_wait = wait if wait is not None else _BACKOFF_MAX_SECONDS + _BACKOFF_JITTER_SECONDS
        if worst_wait + _MIN_ATTEMPT_SECONDS > remaining:
            return False
        return wait if wait is not None else True


def _result(response: httpx.Response) -> GraphResult:
    request_id = response.headers.get("request-id")
    if response.status_code in (200, 201):
        try:
            json.loads(response.content)
        except ValueError:
            raise GatewayError(502, "BadGateway", "Graph answered with a body that is not JSON.") from None
        return GraphResult(response.status_code, response.content, request_id)
    raise graph_error(response)


def _exhausted(status: int, retry_after: float | None) -> GatewayError:
    wait = retry_after if retry_after is not None else 5.0
    if status == 429:
        message = "Graph is throttling requests and the gateway's deadline would pass before it may retry."
    elif status == 504:
        message = "Graph did not answer in time."
    else:
        message = "Graph is unavailable or the connection to it failed."
    return GatewayError(
        504 if status == 504 else 503,
        "GatewayTimeout" if status == 504 else "ServiceUnavailable",
        f"{message} No meeting was confirmed; send the same request again after the Retry-After delay.",
        headers=retry_after_header(wait),
    )
