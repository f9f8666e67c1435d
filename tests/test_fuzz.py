"""Fuzzing: any body or path gets a 2xx or a 4xx in Graph's envelope, never a 5xx or a traceback.

Bounded here (profile "default"); `make fuzz-long` runs the same properties with many more examples.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import LocalStack, Process
from meetings_core.http.app import create_app
from meetings_core.settings import Settings
from tests.stackutil import ORGANIZER, create_url

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["externalId", "startDateTime", "endDateTime", "subject", "participants", "chatInfo", "@odata.type", "x"]
)
date_times = st.sampled_from(
    ["2026-03-01T09:00:00Z", "2026-03-01T08:00:00+01:00", "2026-03-01T09:00:00", "2026-02-30T09:00:00Z", "", "now"]
)
near_valid_bodies = st.dictionaries(field_names, json_values | date_times, max_size=6).map(
    lambda d: {"externalId": "fuzz", **d}
)


@pytest.fixture(scope="module")
async def app_client(local_stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (fast enough for hypothesis), over the real Azurite and emulators."""
    env = local_stack.gateway_env()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
            patch.setenv(name, env[name])
        app = create_app(
            Settings(
                graph_base_url=env["GRAPH_BASE_URL"],
                tables_connection_string=env["TABLES_CONNECTION_STRING"],
                duplicate_wait_seconds=1,
                local_development=True,
            )
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client:
            yield client
        await app.state.services.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"]
        assert error["message"]
        assert error["innerError"]["request-id"]


SETTINGS: Any = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(body=json_values | near_valid_bodies)
async def test_any_json_body(app_client: httpx.AsyncClient, body: Any):
    check(await app_client.post(create_url(""), json=body))


@SETTINGS
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
)
async def test_any_bytes(app_client: httpx.AsyncClient, raw: bytes, content_type: str):
    check(await app_client.post(create_url(""), content=raw, headers={"Content-Type": content_type}))


@SETTINGS
@given(version=st.text(max_size=8), user_id=st.text(min_size=1, max_size=40), safe=st.sampled_from(["", "/?#"]))
async def test_any_path(app_client: httpx.AsyncClient, version: str, user_id: str, safe: str):
    path = f"/{quote(version, safe=safe)}/users/{quote(user_id, safe=safe)}/onlineMeetings/createOrGet"
    check(await app_client.post(path, json={"externalId": "x"}))


async def test_a_valid_request_still_creates(app_client: httpx.AsyncClient):
    response = await app_client.post(f"/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet", json={"externalId": "ok"})
    assert response.status_code in (200, 201)


@pytest.fixture(scope="module")
def api_schema(session_gateway: Process) -> Any:
    """The served document, less its security: it declares the function key (CALLER_AUTH's default), which the
    Functions host checks before the app in Azure; under uvicorn there is no host to refuse a wrong or missing
    key. The app's own modes (entra, hmac) refuse bad credentials in tests/test_hmac_and_policy.py."""
    document = httpx.get(f"{session_gateway.url}/openapi.json", timeout=30).raise_for_status().json()
    assert set(document["components"].pop("securitySchemes")) == {"functionKey"}
    for item in document["paths"].values():
        for operation in item.values():
            del operation["security"]
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=session_gateway.url)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))  # examples: the active profile
def test_openapi_conformance(case: Any) -> None:
    response = case.call(timeout=30)
    # Schema-valid bodies may still be refused on purpose: a reused externalId (422), an end before the
    # start or a blank externalId (400). Every other check (status codes, content types, schemas) applies.
    case.validate_response(response, excluded_checks=[schemathesis.checks.positive_data_acceptance])
    assert response.status_code < 500
