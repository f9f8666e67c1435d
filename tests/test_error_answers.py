"""Error answers that held up under the reviewer's reproductions: an SDK that fails in its own error path is a
store failure (503), the unexpected 500 carries the promised headers, and Graph's 4xx keep Graph's request-id."""

from __future__ import annotations

import asyncio
import binascii
import logging
import time
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError, ServiceRequestError
from azure.data.tables.aio import TableClient
from starlette.applications import Starlette
from starlette.requests import Request

from meetings_core import services as services_module
from meetings_core.graph.errors import graph_error
from meetings_core.http import app as app_module
from meetings_core.http.app import create_app
from meetings_core.http.responses import SECURITY_HEADERS
from meetings_core.http.status_url import StatusUrlKey
from meetings_core.idempotency.store import StoreUnavailable
from meetings_core.idempotency.table_store import TableReservationStore
from meetings_core.settings import Settings
from tests.stackutil import body_for, create_url

# What the reviewer's bad setting gives the SDK: an AccountKey that is not base64. Signing fails before anything
# is sent (port 9 discards), and create_entity's error path then raises AttributeError, not an AzureError.
UNSIGNABLE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=not-base64!;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1"
)


def _settings() -> Settings:
    return Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True)


# 2. The SDK failing in its own error path ------------------------------------------------------------------


async def test_an_sdk_failure_that_is_no_azure_error_is_a_logged_store_failure(caplog: pytest.LogCaptureFixture):
    table = TableClient.from_connection_string(UNSIGNABLE, "t")
    store = TableReservationStore(table, 2)
    with caplog.at_level(logging.ERROR, "meetings_core.store"), pytest.raises(StoreUnavailable) as raised:
        await store._call(table.create_entity({"PartitionKey": "p", "RowKey": "r"}))
    await store.close()
    assert isinstance(raised.value.__cause__, AttributeError)  # the SDK's bug, kept as the cause
    logged = [r for r in caplog.records if r.name == "meetings_core.store" and r.exc_info]
    assert len(logged) == 1
    assert "AttributeError" in logged[0].getMessage()


async def test_the_status_key_loader_turns_the_same_failure_into_a_store_failure(caplog: pytest.LogCaptureFixture):
    key = StatusUrlKey(TableClient.from_connection_string(UNSIGNABLE, "t"))
    with caplog.at_level(logging.ERROR, "meetings_core.http"), pytest.raises(StoreUnavailable):
        await key.get()
    await key.close()
    assert any(r.exc_info for r in caplog.records if r.name == "meetings_core.http")


class _KeyTable:
    """A table whose key entity is taken already (another instance made it) and whose read fails as given."""

    def __init__(self, read: Any) -> None:
        self._read = read

    async def create_entity(self, entity: dict[str, str]) -> None:
        raise ResourceExistsError("taken")

    async def get_entity(self, partition: str, row: str) -> dict[str, str]:
        if isinstance(self._read, BaseException):
            raise self._read
        if self._read == "hang":
            await asyncio.sleep(3600)
        return dict(self._read)

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("read", "cause"),
    [
        (ServiceRequestError("connection refused"), ServiceRequestError),  # storage unreachable
        ({}, KeyError),  # the key's entity damaged: no Key
        ({"Key": "not base64!"}, binascii.Error),
        (AttributeError("the SDK's own error path"), AttributeError),
        ("hang", TimeoutError),  # storage accepts and never answers: bounded like any store operation
    ],
)
async def test_every_status_key_failure_takes_one_path_and_is_logged_once_with_its_cause(
    caplog: pytest.LogCaptureFixture, read: Any, cause: type[BaseException]
):
    key = StatusUrlKey(_KeyTable(read), timeout_seconds=0.2)
    with caplog.at_level(logging.DEBUG, "meetings_core.http"), pytest.raises(StoreUnavailable) as raised:
        await asyncio.wait_for(key.get(), 5)
    assert isinstance(raised.value.__cause__, cause)
    assert cause.__name__ in str(raised.value)
    logged = [r for r in caplog.records if r.name == "meetings_core.http"]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], cause)


async def test_concurrent_polls_behind_a_hung_status_key_share_one_load_and_one_store_timeout(
    caplog: pytest.LogCaptureFixture,
):
    """Twenty polls or 202s on a cold worker while the table hangs: each fails within one store timeout, not one
    per load queued ahead of it (twenty would reach Power Automate's limit), and the failure is logged once."""
    timeout = 0.2
    key = StatusUrlKey(_KeyTable("hang"), timeout_seconds=timeout)
    started = time.monotonic()

    async def one() -> float:
        with pytest.raises(StoreUnavailable) as raised:
            await key.get()
        assert isinstance(raised.value.__cause__, TimeoutError)
        return time.monotonic() - started

    with caplog.at_level(logging.ERROR, "meetings_core.http"):
        took = await asyncio.gather(*(one() for _ in range(20)))
    assert max(took) < 2 * timeout, f"the last of 20 concurrent polls waited {max(took):.1f} s"
    assert len([r for r in caplog.records if r.name == "meetings_core.http"]) == 1


@pytest.fixture
def unsignable_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's table client built from the bad connection string (as before settings checked it)."""
    monkeypatch.setattr(services_module, "table_client", lambda *_: TableClient.from_connection_string(UNSIGNABLE, "t"))


async def test_a_store_whose_sdk_fails_answers_503_with_retry_after_not_500(unsignable_store: None):
    app = create_app(_settings())
    async with _client(app) as client:
        response = await client.post(create_url(""), json=body_for())
    await app.state.services.close()
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "ServiceUnavailable"


# 3. The unexpected 500 -------------------------------------------------------------------------------------


class _Broken:
    """Services that fail the way no handler expects: the endpoint raises a plain exception."""

    async def get(self) -> Any:
        raise RuntimeError("injected failure with a secret-looking detail sig=abc")

    async def close(self) -> None:
        return None


async def test_an_unexpected_failure_is_a_500_with_the_security_headers_in_graphs_envelope():
    app = create_app(_settings())
    app.state.services = _Broken()
    async with _client(app) as client:
        response = await client.post(create_url(""), json=body_for(), headers={"client-request-id": "flow-1"})
    assert response.status_code == 500
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    error = response.json()["error"]
    assert error["code"] == "InternalServerError"
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert error["innerError"]["client-request-id"] == response.headers["client-request-id"] == "flow-1"
    assert "injected" not in response.text
    assert "Traceback" not in response.text
    assert "sig=abc" not in response.text


async def test_every_kind_of_answer_carries_the_security_headers():
    """Success, the router's own 404 (a trailing slash too) and 405, the endpoints' 4xx and the unexpected 500:
    docs/SECURITY.md, answers."""
    app = create_app(_settings())
    app.state.services = _Broken()
    too_large = b"{" + b" " * (app.state.settings.max_body_bytes + 1) + b"}"
    json_body = {"content-type": "application/json"}
    async with _client(app) as client:
        answers = [
            await client.get("/openapi.json"),
            await client.get("/no/such/endpoint"),
            await client.post(create_url("") + "/", json=body_for()),  # no redirect: Graph's envelope
            await client.get(create_url("")),
            await client.post(create_url("", version="v9"), json=body_for()),
            await client.post(create_url(""), content=too_large, headers=json_body),
            await client.post(create_url(""), json=body_for()),
        ]
    assert [a.status_code for a in answers] == [200, 404, 404, 405, 404, 413, 500]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (answer.status_code, name)
        assert answer.headers["request-id"]


async def test_the_500_answer_needs_nothing_from_the_middleware():
    """A failure before CorrelationMiddleware set the request's ids still gets the whole answer."""
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""})
    response = await app_module._unexpected(request, RuntimeError("early"))
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["request-id"]


# 4. Graph's 4xx keep Graph's request-id --------------------------------------------------------------------


def _graph_answer(status: int, headers: dict[str, str], inner: Any) -> httpx.Response:
    error = {"code": "Forbidden", "message": "Application is not allowed to perform operations on the user."}
    return httpx.Response(status, headers=headers, json={"error": {**error, "innerError": inner}})


@pytest.mark.parametrize("status", [403, 404, 400])
def test_a_graph_4xx_carries_graphs_request_id_and_date(status: int):
    inner = {"date": "2026-11-29T07:00:00", "request-id": "graph-inner-1", "client-request-id": "flow-1"}
    error = graph_error(_graph_answer(status, {"request-id": "graph-header-1"}, inner))
    assert error.status == status
    assert error.headers["graph-request-id"] == "graph-header-1"
    envelope = error.envelope("gateway-1", "flow-1")["error"]
    # The gateway's own ids stay where SDKs and the answer's headers put them; Graph's are beside them.
    assert envelope["innerError"]["request-id"] == "gateway-1"
    assert envelope["innerError"]["graph-request-id"] == "graph-inner-1"
    assert envelope["innerError"]["graph-date"] == "2026-11-29T07:00:00"
    assert envelope["code"] == "Forbidden"


def test_graphs_refusal_of_the_gateways_token_keeps_the_request_id_header():
    error = graph_error(_graph_answer(401, {"request-id": "graph-header-1"}, {}))
    assert (error.status, error.headers["graph-request-id"]) == (502, "graph-header-1")


@pytest.mark.parametrize(
    "inner",
    [None, "text", {"request-id": "has spaces", "date": "yesterday"}, {"request-id": "x" * 101, "date": 5}],
)
def test_only_plain_ids_and_dates_of_graph_are_echoed(inner: Any):
    error = graph_error(_graph_answer(403, {"request-id": "a b"}, inner))
    assert "graph-request-id" not in error.headers
    envelope = error.envelope("gateway-1")["error"]["innerError"]
    assert set(envelope) == {"date", "request-id"}
    assert envelope["request-id"] == "gateway-1"


@pytest.mark.parametrize(
    ("status", "answer", "code"),
    [
        (400, httpx.Response(400, text="<html>Bad request from a proxy</html>"), "BadRequest"),
        (404, httpx.Response(404), "NotFound"),
        (413, httpx.Response(413, json={"error": {"code": {"nested": 1}, "message": 5}}), "RequestEntityTooLarge"),
        (409, httpx.Response(409, json={"error": {"code": "has spaces in it", "message": ""}}), "Conflict"),
        (403, httpx.Response(403, json={"error": {"code": "Forbidden", "message": "m"}}), "Forbidden"),
    ],
)
def test_a_graph_4xx_without_graphs_own_code_gets_the_code_graph_uses_for_the_status(
    status: int, answer: httpx.Response, code: str
):
    """A proxy's page or a garbled envelope: the caller still gets a code of Graph's form, never a reason phrase
    with spaces or the text of whatever stood in the body."""
    error = graph_error(answer)
    assert (error.status, error.code) == (status, code)
    assert error.message.startswith("m" if code == "Forbidden" else f"Graph answered {status}.")


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw")
