"""Signed status URLs: one operation, one caller, a short life; no credential in the URL; forgeries look absent."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from azure.data.tables.aio import TableClient
from hypothesis import given
from hypothesis import strategies as st

from devstack.stack import free_port, tables_connection_string
from meetings_core.http.status_url import StatusUrlKey, StatusUrlSigner, _unb64
from meetings_core.idempotency.keys import ReservationKey, scoped_external_id
from meetings_core.idempotency.store import StoreUnavailable
from meetings_core.settings import SettingsError, load_settings
from tests.stackutil import ORGANIZER, Stack, body_for, create_url

DIGEST = "a" * 64
KEY = StatusUrlKey(None, b"k" * 32)
NOW = 1_800_000_000.0


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def test_a_signed_url_names_its_caller_and_nothing_else():
    path = await StatusUrlSigner(KEY, 900, clock=lambda: NOW).path(DIGEST, "entra:app-a")
    assert path.startswith(f"/operations/{DIGEST}?")
    assert set(query_of(path)) == {"caller", "exp", "sig"}
    assert await StatusUrlSigner(KEY, 900, clock=lambda: NOW).verify(DIGEST, query_of(path)) == "entra:app-a"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q | {"caller": "ZW50cmE6YXBwLWI"},  # entra:app-b
        lambda q: q | {"exp": str(int(q["exp"]) + 3600)},
        lambda q: q | {"sig": ("B" if q["sig"][0] == "A" else "A") + q["sig"][1:]},
        lambda q: {k: v for k, v in q.items() if k != "sig"},
        lambda q: q | {"sig": q["sig"] + "A"},
    ],
)
async def test_any_change_to_the_url_voids_it(tamper):
    signer = StatusUrlSigner(KEY, 900, clock=lambda: NOW)
    query = query_of(await signer.path(DIGEST, "entra:app-a"))
    assert await signer.verify(DIGEST, tamper(query)) is None


async def test_another_operation_another_key_or_a_late_poll_is_refused():
    signer = StatusUrlSigner(KEY, 900, clock=lambda: NOW)
    query = query_of(await signer.path(DIGEST, "function-key"))
    assert await signer.verify("b" * 64, query) is None
    assert await StatusUrlSigner(StatusUrlKey(None, b"x" * 32), 900, clock=lambda: NOW).verify(DIGEST, query) is None
    assert await StatusUrlSigner(KEY, 900, clock=lambda: NOW + 901).verify(DIGEST, query) is None
    assert await StatusUrlSigner(KEY, 900, clock=lambda: NOW + 899).verify(DIGEST, query) == "function-key"


@given(st.dictionaries(st.sampled_from(["caller", "exp", "sig", "other"]), st.text(max_size=80)), st.text(max_size=80))
async def test_any_query_is_refused_cleanly(query: dict[str, str], operation_id: str):
    assert await StatusUrlSigner(KEY, 900).verify(operation_id, query) is None


@pytest.mark.integration
async def test_the_table_key_is_made_once_and_shared(local_stack):
    connection = local_stack.gateway_env()["TABLES_CONNECTION_STRING"]
    table = f"statuskeys{id(local_stack) % 100000}"
    async with TableClient.from_connection_string(connection, table) as admin:
        await admin.create_table()
        try:
            keys = [StatusUrlKey(TableClient.from_connection_string(connection, table)) for _ in range(5)]
            values = await asyncio.gather(*(key.get() for key in keys))
            for key in keys:
                await key.close()
            assert len(set(values)) == 1
            assert len(values[0]) == 32
        finally:
            await admin.delete_table()
    dead = tables_connection_string(free_port())
    down = StatusUrlKey(TableClient.from_connection_string(dead, "meetingreservations", retry_total=0))
    with pytest.raises(StoreUnavailable):
        await down.get()
    await down.close()


def test_an_empty_key_setting_means_the_table_key_and_a_short_one_is_refused(monkeypatch):
    monkeypatch.setenv("TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("STATUS_URL_KEY", "")
    assert load_settings().status_url_key is None
    monkeypatch.setenv("STATUS_URL_KEY", "too-short")
    with pytest.raises(SettingsError, match="STATUS_URL_KEY"):
        load_settings()


AUDIENCE = "api://meeting-gateway"
OTHER_ORGANIZER = "2f35f2e6-9cab-44ad-8d5a-b74c14720000"


@pytest.fixture(scope="module")
async def entra_gateway(module_stack_factory) -> Stack:
    policy = {
        "entra:app-a": {"organizers": ["*"]},
        "entra:app-b": {"organizers": ["*"]},
        # May read others' operations, but not at every organizer: the status URL applies both rules.
        "entra:auditor": {"organizers": ["*"], "readOthers": True},
        "entra:narrow-auditor": {"organizers": [OTHER_ORGANIZER], "readOthers": True},
    }
    env = {
        "CALLER_AUTH": "entra",
        "ENTRA_AUDIENCE": AUDIENCE,
        "CALLER_POLICY": json.dumps(policy),
        "DUPLICATE_WAIT_SECONDS": "0.3",
    }
    return await module_stack_factory(workers=1, env=env, entra=True)


async def bearer(stack: Stack, app: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + await stack.issue_token({"aud": AUDIENCE, "azp": app})}


@pytest.mark.integration
async def test_a_signed_location_is_polled_without_credentials_and_forgeries_look_absent(entra_gateway: Stack):
    stack = entra_gateway
    await stack.graph_config(latency_ms=1500)
    body = body_for()
    auth = await bearer(stack, "app-a")
    async with httpx.AsyncClient(timeout=30) as client:
        owner = asyncio.create_task(client.post(create_url(stack.gateway), json=body, headers=auth))
        await stack.wait_for_record(
            ReservationKey(ORGANIZER.lower(), scoped_external_id("entra:app-a", body["externalId"]))
        )
        accepted = await client.post(create_url(stack.gateway), json=body, headers=auth | {"Prefer": "respond-async"})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        query = query_of(location)
        assert set(query) == {"caller", "exp", "sig"}  # no function key, no token: only the signature
        assert _unb64(query["caller"]).decode() == "entra:app-a"
        pending = await client.get(location)  # no Authorization header at all
        assert pending.status_code == 202
        assert set(query_of(pending.headers["location"])) == {"caller", "exp", "sig"}
        created = await owner
        done = await client.get(location)
        assert done.status_code == 201
        assert done.json()["id"] == created.json()["id"]

        operation = urlsplit(location).path.rsplit("/", 1)[1]
        unsigned = await client.get(f"{stack.gateway}/operations/{operation}")
        assert unsigned.status_code == 401
        unknown = await client.get(f"{stack.gateway}/operations/{'f' * 64}", headers=auth)
        forged = await client.get(f"{stack.gateway}/operations/{operation}?" + urlsplit(location).query[:-2] + "AA")
        moved = await client.get(f"{stack.gateway}/operations/{'f' * 64}?" + urlsplit(location).query)
        async with TableClient.from_connection_string(stack.tables, "meetingreservations") as table:
            key = _unb64((await table.get_entity("gateway", "status-url-key"))["Key"])
        late = StatusUrlSigner(StatusUrlKey(None, key), 10, clock=lambda: time.time() - 60)
        expired = await client.get(stack.gateway + await late.path(operation, "entra:app-a"))
        fresh = StatusUrlSigner(StatusUrlKey(None, key), 10)  # control: the same key, in time, is accepted
        assert (await client.get(stack.gateway + await fresh.path(operation, "entra:app-a"))).status_code == 201
    for refused in (forged, moved, expired):
        assert refused.status_code == unknown.status_code == 404
        assert refused.json()["error"]["code"] == unknown.json()["error"]["code"]
        assert refused.json()["error"]["message"] == unknown.json()["error"]["message"]


@pytest.mark.integration
async def test_an_unsigned_poll_checks_the_caller_and_the_organizer_and_answers_one_404(entra_gateway: Stack):
    stack = entra_gateway
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(create_url(stack.gateway), json=body, headers=await bearer(stack, "app-a"))
        assert created.status_code == 201
        # Anyone who knows the caller id and externalId can compute the id: it must open nothing by itself.
        operation = ReservationKey(ORGANIZER.lower(), scoped_external_id("entra:app-a", body["externalId"])).digest
        url = f"{stack.gateway}/operations/{operation}"
        own = await client.get(url, headers=await bearer(stack, "app-a"))
        auditor = await client.get(url, headers=await bearer(stack, "auditor"))
        other_caller = await client.get(url, headers=await bearer(stack, "app-b"))
        other_organizer = await client.get(url, headers=await bearer(stack, "narrow-auditor"))
        absent = await client.get(f"{stack.gateway}/operations/{'e' * 64}", headers=await bearer(stack, "app-a"))
    assert own.status_code == auditor.status_code == 201
    assert own.json()["externalId"] == auditor.json()["externalId"] == body["externalId"]
    for refused in (other_caller, other_organizer):
        assert refused.status_code == absent.status_code == 404
        assert refused.json()["error"]["message"] == absent.json()["error"]["message"]
