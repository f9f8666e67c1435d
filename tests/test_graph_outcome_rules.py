"""The Graph client's outcome classes as rules (issue 19, item 8): only what never reached Graph is retried,
only 200/201 with a JSON body is a meeting, and no attempt outlives the caller's deadline.

Every "never retried" case has a control beside it that *is* retried under the same deadline, so the
tests fail when a retry is added, not only when the deadline happens to leave no room for one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
import respx
from azure.core.credentials import AccessToken

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphClient
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.graph.token import TokenProvider
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine
from meetings_core.idempotency.records import State
from tests.memory_store import MemoryStore
from tests.rules_rig import CTX, call

URL = "https://graph.test/v1.0/users/u/onlineMeetings/createOrGet"
ROOMY_DEADLINE = 10.0  # room for several retries: a broken rule would retry here
MEETING = {"id": "MSo1", "externalId": "x"}


class Credential:
    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("token", int(time.time() + 3600))


def client(deadline: float = ROOMY_DEADLINE, base_url: str = "https://graph.test") -> GraphClient:
    tokens = TokenProvider(Credential(), "scope")  # type: ignore[arg-type]
    return GraphClient(httpx.AsyncHTTPTransport(), base_url, tokens, deadline_seconds=deadline)


async def send(graph: GraphClient, deadline: float | None = None) -> object:
    return await graph.create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c", deadline_seconds=deadline)


@respx.mock
@pytest.mark.parametrize(
    ("first", "status"),
    [
        (httpx.ReadTimeout("no answer"), 504),
        (httpx.WriteTimeout("request half sent"), 504),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), 503),
        (httpx.ReadError("connection reset"), 503),
        (httpx.Response(500, json={"error": {"code": "UnknownError", "message": "boom"}}), 503),
        (httpx.Response(502), 503),
        (httpx.Response(504), 503),
        (httpx.Response(408), 503),
    ],
    ids=["read-timeout", "write-timeout", "dropped", "reset", "500", "502", "504", "408"],
)
async def test_what_graph_may_have_seen_is_never_retried(first: object, status: int):
    route = respx.post(URL).mock(side_effect=[first, httpx.Response(201, json=MEETING)])
    with pytest.raises(OutcomeUnknown) as raised:
        await send(client())
    assert route.call_count == 1, "an unknown outcome was sent to Graph again"
    assert raised.value.status == status


@respx.mock
@pytest.mark.parametrize(
    "first",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no connection"),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(503, headers={"Retry-After": "0"}),
    ],
    ids=["refused", "connect-timeout", "429", "503"],
)
async def test_control_what_never_reached_graph_is_retried_under_the_same_deadline(first: object):
    route = respx.post(URL).mock(side_effect=[first, httpx.Response(201, json=MEETING)])
    result = await send(client())
    assert route.call_count == 2
    assert result.status == 201  # type: ignore[attr-defined]


@respx.mock
@pytest.mark.parametrize("status", [202, 203, 206])
async def test_a_2xx_other_than_200_or_201_is_never_the_meeting_even_with_a_json_body(status: int):
    route = respx.post(URL).mock(return_value=httpx.Response(status, json=MEETING))
    with pytest.raises(OutcomeUnknown):
        await send(client())
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize("status", [200, 201])
async def test_control_200_and_201_with_a_json_body_are_the_meeting(status: int):
    respx.post(URL).mock(return_value=httpx.Response(status, json=MEETING))
    result = await send(client())
    assert result.status == status  # type: ignore[attr-defined]


@respx.mock
@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(202, json=MEETING),
        # JSON but no object (a proxy's page quoted as a string, a list...): the store reads back only objects.
        *(
            httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
            for body in (b'"<html>proxy sign-in</html>"', b"[1, 2]", b"null", b"42")
        ),
    ],
    ids=["202-meeting", "200-string", "200-list", "200-null", "200-number"],
)
async def test_an_odd_2xx_leaves_the_reservation_in_progress_not_completed(answer: httpx.Response):
    """Through the engine with the real client: an answer that is no meeting is not stored as the meeting; the
    key stays reserved, so the next request asks Graph again."""
    respx.post("https://graph.test/v1.0/users/1f35f2e6-9cab-44ad-8d5a-b74c14720000/onlineMeetings/createOrGet").mock(
        return_value=answer
    )
    store = MemoryStore()
    config = EngineConfig(lease=timedelta(seconds=45), duplicate_wait_seconds=50, retention=timedelta(days=1))
    engine = IdempotencyEngine(store, client(), config, CompletedCache(0))
    with pytest.raises(OutcomeUnknown):
        await engine.create_or_get(call(), CTX)
    (record,) = store.records.values()
    assert record.state is State.IN_PROGRESS


@respx.mock
async def test_no_attempt_outlives_the_deadline_the_engine_gives():
    """The engine gives the lease minus the grace; an answer arriving later is an unknown outcome, in time."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(6)
        return httpx.Response(201, json=MEETING)

    respx.post(URL).mock(side_effect=slow)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        await send(client(deadline=30), deadline=1.0)
    assert time.monotonic() - started < 4  # 1 s and room for a loaded machine; the answer would take 6 s


@respx.mock
async def test_a_definite_refusal_is_not_an_unknown_outcome():
    respx.post(URL).mock(return_value=httpx.Response(400, json={"error": {"code": "BadRequest", "message": "no"}}))
    with pytest.raises(GatewayError) as raised:
        await send(client())
    assert not isinstance(raised.value, OutcomeUnknown)  # the engine may release the key at once
    assert raised.value.status == 400
