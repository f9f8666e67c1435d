"""Unit-level edge cases of the Graph client and token provider (respx; the main paths run over real HTTP)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import respx
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphClient, _backoff
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.graph.token import TokenProvider

URL = "https://graph.test/v1.0/users/u/onlineMeetings/createOrGet"


class FakeCredential:
    def __init__(self, lifetime: float = 3600, fail: bool = False) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.fail = fail

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise ClientAuthenticationError("identity endpoint said no")
        return AccessToken(f"token-{self.calls}", int(time.time() + self.lifetime))


def client(credential: FakeCredential | None = None, deadline: float = 5) -> GraphClient:
    tokens = TokenProvider(credential or FakeCredential(), "scope")  # type: ignore[arg-type]
    return GraphClient(httpx.AsyncHTTPTransport(), "https://graph.test", tokens, deadline_seconds=deadline)


async def test_token_provider_single_flight_and_refresh_before_expiry():
    credential = FakeCredential()
    tokens = TokenProvider(credential, "scope")  # type: ignore[arg-type]
    assert set(await asyncio.gather(*(tokens.get() for _ in range(10)))) == {"token-1"}
    assert credential.calls == 1
    soon = FakeCredential(lifetime=200)  # inside the 5-minute refresh margin: never reused
    tokens = TokenProvider(soon, "scope")  # type: ignore[arg-type]
    await tokens.get()
    await tokens.get()
    assert soon.calls == 2


async def test_identity_failure_is_503_without_details():
    with pytest.raises(GatewayError) as raised:
        await TokenProvider(FakeCredential(fail=True), "scope").get()  # type: ignore[arg-type]
    assert raised.value.status == 503
    assert "Retry-After" in raised.value.headers


@respx.mock
@pytest.mark.parametrize(
    ("status", "content", "expected_status", "fragment"),
    [
        (401, b'{"error": {"code": "InvalidAuthenticationToken", "message": "bad"}}', 502, "gateway's own token"),
        (500, b'{"error": {"code": "UnknownError", "message": "boom"}}', 503, "may or may not have created"),
        (502, b"bad gateway", 503, "may or may not have created"),
        (408, b"", 503, "may or may not have created"),
        (201, b"<html>not json</html>", 503, "not JSON"),
        (409, b"not json at all", 409, "Graph answered 409"),
        (400, b'{"error": {"code": "BadRequest", "message": "Invalid subject"}}', 400, "Invalid subject"),
    ],
)
async def test_graph_answers_map_to_clear_errors(status: int, content: bytes, expected_status: int, fragment: str):
    respx.post(URL).mock(return_value=httpx.Response(status, content=content))
    with pytest.raises(GatewayError) as raised:
        await client().create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert raised.value.status == expected_status
    assert fragment in raised.value.message


@respx.mock
async def test_retry_after_http_date_is_honoured():
    when = time.time() + 1.2
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
    route = respx.post(URL).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": date}), httpx.Response(201, json={"id": "m"})]
    )
    started = time.monotonic()
    result = await client().create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert result.status == 201
    assert route.call_count == 2
    assert time.monotonic() - started >= 0.2


# Which failures are retried and which never are: tests/test_graph_outcome_rules.py (each case and its control).


@respx.mock
async def test_connect_failures_until_the_deadline_are_a_definite_503():
    route = respx.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    started = time.monotonic()
    with pytest.raises(GatewayError) as raised:
        await client(deadline=6).create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert not isinstance(raised.value, OutcomeUnknown)
    assert raised.value.status == 503
    assert "No meeting was created" in raised.value.message
    assert route.call_count >= 2
    assert time.monotonic() - started < 6.5


@respx.mock
async def test_a_body_that_cannot_be_decoded_is_an_unknown_outcome():
    garbage = httpx.Response(201, stream=httpx.ByteStream(b"not gzip"), headers={"Content-Encoding": "gzip"})
    route = respx.post(URL).mock(return_value=garbage)
    with pytest.raises(OutcomeUnknown):
        await client().create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize("status", [202, 204, 302, 307])
async def test_a_success_or_redirect_other_than_200_or_201_is_an_unknown_outcome(status: int):
    route = respx.post(URL).mock(return_value=httpx.Response(status, headers={"Location": "https://elsewhere"}))
    with pytest.raises(OutcomeUnknown):
        await client().create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert route.call_count == 1


class SlowCredential(FakeCredential):
    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        await asyncio.sleep(2.8)
        return await super().get_token(*scopes, **kwargs)


@respx.mock
async def test_a_token_that_leaves_too_little_time_means_the_request_is_never_sent():
    route = respx.post(URL).mock(return_value=httpx.Response(201, json={"id": "m"}))
    slow = client(SlowCredential(), deadline=3)
    with pytest.raises(GatewayError) as raised:
        await slow.create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert not isinstance(raised.value, OutcomeUnknown)  # definite: the key may be released at once
    assert raised.value.status == 503
    assert route.call_count == 0


@respx.mock
async def test_refusals_without_retry_after_back_off_exponentially_with_jitter():
    """0.2 s, 0.4 s, 0.8 s between attempts (capped at 2 s), each plus at most 0.5 s of jitter."""
    route = respx.post(URL).mock(
        side_effect=[httpx.ConnectError("refused")] * 3 + [httpx.Response(201, json={"id": "m"})]
    )
    started = time.monotonic()
    result = await client(deadline=10).create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    elapsed = time.monotonic() - started
    assert (result.status, route.call_count) == (201, 4)
    assert 0.2 + 0.4 + 0.8 <= elapsed < 0.2 + 0.4 + 0.8 + 3 * 0.5 + 0.5


@respx.mock
async def test_no_retry_when_the_deadline_cannot_hold_the_wait_and_one_more_attempt():
    route = respx.post(URL).mock(return_value=httpx.Response(503, headers={"Retry-After": "5"}))
    started = time.monotonic()
    with pytest.raises(GatewayError) as raised:
        await client(deadline=5).create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert (raised.value.status, route.call_count) == (503, 1)
    assert time.monotonic() - started < 1


@respx.mock
async def test_retry_after_zero_waits_the_first_backoff_instead_of_resending_at_network_speed():
    route = respx.post(URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "0"}))
    with pytest.raises(GatewayError) as raised:
        await client(deadline=2).create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert raised.value.status == 503
    assert 2 <= route.call_count <= 6  # 0.2 s apart inside 2 s, leaving 1 s for the last attempt


def test_the_backoff_stays_capped_however_many_attempts_came_before():
    for attempt in (1, 12, 1025, 10**6):
        wait = _backoff(httpx.ConnectError("refused"), attempt, remaining=60)
        assert wait is not None
        assert 0.2 <= wait <= 2.5


class _Answering(httpx.AsyncBaseTransport):
    """Answers every request with a meeting naming the URL it was sent to."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(201, json={"id": request.url.path}, request=request)


async def test_the_graph_url_is_parsed_once_per_organizer_and_version(monkeypatch):
    """httpx validates a URL character by character in Python: each createOrGet URL is parsed once per worker."""
    base = "https://graph-parsed-once.test"
    parsed: list[str] = []
    real_urlparse = httpx._urls.urlparse

    def counting(url: str = "", **kwargs: object) -> object:
        parsed.append(url)
        return real_urlparse(url, **kwargs)  # type: ignore[arg-type]

    transport = _Answering()
    graph = GraphClient(transport, base, TokenProvider(FakeCredential(), "scope"), deadline_seconds=5)  # type: ignore[arg-type]
    monkeypatch.setattr(httpx._urls, "urlparse", counting)
    calls = [("v1.0", "a")] * 3 + [("v1.0", "b@x"), ("beta", "a"), ("v1.0", "b@x")]
    for index, (version, user) in enumerate(calls):
        await graph.create_or_get(version, user, {"externalId": "x"}, client_request_id=f"c{index}")
    url = base + "/{}/users/{}/onlineMeetings/createOrGet"
    sent = [url.format(version, user.replace("@", "%40")) for version, user in calls]
    assert transport.urls == sent  # each call still goes to its own organizer and version
    assert sorted(parsed) == sorted(set(sent))


@pytest.mark.parametrize("installed", [False, True])
@respx.mock
async def test_graph_calls_are_traced_and_timed_only_when_an_opentelemetry_sdk_is_installed(monkeypatch, installed):
    """Without an SDK the span and the attempt histogram are no-ops that cost CPU: the client skips them."""
    from meetings_core.graph import client as module

    used: list[str] = []

    class Span:
        def __enter__(self) -> Span:
            used.append("span")
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def set_attribute(self, name: str, value: object) -> None:
            used.append(name)

    class Tracer:
        def start_as_current_span(self, name: str) -> Span:
            return Span()

    real_timer = module.attempt_timer

    def timer(host: str):  # type: ignore[no-untyped-def]
        used.append("timer")
        return real_timer(host)

    monkeypatch.setattr(module, "sdk_installed", lambda: installed, raising=False)
    monkeypatch.setattr(module, "tracer", Tracer())
    monkeypatch.setattr(module, "attempt_timer", timer)
    respx.post(URL).mock(return_value=httpx.Response(201, json={"id": "m"}))
    result = await client().create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    assert result.status == 201
    assert used == (["span", "timer", "graph.attempt", "http.response.status_code"] if installed else [])
