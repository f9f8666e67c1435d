"""The Graph createOrGet call: token, retries of what never reached Graph, one overall deadline.

Outcome classes (docs/IDEMPOTENCY.md): a request that provably never reached Graph (connect failures,
429, 503) may be retried inside the deadline. Anything else that is not a definite answer (a read
timeout, a connection dropped after sending, 5xx other than 503, 408, a body that cannot be read) is
an *unknown outcome*: Graph may still be creating the meeting, so it is never retried here and the
engine keeps the key reserved until its lease ends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import GatewayError, retry_after_header
from ..outbound import USER_AGENT
from ..telemetry import sdk_installed, tracer
from ..telemetry.graph import attempt_timer, record_graph_call
from ..telemetry.names import SPAN_GRAPH
from .errors import OutcomeUnknown, graph_error
from .retry_after import parse_retry_after
from .token import TokenProvider

log = logging.getLogger("meetings_core.graph")

# Answers that say Graph did not act on the request: safe to send again.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
# Answers that say nothing about whether Graph acted.
_UNKNOWN_STATUSES = frozenset({408}) | frozenset(range(500, 600)) - _NOT_PROCESSED_STATUSES
# Exceptions raised before a single byte of the request left this process.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Never start an attempt with less time than this left: it could not finish.
_MIN_ATTEMPT_SECONDS = 1.0
# Never send a request with less time than this left (after the token): it would only become an unknown outcome.
_MIN_SEND_SECONDS = 0.5
_BACKOFF_INITIAL_SECONDS = 0.2
_BACKOFF_MAX_SECONDS = 2.0
_BACKOFF_JITTER_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class GraphResult:
    """Graph's success answer: 201 created or 200 existing, with the onlineMeeting body."""

    status: int
    body: bytes
    request_id: str | None


class _NotProcessed(Exception):
    """A 429/503 answer: Graph refused the request without acting on it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"Graph answered {response.status_code}")
        self.response = response
        self.retry_after: float | None = parse_retry_after(response.headers.get("Retry-After"))


class _Refused(Exception):
    """Every attempt was refused before Graph acted: `error` for the caller, `outcome` for the metrics."""

    def __init__(self, outcome: str, error: GatewayError) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.error = error


class _NeverSent(Exception):
    """The deadline or the token endpoint stopped an attempt before its request was sent."""


class GraphClient:
    """Calls `POST /{version}/users/{id}/onlineMeetings/createOrGet` through one pooled httpx transport.

    The transport is used directly, without an `httpx.AsyncClient`: one POST needs none of its cookies,
    redirects, auth flows or merged defaults, and they cost a fifth of the call's CPU (docs/BENCHMARKS.md).
    """

    def __init__(
        self, transport: httpx.AsyncBaseTransport, base_url: str, tokens: TokenProvider, *, deadline_seconds: float
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._host = httpx.URL(base_url).host
        self._tokens = tokens
        self._deadline_seconds = deadline_seconds

    async def create_or_get(
        self,
        api_version: str,
        organizer_id: str,
        body: dict[str, Any],
        *,
        client_request_id: str,
        deadline_seconds: float | None = None,
    ) -> GraphResult:
        """Forward the caller's body.

        Raises `GatewayError` for a definite failure (Graph's 4xx, or every attempt refused before
        Graph acted) and `OutcomeUnknown` when Graph may have created the meeting without us knowing.
        """
        started = time.monotonic()
        outcome = "unknown_outcome"  # what an unexpected exception leaves the caller with
        try:
            result = await self._create_or_get(api_version, organizer_id, body, client_request_id, deadline_seconds)
        except OutcomeUnknown:
            raise
        except _Refused as exc:
            outcome = exc.outcome
            raise exc.error from exc.__cause__
        except GatewayError:
            outcome = "refused"  # Graph's definite answer: 4xx, or 401 to the gateway's own token
            raise
        else:
            outcome = "created" if result.status == 201 else "existing"
            return result
        finally:
            record_graph_call(outcome, api_version, started)

    async def _create_or_get(
        self,
        api_version: str,
        organizer_id: str,
        body: dict[str, Any],
        client_request_id: str,
        deadline_seconds: float | None,
    ) -> GraphResult:
        budget = min(self._deadline_seconds, deadline_seconds or self._deadline_seconds)
        deadline = time.monotonic() + budget
        url = _graph_url(self._base_url, api_version, organizer_id)
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            response = await self._attempts(url, content, client_request_id, deadline)
        except _NotProcessed as exc:
            throttled = exc.response.status_code == 429
            error = _exhausted(exc.response.status_code, exc.retry_after)
            raise _Refused("throttled" if throttled else "unavailable", error) from exc
        except (*_NEVER_SENT, _NeverSent) as exc:
            raise _Refused("unavailable", _exhausted(503, None)) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise OutcomeUnknown("Graph did not answer within the gateway's deadline.", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise OutcomeUnknown(
                f"The connection to Graph failed after the request was sent ({type(exc).__name__})."
            ) from exc
        return _result(response)

    async def _attempts(
        self, url: httpx.URL, content: bytes, client_request_id: str, deadline: float
    ) -> httpx.Response:
        """Graph's answer; what never reached Graph is sent again while the deadline leaves room for it."""
        attempt = 1
        while True:
            try:
                return await self._send(url, content, client_request_id, deadline, attempt)
            except (_NotProcessed, *_NEVER_SENT) as exc:
                wait = _backoff(exc, attempt, deadline - time.monotonic())
                if wait is None:
                    raise
            await asyncio.sleep(wait)
            attempt += 1

    async def _send(
        self, url: httpx.URL, content: bytes, client_request_id: str, deadline: float, attempt: int
    ) -> httpx.Response:
        token = await self._token(deadline)
        remaining = deadline - time.monotonic()
        if remaining < _MIN_SEND_SECONDS:
            raise _NeverSent("too little of the Graph deadline was left to send the request")
        started = time.monotonic()
        # An absolute bound on the whole exchange (connect, send, slow-drip read): with the deadline
        # inside the reservation's lease, no request of ours is in flight once the lease ends.
        async with asyncio.timeout(remaining):
            response = await self._traced(_request(url, content, token, client_request_id, remaining), attempt)
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
        if response.status_code in _NOT_PROCESSED_STATUSES:
            raise _NotProcessed(response)
        return response

    async def _traced(self, request: httpx.Request, attempt: int) -> httpx.Response:
        """The exchange in a span and the attempt histogram when an OpenTelemetry SDK records them; without one,
        both are no-ops of the API that still cost CPU on every call (docs/BENCHMARKS.md)."""
        if not sdk_installed():  # asked per call, as the HTTP layer does: a host may install its provider late
            return await self._exchange(request)
        with tracer.start_as_current_span(SPAN_GRAPH) as span, attempt_timer(self._host) as timed:
            span.set_attribute("graph.attempt", attempt)
            response = await self._exchange(request)
            span.set_attribute("http.response.status_code", response.status_code)
            timed.status = response.status_code
        return response

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """The answer, read whole (and decoded by its Content-Encoding), its connection back in the pool."""
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _token(self, deadline: float) -> str:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self._tokens.get()
        except TimeoutError as exc:
            raise _NeverSent("the managed identity token did not arrive before the Graph deadline") from exc


@functools.lru_cache(maxsize=256)
def _graph_url(base_url: str, api_version: str, organizer_id: str) -> httpx.URL:
    """The createOrGet URL, parsed once per organizer and version: httpx checks a URL character by character in
    Python (about 16 us a parse), and a worker calls Graph for a few organizers again and again. URLs are immutable."""
    return httpx.URL(f"{base_url}/{api_version}/users/{quote(organizer_id, safe='')}/onlineMeetings/createOrGet")


def _backoff(exc: Exception, attempt: int, remaining: float) -> float | None:
    """The wait before attempt `attempt + 1`: Graph's Retry-After (at least the first backoff, so a `0` does not
    resend at network speed), else exponential with jitter; None when the deadline could not hold the longest
    such wait and one more attempt."""
    retry_after = exc.retry_after if isinstance(exc, _NotProcessed) else None
    if retry_after is not None:
        retry_after = max(retry_after, _BACKOFF_INITIAL_SECONDS)
    worst_wait = retry_after if retry_after is not None else _BACKOFF_MAX_SECONDS + _BACKOFF_JITTER_SECONDS
    if worst_wait + _MIN_ATTEMPT_SECONDS > remaining:
        return None
    if retry_after is not None:
        return retry_after
    doublings = min(attempt - 1, 8)  # past the cap already; unbounded, 2.0 ** 1024 overflows
    backoff = min(_BACKOFF_MAX_SECONDS, _BACKOFF_INITIAL_SECONDS * 2.0**doublings)
    return backoff + random.uniform(0, _BACKOFF_JITTER_SECONDS)  # noqa: S311 (jitter, not a secret)


def _request(url: httpx.URL, content: bytes, token: str, client_request_id: str, seconds: float) -> httpx.Request:
    """Exactly the request Graph gets, every header included: there is no client whose defaults would be merged."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        # Only codecs httpx always decodes; left out, aiohttp would offer its own (br, zstd) when installed.
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": USER_AGENT,
        "client-request-id": client_request_id,
    }
    timeout = httpx.Timeout(seconds, connect=min(5.0, seconds))
    return httpx.Request("POST", url, content=content, headers=headers, extensions={"timeout": timeout.as_dict()})


def _result(response: httpx.Response) -> GraphResult:
    request_id = response.headers.get("request-id")
    status = response.status_code
    if status in _UNKNOWN_STATUSES or (status < 400 and status not in (200, 201)):
        raise OutcomeUnknown(f"Graph answered {status}; it may or may not have created the meeting.")
    if status in (200, 201):
        try:
            meeting = json.loads(response.content)
        except ValueError as exc:
            raise OutcomeUnknown("Graph answered with a body that is not JSON.") from exc
        if not isinstance(meeting, dict):  # a proxy's page quoted as a string, a list: no meeting to store or replay
            raise OutcomeUnknown("Graph answered with JSON that is not an onlineMeeting object.")
        return GraphResult(status, response.content, request_id)
    raise graph_error(response)


def _exhausted(status: int, retry_after: float | None) -> GatewayError:
    wait = retry_after if retry_after is not None else 5.0
    if status == 429:
        message = "Graph is throttling requests and the gateway's deadline would pass before it may retry."
    else:
        message = "Graph is unavailable or could not be reached."
    return GatewayError(
        503,
        "ServiceUnavailable",
        f"{message} No meeting was created; send the same request again after the Retry-After delay.",
        headers=retry_after_header(wait),
    )
