"""The Graph transport over aiohttp: bytes as httpx sends them, and httpx's errors exactly where they belong.

Only `ConnectError`/`ConnectTimeout` say "nothing was sent" (the Graph client retries those); a connection
that drops after the request went out must stay an unknown outcome. Real sockets, no mocks.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from devstack.stack import free_port
from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphClient
from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.graph.token import TokenProvider
from meetings_core.graph.transport import AiohttpTransport
from meetings_core.outbound import GRAPH_LIMITS, graph_transport
from tests.test_graph_client_edges import FakeCredential

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head, await reader.readexactly(length)


class Server:
    """A one-behaviour HTTP server on a free port; counts the requests it read."""

    def __init__(self, behaviour: Handler) -> None:
        self.behaviour = behaviour
        self.requests: list[tuple[bytes, bytes]] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                self.requests.append(await _read_request(reader))
                await self.behaviour(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(behaviour: Handler) -> Server:
        server = Server(behaviour)
        listening = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(listening)
        server.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
        return server

    yield start  # type: ignore[misc]
    for listening in servers:
        listening.close()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = gzip.compress(b'{"id":"MSo1","subject":"s"}')
    writer.write(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"request-id: r-1\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # the request was read: Graph may be acting on it
    raise ConnectionError


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def test_sends_httpx_request_and_returns_the_answer_decoded_once(serve):
    server = await serve(_answer)
    async with httpx.AsyncClient(base_url=server.url, transport=graph_transport()) as http:
        response = await http.post("/v1.0/x", content=b'{"a":1}', headers={"Authorization": "Bearer t", "x-id": "7"})
        again = await http.post("/v1.0/x", content=b"{}")
    assert (response.status_code, response.headers["request-id"]) == (201, "r-1")
    assert response.json() == {"id": "MSo1", "subject": "s"}
    assert again.status_code == 201
    head, body = server.requests[0]
    assert head.startswith(b"POST /v1.0/x HTTP/1.1\r\n")
    for header in (b"authorization: Bearer t", b"x-id: 7", b"content-length: 7"):
        assert header in head.lower().replace(b"bearer", b"Bearer"), head
    assert body == b'{"a":1}'
    assert len(server.requests) == 2


async def test_refused_connection_is_connect_error():
    async with httpx.AsyncClient(transport=AiohttpTransport(GRAPH_LIMITS)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{free_port()}/x", content=b"{}")


async def test_connection_dropped_after_the_request_is_not_a_connect_error(serve):
    server = await serve(_drop)
    async with httpx.AsyncClient(transport=AiohttpTransport(GRAPH_LIMITS)) as http:
        with pytest.raises(httpx.TransportError) as raised:
            await http.post(server.url + "/x", content=b"{}")
    assert isinstance(raised.value, httpx.RemoteProtocolError)
    assert len(server.requests) == 1


async def test_no_answer_is_a_read_timeout(serve):
    server = await serve(_hang)
    async with httpx.AsyncClient(transport=AiohttpTransport(GRAPH_LIMITS)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(server.url + "/x", content=b"{}", timeout=httpx.Timeout(0.3))


async def test_waiting_for_a_pooled_connection_is_a_connect_timeout(serve):
    server = await serve(_hang)
    async with httpx.AsyncClient(transport=AiohttpTransport(httpx.Limits(max_connections=1))) as http:
        first = asyncio.create_task(http.post(server.url + "/x", content=b"{}", timeout=5))
        await asyncio.sleep(0.2)
        with pytest.raises(httpx.ConnectTimeout):
            await http.post(server.url + "/x", content=b"{}", timeout=httpx.Timeout(5, pool=0.3))
        first.cancel()
    assert len(server.requests) == 1  # the second request never left


async def test_closed_transport_refuses_to_send():
    transport = AiohttpTransport(GRAPH_LIMITS)
    await transport.aclose()
    with pytest.raises(RuntimeError):
        await transport.handle_async_request(httpx.Request("POST", "http://127.0.0.1:1/x"))


async def _create(url: str) -> None:
    transport = graph_transport()
    try:
        graph = GraphClient(transport, url, TokenProvider(FakeCredential(), "scope"), deadline_seconds=3)  # type: ignore[arg-type]
        await graph.create_or_get("v1.0", "u", {"externalId": "x"}, client_request_id="c")
    finally:
        await transport.aclose()


async def test_graph_client_never_resends_after_a_drop_and_retries_a_refusal(serve):
    server = await serve(_drop)
    with pytest.raises(OutcomeUnknown):
        await _create(server.url)
    assert len(server.requests) == 1
    with pytest.raises(GatewayError) as refused:
        await _create(f"http://127.0.0.1:{free_port()}")
    assert refused.value.status == 503


async def test_graph_client_uses_the_transport_directly_and_sends_every_header(serve):
    """The Graph client uses the transport directly: every header Graph needs is in the request it builds."""
    server = await serve(_answer)
    transport = graph_transport()
    try:
        tokens = TokenProvider(FakeCredential(), "scope")  # type: ignore[arg-type]
        graph = GraphClient(transport, server.url + "/prefix/", tokens, deadline_seconds=3)
        result = await graph.create_or_get("beta", "a b/c", {"externalId": "x"}, client_request_id="c-1")
    finally:
        await transport.aclose()
    assert (result.status, result.request_id) == (201, "r-1")
    head, body = server.requests[0]
    lines = head.decode().lower().split("\r\n")
    assert lines[0] == "post /prefix/beta/users/a%20b%2fc/onlinemeetings/createorget http/1.1"
    expected = {
        "authorization: bearer token-1",
        "content-type: application/json",
        "accept: application/json",
        "accept-encoding: gzip, deflate",  # only codecs httpx always decodes, not aiohttp's own list
        "user-agent: meeting-gateway/0.1",
        "client-request-id: c-1",
        f"content-length: {len(body)}",
    }
    assert expected <= set(lines), lines
    assert body == b'{"externalId":"x"}'
