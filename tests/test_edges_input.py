"""Issue 19 item 4: what can never succeed is a 4xx, never a retryable 5xx, and bodies are bounded in time.

Raw sockets against uvicorn (what a slow or oversized client does to the connection), the Functions adapter
in-process, and the reservation store's real capacity over Azurite.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import select
import socket
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import azure.functions as func
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from devstack.stack import LocalStack
from meetings_core.errors import GatewayError
from meetings_core.http.app import create_app
from meetings_core.http.body import DRAIN_BYTES
from meetings_core.http.responses import error_response
from meetings_core.idempotency.entities import STORED_BYTES_LIMIT, _deflate_bound, largest_storable_body
from meetings_core.idempotency.records import compress
from meetings_core.settings import Settings
from tests.stackutil import Stack, body_for, create_url, function_app_with

MAX_BODY = 16 * 1024
BODY_TIMEOUT = 1.0


class Connection:
    """One keep-alive HTTP/1.1 connection over a raw socket: requests are written by hand."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.buffer = b""

    def send_head(self, path: str, headers: dict[str, str]) -> None:
        lines = [f"POST {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def post(self, path: str, body: bytes) -> None:
        self.send_head(path, {"Content-Length": str(len(body))})
        self.sock.sendall(body)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next whole response: status, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        """True when the server closed the connection (end of stream, or a reset after unread data)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection before a whole response")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
async def bounded(module_stack_factory) -> Stack:
    """A gateway (uvicorn) with a small body limit and a short body deadline."""
    return await module_stack_factory(env={"MAX_BODY_BYTES": str(MAX_BODY), "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)})


def _json(**overrides: Any) -> bytes:
    return json.dumps(body_for(**overrides)).encode()


@pytest.mark.integration
async def test_a_date_that_overflows_in_utc_is_a_400_and_the_connection_stays_usable(bounded: Stack):
    connection = Connection(bounded.gateway)
    try:
        for date in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
            connection.post(create_url(""), _json(startDateTime=date, endDateTime=date))
            status, headers, body = connection.response()
            assert status == 400, body
            assert "outside the years 0001 to 9999" in json.loads(body)["error"]["message"]
            assert headers.get("connection", "").lower() != "close"
        connection.post(create_url(""), _json())  # the same connection serves the next request
        assert connection.response()[0] == 201
    finally:
        connection.close()


@pytest.mark.integration
async def test_a_body_with_a_byte_order_mark_is_the_same_request_as_without(bounded: Stack):
    """RFC 8259 lets a parser ignore a leading BOM, and .NET senders write one: 201, then the plain body replays."""
    body = _json()
    async with httpx.AsyncClient(timeout=30) as client:
        headers = {"Content-Type": "application/json"}
        first = await client.post(create_url(bounded.gateway), content=b"\xef\xbb\xbf" + body, headers=headers)
        again = await client.post(create_url(bounded.gateway), content=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.integration
@pytest.mark.parametrize("pace", ["stalled", "trickle"])
async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(bounded: Stack, pace: str):
    connection = Connection(bounded.gateway)
    try:
        connection.send_head(create_url(""), {"Content-Length": "2000"})
        started = time.monotonic()
        connection.sock.sendall(b'{"externalId": "slow", ')
        if pace == "trickle":  # a byte now and then, past the deadline: an idle timeout alone would never fire
            while not select.select([connection.sock], [], [], 0.2)[0] and time.monotonic() - started < 5:
                connection.sock.sendall(b" ")
        status, headers, body = await asyncio.to_thread(connection.response)
        elapsed = time.monotonic() - started
        assert status == 408, body
        assert json.loads(body)["error"]["code"] == "RequestTimeout"
        assert headers["connection"].lower() == "close"
        assert BODY_TIMEOUT - 0.1 <= elapsed < BODY_TIMEOUT + 3
        assert await asyncio.to_thread(connection.closed_by_server)
    finally:
        connection.close()
    assert (await bounded.graph_stats())["calls"] == 0


@pytest.mark.integration
async def test_a_client_that_leaves_mid_body_is_no_unexpected_error(bounded: Stack, local_stack: LocalStack):
    gateway = next(p for p in local_stack.gateways if p.url == bounded.gateway)
    connection = Connection(bounded.gateway)
    connection.send_head(create_url(""), {"Content-Length": "2000"})
    connection.sock.sendall(b'{"externalId": "gone", ')
    await asyncio.sleep(0.2)
    connection.close()
    await asyncio.sleep(0.5)
    assert "unexpected error" not in gateway.log.read_text(errors="replace")
    connection = Connection(bounded.gateway)  # the control: a whole request is still served
    try:
        connection.post(create_url(""), _json())
        assert connection.response()[0] == 201
    finally:
        connection.close()


@pytest.mark.integration
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_oversized_body_is_drained_so_the_client_reads_the_413(bounded: Stack, framing: str):
    oversized = _json(subject="x" * (MAX_BODY + 200_000))
    connection = Connection(bounded.gateway)
    try:
        if framing == "chunked":
            connection.send_head(create_url(""), {"Transfer-Encoding": "chunked"})
            for at in range(0, len(oversized), 8192):
                piece = oversized[at : at + 8192]
                connection.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.sock.sendall(b"0\r\n\r\n")
        else:
            connection.post(create_url(""), oversized)
        status, _, body = connection.response()
        assert status == 413
        assert str(MAX_BODY) in json.loads(body)["error"]["message"]
        connection.post(create_url(""), _json())  # drained to its end: the connection is clean
        assert connection.response()[0] == 201
    finally:
        connection.close()


def _send_until_closed(connection: Connection, seconds: float) -> float:
    """Send body bytes for up to `seconds`; return how long the server kept taking them."""
    started = time.monotonic()
    connection.sock.settimeout(1)
    piece = b"x" * 65536
    try:
        while time.monotonic() - started < seconds:
            connection.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    except OSError:  # reset or broken pipe: the server closed
        pass
    return time.monotonic() - started


@pytest.mark.integration
async def test_an_endless_body_is_cut_off_after_the_drain_cap(bounded: Stack):
    connection = Connection(bounded.gateway)
    try:
        connection.send_head(create_url(""), {"Transfer-Encoding": "chunked"})
        # Before, the 413 came at the limit and uvicorn then read and dropped the rest for as long as it came.
        held = await asyncio.to_thread(_send_until_closed, connection, 8.0)
    finally:
        connection.close()
    assert held < 5, f"the gateway kept reading an endless body for {held:.1f} s"


@pytest.mark.integration
async def test_an_announced_body_past_the_drain_cap_is_refused_before_it_is_sent(bounded: Stack):
    connection = Connection(bounded.gateway)
    try:
        connection.send_head(create_url(""), {"Content-Length": str(MAX_BODY + DRAIN_BYTES + 1)})
        status, headers, _ = connection.response()
        assert status == 413
        assert headers["connection"].lower() == "close"
        connection.send_head(create_url(""), {"Content-Length": str(MAX_BODY + 1), "Expect": "100-continue"})
    finally:
        connection.close()
    waiting = Connection(bounded.gateway)  # a client waiting for 100 Continue gets the 413 instead
    try:
        waiting.send_head(create_url(""), {"Content-Length": str(MAX_BODY + 1), "Expect": "100-continue"})
        status, headers, _ = waiting.response()
        assert status == 413
        assert headers["connection"].lower() == "close"
    finally:
        waiting.close()


@pytest.fixture
def host_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """function_app.py as the Functions worker loads it (no backend needed: bodies are refused first)."""
    env = {
        "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "LOCAL_DEVELOPMENT": "true",
        "MAX_BODY_BYTES": str(MAX_BODY),
        "BODY_TIMEOUT_SECONDS": "0.5",
    }
    yield from function_app_with(monkeypatch, env)


async def test_the_functions_adapter_bounds_the_body_in_size_and_time(host_app: ModuleType):
    url = "https://gw.example" + create_url("")
    oversized = _json(subject="x" * MAX_BODY)
    request = func.HttpRequest("POST", url, headers={"content-type": "application/json"}, body=oversized)
    assert (await host_app.app.middleware.handle_async(request)).status_code == 413
    # The adapter hands over the body the host buffered; an ASGI server that stalls is bounded all the same.
    sent: list[dict[str, Any]] = []

    async def stalled() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": create_url(""),
        "raw_path": create_url("").encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "state": {},
    }
    async with asyncio.timeout(5):
        await host_app._from_host(scope, stalled, send)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    await host_app.asgi.state.services.close()


@pytest.fixture
async def over_azurite(local_stack: LocalStack) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two in-process apps over Azurite: the largest body settings allow, and one let past that bound."""
    env = local_stack.gateway_env()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
            patch.setenv(name, env[name])
        checked = Settings(
            graph_base_url=env["GRAPH_BASE_URL"],
            tables_connection_string=env["TABLES_CONNECTION_STRING"],
            max_body_bytes=largest_storable_body(),
            local_development=True,
        )
        apps = [create_app(checked), create_app(checked.model_copy(update={"max_body_bytes": 4 * 1024 * 1024}))]
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=60) for app in apps
        ]
        yield clients[0], clients[1]
        for client, app in zip(clients, apps, strict=True):
            await client.aclose()
            await app.state.services.close()


def _printable(size: int) -> str:
    # Random printable ASCII (no quote or backslash): about 6.5 bits per byte, as little compressible as JSON text gets.
    alphabet = [chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\']
    return "".join(random.choices(alphabet, k=size))


@pytest.mark.integration
async def test_a_request_too_large_to_store_is_a_413_naming_the_limit_not_a_503(over_azurite, stack: Stack):
    _, unbounded = over_azurite
    incompressible = base64.b64encode(os.urandom(1_000_000)).decode()  # compressed: about 1 MB
    response = await unbounded.post(create_url(""), json=body_for(subject=incompressible))
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "RequestEntityTooLarge"
    assert str(STORED_BYTES_LIMIT) in error["message"]
    assert "retry-after" not in response.headers
    assert (await stack.graph_stats())["calls"] == 0


@pytest.mark.integration
async def test_the_largest_body_settings_allow_is_stored(over_azurite, stack: Stack):
    largest, _ = over_azurite
    frame = json.dumps(body_for(subject=""))
    body = json.dumps(body_for(subject=_printable(largest_storable_body() - len(frame))), separators=(",", ":"))
    assert len(body.encode()) <= largest_storable_body()
    assert len(compress(body.encode())) > 11 * 64 * 1024  # 12 of the record's 14 properties: text barely shrinks
    response = await largest.post(create_url(""), content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text[:500]
    assert (await stack.graph_stats())["calls"] == 1


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@settings(deadline=None, max_examples=300)
@given(document=json_documents, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_storing_never_lengthens_a_body_beyond_the_bound(document: Any, ascii_only: bool, indent: int | None):
    # The bound behind MAX_BODY_BYTES: the stored form (compact JSON, deflated) of any body a JSON encoder
    # writes stays within zlib's compressBound of the body's own length.
    raw = json.dumps({"externalId": "x", "@odata.any": document}, ensure_ascii=ascii_only, indent=indent).encode()
    compact = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    assert len(compact) <= len(raw)
    assert len(compress(raw)) <= _deflate_bound(len(raw))


def test_the_largest_body_fits_even_incompressible():
    worst = _deflate_bound(largest_storable_body() + len("g" + "0" * 24 + "."))
    assert worst <= STORED_BYTES_LIMIT < _deflate_bound(largest_storable_body() + 1 + 26)
    noise = os.urandom(largest_storable_body())  # what deflate does with bytes it cannot shrink at all
    assert len(zlib.compress(noise, 6)) <= _deflate_bound(len(noise))


def test_an_error_message_that_quotes_a_lone_surrogate_is_still_sent():
    # The net under every 4xx: a message quoting what the caller sent must not turn into a 500 while encoding.
    request = Request({"type": "http", "headers": [], "state": {"request_id": "r", "client_request_id": "c"}})
    response = error_response(request, GatewayError(400, "BadRequest", "bad key '\ud800'"))
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["message"] == "bad key '\ud800'"  # as the JSON escape
