"""Who may call: Entra tokens and HMAC webhooks through a real gateway process, policies, isolation."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx
import pytest

from meetings_core.auth.hmac_signature import sign
from tests.stackutil import ORGANIZER, Stack, body_for, create_url

pytestmark = pytest.mark.integration

AUDIENCE = "api://meeting-gateway"
PARTNER_SECRET = "partner-secret-value-123-0123456789"
OTHER_ORGANIZER = "00000000-0000-0000-0000-0000000000aa"


@pytest.fixture(scope="module")
async def secured(module_stack_factory) -> Stack:
    policy = {
        "entra:app-allowed": {"organizers": [ORGANIZER], "versions": ["v1.0"]},
        "hmac:acme": {"organizers": ["*"]},
    }
    return await module_stack_factory(
        workers=1,
        env={
            "CALLER_AUTH": "entra,hmac",
            "ENTRA_AUDIENCE": AUDIENCE,
            "PARTNER_SECRETS": json.dumps({"acme": PARTNER_SECRET}),
            "CALLER_POLICY": json.dumps(policy),
        },
        entra=True,
    )


async def token(stack: Stack, **claims: object) -> dict[str, str]:
    issued = await stack.issue_token({"aud": AUDIENCE, "azp": "app-allowed", **claims})
    return {"Authorization": f"Bearer {issued}"}


async def test_valid_entra_token_is_accepted(secured: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(secured.gateway), json=body_for(), headers=await token(secured))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"expires_in": -600}, "expired"),
        ({"aud": "api://someone-else"}, "another audience"),
        ({"tid": "11111111-1111-1111-1111-111111111111"}, "another tenant"),
        ({"sign_with_unknown_key": True}, "does not publish"),
    ],
)
async def test_bad_entra_tokens_are_401(secured: Stack, claims: dict[str, object], fragment: str):
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            create_url(secured.gateway), json=body_for(), headers=await token(secured, **claims)
        )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert fragment in error["message"]


async def test_missing_credentials_are_401(secured: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(secured.gateway), json=body_for())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_policy_limits_organizer_version_and_unknown_callers(secured: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        other_org = await client.post(
            create_url(secured.gateway, organizer=OTHER_ORGANIZER), json=body_for(), headers=await token(secured)
        )
        beta = await client.post(create_url(secured.gateway, "beta"), json=body_for(), headers=await token(secured))
        stranger = await client.post(
            create_url(secured.gateway), json=body_for(), headers=await token(secured, azp="app-unknown")
        )
    for response in (other_org, beta, stranger):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "Forbidden"
    assert (await secured.graph_stats())["calls"] == 0


async def test_hmac_signed_webhook_accepted_and_bad_or_stale_signature_refused(secured: Stack):
    raw = json.dumps(body_for()).encode()

    def headers(signature: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Gateway-Partner": "acme", "X-Gateway-Signature": signature}

    now = int(time.time())
    path = urlsplit(create_url(secured.gateway)).path
    async with httpx.AsyncClient(timeout=30) as client:
        good = await client.post(
            create_url(secured.gateway), content=raw, headers=headers(sign(PARTNER_SECRET, "POST", path, raw, now))
        )
        bad = await client.post(
            create_url(secured.gateway), content=raw, headers=headers(sign("guess", "POST", path, raw, now))
        )
        stale = await client.post(
            create_url(secured.gateway),
            content=raw,
            headers=headers(sign(PARTNER_SECRET, "POST", path, raw, now - 3600)),
        )
    assert good.status_code == 201, good.text
    assert bad.status_code == 401
    assert stale.status_code == 401
    assert PARTNER_SECRET not in bad.text + stale.text


async def test_path_injection_never_reaches_graph(secured: Stack):
    attempts = [
        f"/v1.0/users/{ORGANIZER}%2F..%2F..%2Fme/onlineMeetings/createOrGet",
        f"/v1.0/users/{ORGANIZER}/../../me/onlineMeetings/createOrGet",
        f"/v1.0/users/{ORGANIZER}%3F%24select%3Did/onlineMeetings/createOrGet",
        f"/v1.0/users/{ORGANIZER}%23x/onlineMeetings/createOrGet",
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        for path in attempts:
            response = await client.post(secured.gateway + path, json=body_for(), headers=await token(secured))
            assert response.status_code in (400, 404), (path, response.status_code)
            assert "error" in response.json()
    assert (await secured.graph_stats())["calls"] == 0
