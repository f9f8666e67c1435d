"""The tenant's signing keys: a token the gateway cannot judge yet is a 503 to retry, never a 401 that ends a flow."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from devstack.identity_emulator import _Signer
from meetings_core.auth import entra
from meetings_core.auth.authenticator import Authenticator
from meetings_core.auth.entra import EntraVerifier, JwksCache, KeysUnavailable
from meetings_core.errors import GatewayError

TENANT = "72f988bf-0000-4000-8000-000000000001"
AUTHORITY = "https://login.example"
AUDIENCE = "api://meeting-gateway"


class _KeysEndpoint:
    """The tenant's JWKS endpoint, down (refusing connections) until `up` is set; counts fetches."""

    def __init__(self, signer: _Signer) -> None:
        self.signer = signer
        self.up = False
        self.fetches = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"keys": [self.signer.jwk()]})


def _token(signer: _Signer) -> str:
    now = int(time.time())
    claims = {"iss": f"{AUTHORITY}/{TENANT}/v2.0", "tid": TENANT, "aud": AUDIENCE, "azp": "app", "oid": "o"}
    return "Bearer " + signer.sign(claims | {"sub": "o", "iat": now, "nbf": now - 5, "exp": now + 3600})


@pytest.fixture
def signer() -> _Signer:
    return _Signer()


@pytest.fixture
async def keys(signer: _Signer):
    endpoint = _KeysEndpoint(signer)
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        cache = JwksCache(http, f"{AUTHORITY}/{TENANT}/discovery/v2.0/keys")
        yield endpoint, cache, EntraVerifier(cache, tenant_id=TENANT, audiences=[AUDIENCE], authority=AUTHORITY)


async def test_a_valid_token_met_while_the_keys_cannot_be_fetched_is_a_503_with_retry_after(keys, signer):
    _, _, verifier = keys
    with pytest.raises(GatewayError) as raised:
        await verifier.verify(_token(signer))
    assert raised.value.status == 503
    assert raised.value.code == "ServiceUnavailable"
    assert int(raised.value.headers["Retry-After"]) >= 1
    assert "signing keys" in raised.value.message


async def test_after_a_failed_fetch_the_keys_are_fetched_again_within_seconds(keys, signer, monkeypatch):
    endpoint, _, verifier = keys
    monkeypatch.setattr(entra, "_RETRY_FAILED_SECONDS", 0.05)
    with pytest.raises(GatewayError):
        await verifier.verify(_token(signer))
    endpoint.up = True
    with pytest.raises(GatewayError) as raised:  # inside the retry interval: not fetched again
        await verifier.verify(_token(signer))
    assert (raised.value.status, endpoint.fetches) == (503, 1)
    await asyncio.sleep(0.1)
    caller = await verifier.verify(_token(signer))  # was a 401 for 30 s before: no client retries that
    assert caller.id == "entra:app"
    assert endpoint.fetches == 2


async def test_a_key_the_tenant_does_not_publish_is_a_401_once_the_keys_are_held(keys, signer):
    endpoint, _, verifier = keys
    endpoint.up = True
    await verifier.verify(_token(signer))
    with pytest.raises(GatewayError) as raised:
        await verifier.verify(_token(_Signer()))
    assert raised.value.status == 401
    assert "does not publish" in raised.value.message
    assert endpoint.fetches == 1  # forged key ids do not refetch inside the 30 s interval


async def test_readiness_fetches_the_keys_and_fails_while_none_can_be_had(keys, monkeypatch):
    endpoint, _, verifier = keys
    monkeypatch.setattr(entra, "_RETRY_FAILED_SECONDS", 0.0)
    ready = Authenticator(function_keys=False, entra=verifier).ready
    with pytest.raises(KeysUnavailable):
        await ready()
    endpoint.up = True
    await ready()
    await ready()
    assert endpoint.fetches == 2  # held keys are not fetched again


async def test_a_fetch_cancelled_midway_counts_as_failed_not_as_keys_held(signer: _Signer, monkeypatch):
    """A health probe's timeout cancels the fetch: tokens are then a 503 and the keys are fetched again soon."""
    monkeypatch.setattr(entra, "_RETRY_FAILED_SECONDS", 0.5)
    release = asyncio.Event()

    async def slow_then_up(request: httpx.Request) -> httpx.Response:
        if not release.is_set():
            await asyncio.sleep(3600)  # cancelled below
        return httpx.Response(200, json={"keys": [signer.jwk()]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_then_up)) as http:
        cache = JwksCache(http, f"{AUTHORITY}/{TENANT}/discovery/v2.0/keys")
        verifier = EntraVerifier(cache, tenant_id=TENANT, audiences=[AUDIENCE], authority=AUTHORITY)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(Authenticator(function_keys=False, entra=verifier).ready(), 0.1)
        release.set()
        with pytest.raises(GatewayError) as raised:
            await verifier.verify(_token(signer))
        assert raised.value.status == 503  # was a 401 for 30 s: the cancelled fetch left "no keys, not failed"
        await asyncio.sleep(0.6)
        assert (await verifier.verify(_token(signer))).id == "entra:app"
