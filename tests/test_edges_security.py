"""Issue 19 item 6: function keys only behind the Functions host, app-only tokens, HMAC skew, poll timing.

Each test failed on the gateway before the fix (docs/SECURITY.md names them).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import azure.functions as func
import httpx
import pytest

from devstack.stack import LocalStack
from meetings_core.auth.entra import is_app_only
from meetings_core.auth.hmac_signature import HmacVerifier, sign
from meetings_core.errors import GatewayError
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, RequestContext
from meetings_core.idempotency.keys import ReservationKey, scoped_external_id
from meetings_core.idempotency.records import Reservation, State
from tests.memory_store import MemoryStore
from tests.stackutil import ORGANIZER, Stack, body_for, create_url, function_app_with

AUDIENCE = "api://meeting-gateway"
ROLE = "MeetingGateway.Create"
# Outside local development, as in Azure; FUNCTIONS_WORKER_RUNTIME as Functions base images set it.
BEHIND_NOTHING = {"LOCAL_DEVELOPMENT": "false", "FUNCTIONS_WORKER_RUNTIME": "python"}


@pytest.mark.integration
async def test_function_keys_under_plain_uvicorn_refuse_even_with_the_hosts_variable(stack_factory):
    stack = await stack_factory(env=BEHIND_NOTHING)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body_for())
        health = await client.get(f"{stack.gateway}/health")
    assert response.status_code == 401, response.text
    assert "Azure Functions host" in response.json()["error"]["message"]
    assert (await stack.graph_stats())["calls"] == 0
    assert health.json() == {"status": "healthy"}  # no detail: nobody was authenticated


@pytest.fixture
def host_app(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """function_app.py as the Functions worker loads it, pointed at the local stack, outside local development."""
    yield from function_app_with(monkeypatch, {**local_stack.gateway_env(), **BEHIND_NOTHING})


@pytest.mark.integration
async def test_function_keys_are_served_through_the_functions_adapter(host_app: ModuleType):
    body = json.dumps(body_for()).encode()
    url = "https://gw.example" + create_url("")
    request = func.HttpRequest("POST", url, headers={"content-type": "application/json"}, body=body)
    try:
        through_host = await host_app.app.middleware.handle_async(request)
        # The same app reached some other way (no adapter, no marker) checks no key, so it refuses.
        transport = httpx.ASGITransport(app=host_app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            direct = await client.post(create_url(""), content=body, headers={"content-type": "application/json"})
    finally:
        await host_app.asgi.state.services.close()
    assert through_host.status_code == 201, through_host.get_body()
    assert direct.status_code == 401


@pytest.mark.parametrize(
    ("claims", "app_only"),
    [
        ({"idtyp": "app", "oid": "sp", "sub": "sp"}, True),
        ({"idtyp": "app", "oid": "sp", "sub": "other"}, True),  # idtyp, when present, decides
        ({"idtyp": "user", "oid": "u", "sub": "u"}, False),
        ({"oid": "sp", "sub": "sp", "roles": [ROLE]}, True),  # client credentials without idtyp
        ({"oid": "user", "sub": "pairwise", "roles": [ROLE]}, False),  # a user's token with roles, no scp
        ({"oid": "u", "sub": "u", "scp": "x"}, False),  # delegated scopes: a user
        ({"oid": "", "sub": ""}, False),
        ({"roles": [ROLE]}, False),
    ],
)
def test_app_only_tokens_are_told_like_microsoft_identity_web(claims: dict[str, Any], app_only: bool):
    assert is_app_only(claims) is app_only


@pytest.fixture(scope="module")
async def entra_gateway(module_stack_factory) -> Stack:
    policy = {
        "entra:app-allowed": {"organizers": ["*"]},
        "entra:app-a": {"organizers": ["*"]},
        "entra:app-b": {"organizers": ["*"]},
    }
    env = {
        "CALLER_AUTH": "entra",
        "ENTRA_AUDIENCE": AUDIENCE,
        "ENTRA_REQUIRED_ROLE": ROLE,
        "CALLER_POLICY": json.dumps(policy),
    }
    return await module_stack_factory(workers=1, env=env, entra=True)


async def bearer(stack: Stack, **claims: Any) -> dict[str, str]:
    token = await stack.issue_token({"aud": AUDIENCE, "azp": "app-allowed", "roles": [ROLE], **claims})
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.integration
async def test_a_users_token_with_roles_and_no_scope_is_not_the_app(entra_gateway: Stack):
    stack = entra_gateway
    user = str(uuid.uuid4())
    async with httpx.AsyncClient(timeout=30) as client:
        app = await client.post(create_url(stack.gateway), json=body_for(), headers=await bearer(stack))
        tagged = await client.post(
            create_url(stack.gateway), json=body_for(), headers=await bearer(stack, idtyp="app", sub="x")
        )
        as_user = await client.post(
            create_url(stack.gateway), json=body_for(), headers=await bearer(stack, oid=user, sub="pairwise-sub")
        )
        typed_user = await client.post(
            create_url(stack.gateway), json=body_for(), headers=await bearer(stack, idtyp="user")
        )
    assert app.status_code == tagged.status_code == 201
    # The user is entra:<oid>, which the policy does not list: never the application it used.
    for refused in (as_user, typed_user):
        assert refused.status_code == 403, refused.text
        assert "no access policy" in refused.json()["error"]["message"]


def test_hmac_timestamps_ahead_get_only_a_clock_skew():
    verifier = HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=300)
    now = int(time.time())

    def accepted(at: int) -> bool:
        try:
            verifier.verify("acme", sign("s3cret-acme", "POST", "/p", b"{}", at), "POST", "/p", b"{}")
        except GatewayError as error:
            status = error.status
        else:
            return True
        assert status == 401
        return False

    assert accepted(now - 290)  # the past keeps the whole tolerance
    assert accepted(now + 50)  # ahead: a clock skew
    assert not accepted(now + 70)
    assert not accepted(now + 290)  # formerly accepted: the whole tolerance ahead doubled the replay window
    short = HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=20)
    signature = sign("s3cret-acme", "POST", "/p", b"{}", now + 40)
    with pytest.raises(GatewayError):  # never more ahead than the tolerance itself
        short.verify("acme", signature, "POST", "/p", b"{}")


def _auc(faster: list[float], slower: list[float]) -> float:
    """How often a sample of `faster` is below one of `slower` (0.5: indistinguishable; 1.0: always)."""
    wins = sum((a < b) + 0.5 * (a == b) for a in faster for b in slower)
    return wins / (len(faster) * len(slower))


@pytest.mark.integration
async def test_another_callers_id_and_an_absent_id_answer_in_the_same_time(entra_gateway: Stack):
    stack = entra_gateway
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(create_url(stack.gateway), json=body, headers=await bearer(stack, azp="app-a"))
        assert created.status_code == 201  # now in the worker's cache of completed records
        theirs = ReservationKey(ORGANIZER.lower(), scoped_external_id("entra:app-a", body["externalId"])).digest
        absent = ReservationKey(ORGANIZER.lower(), f"absent-{uuid.uuid4()}").digest
        stranger = await bearer(stack, azp="app-b")
        times: dict[str, list[float]] = {theirs: [], absent: []}
        for round_ in range(100):
            for operation in (theirs, absent) if round_ % 2 else (absent, theirs):  # interleaved: same load
                started = time.perf_counter()
                response = await client.get(f"{stack.gateway}/operations/{operation}", headers=stranger)
                times[operation].append(time.perf_counter() - started)
                assert response.status_code == 404
    warm = {operation: samples[10:] for operation, samples in times.items()}
    median = {operation: statistics.median(samples) * 1000 for operation, samples in warm.items()}
    auc = _auc(warm[theirs], warm[absent])
    # Before, another caller's cached record answered without a store read: faster in nearly every pair.
    assert 0.25 < auc < 0.75, (auc, median)


async def test_a_poll_of_another_callers_cached_record_does_the_store_read_of_an_absent_id():
    """The cause of the timing difference, exactly: same store operations on both 404 paths."""
    now = datetime.now(UTC)
    key = ReservationKey(ORGANIZER.lower(), "order-1")
    theirs = Reservation(
        key, "fp", State.COMPLETED, "v1.0", "entra:app-a", now, owner="o", status=201, body=b'{"id":"m"}',
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    store = MemoryStore()
    store.records[key.digest] = theirs
    cache = CompletedCache(10)
    cache.put(theirs)
    config = EngineConfig(lease=timedelta(seconds=45), duplicate_wait_seconds=1, retention=timedelta(days=1))
    engine = IdempotencyEngine(store, graph=None, config=config, cache=cache)  # type: ignore[arg-type]
    stranger = RequestContext(caller="entra:app-b", client_request_id="c")
    operations = {}
    for name, digest in (("theirs", key.digest), ("absent", "0" * 64)):
        store.operations.clear()
        with pytest.raises(GatewayError) as refused:
            await engine.status(digest, stranger)
        assert refused.value.status == 404
        operations[name] = list(store.operations)
    assert operations["theirs"] == operations["absent"] == ["get"]
    owner = RequestContext(caller="entra:app-a", client_request_id="c")
    store.operations.clear()
    assert (await engine.status(key.digest, owner)).status == 201
    assert store.operations == []  # the caller's own cached record still needs no store read
