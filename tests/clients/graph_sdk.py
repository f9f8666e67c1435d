"""Microsoft Graph's Python SDK (msgraph-sdk) with its default middleware, the real kiota RetryHandler included.

Documented behaviour (kiota_http.middleware.RetryHandler and RetryHandlerOption, the code this model runs):
retries 429, 503 and 504 only, up to 3 times (`RetryHandlerOption.DEFAULT_MAX_RETRIES`), waiting the
Retry-After seconds when the answer has them, an exponential backoff plus 3 s otherwise; a retry that would
wait 180 s or more is not made. See also https://learn.microsoft.com/graph/sdks/customize-client (the
retry handler is in the default middleware) and https://learn.microsoft.com/graph/throttling.
A 202 is a success to the SDK: its body would be parsed as an onlineMeeting without an id, so the gateway
must never answer one to a caller that did not send `Prefer: respond-async`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_post_request_body import (
    CreateOrGetPostRequestBody,
)
from msgraph_core import GraphClientFactory

from .result import RunResult


class _Recording(httpx.AsyncBaseTransport):
    """Below the SDK's middleware: sees every attempt the retry handler makes."""

    def __init__(self, seen: list[int], inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        self._seen.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def run(
    gateway: str,
    organizer: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """createOrGet through `GraphServiceClient` pointed at the gateway (the way SDK callers adopt it)."""
    seen: list[int] = []
    http = httpx.AsyncClient(transport=_Recording(seen, transport), headers=headers or {}, timeout=120)
    http = GraphClientFactory.create_with_default_middleware(client=http)
    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider(), client=http)
    adapter.base_url = f"{gateway}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    request = CreateOrGetPostRequestBody(
        external_id=body["externalId"],
        subject=body.get("subject"),
        start_date_time=_time(body.get("startDateTime")),
        end_date_time=_time(body.get("endDateTime")),
    )
    try:
        meeting = await client.users.by_user_id(organizer).online_meetings.create_or_get.post(request)
    except ODataError as error:
        return RunResult(False, error.response_status_code, None, seen)
    finally:
        await http.aclose()
    ok = meeting is not None and bool(meeting.id)
    payload = {"id": meeting.id, "joinWebUrl": meeting.join_web_url} if meeting is not None else None
    return RunResult(ok, seen[-1] if seen else None, payload, seen)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
