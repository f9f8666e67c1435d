"""Issue 15 through real gateway processes: no caller reaches more than its policy, however configured.

Each test is named for the item of docs/SECURITY.md it proves; each failed on the gateway before the fix.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.stack import LocalStack, StackError
from meetings_core.auth.hmac_signature import sign
from tests.stackutil import ORGANIZER, Stack, body_for, create_url
from tests.test_retention import cli

pytestmark = pytest.mark.integration

AUDIENCE = "api://meeting-gateway"
ROLE = "MeetingGateway.Create"
ACME_SECRET = "acme-partner-secret-0123456789abcdef"
GLOBEX_SECRET = "globex-partner-secret-0123456789abcdef"
OTHER_ORGANIZER = "00000000-0000-0000-0000-0000000000bb"


def refused(local_stack: LocalStack, env: dict[str, str]) -> str:
    """Start a gateway that must refuse to start; return what it said."""
    with pytest.raises(StackError) as raised:
        local_stack.add_gateway(env={"LOG_LEVEL": "DEBUG", **env})
    return str(raised.value)


def signed(secret: str, partner: str, method: str, url: str, raw: bytes, at: int | None = None) -> dict[str, str]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return {
        "Content-Type": "application/json",
        "X-Gateway-Partner": partner,
        "X-Gateway-Signature": sign(secret, method, target, raw, int(time.time()) if at is None else at),
    }


@pytest.fixture(scope="module")
async def partners(module_stack_factory) -> Stack:
    """Two partners allowed for the same organizer, and an Entra app that needs an app role."""
    policy = {
        "hmac:acme": {"organizers": [ORGANIZER]},
        "hmac:globex": {"organizers": [ORGANIZER]},
        "entra:app-allowed": {"organizers": [ORGANIZER]},
    }
    return await module_stack_factory(
        env={
            "CALLER_AUTH": "hmac,entra",
            "ENTRA_AUDIENCE": AUDIENCE,
            "ENTRA_REQUIRED_ROLE": ROLE,
            "PARTNER_SECRETS": json.dumps({"acme": ACME_SECRET, "globex": GLOBEX_SECRET}),
            "CALLER_POLICY": json.dumps(policy),
        },
        entra=True,
    )


# 1. Default allow -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["entra", "hmac"])
def test_1_entra_or_hmac_without_a_caller_policy_refuses_to_start(local_stack: LocalStack, mode: str):
    env = {
        "CALLER_AUTH": mode,
        "ENTRA_TENANT_ID": "00000000-0000-0000-0000-00000000000a",
        "ENTRA_AUDIENCE": AUDIENCE,
        "PARTNER_SECRETS": json.dumps({"acme": ACME_SECRET}),
    }
    message = refused(local_stack, env)
    assert "set CALLER_POLICY" in message
    assert ACME_SECRET not in message


async def test_1_entra_token_without_the_required_role_is_refused(partners: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        for claims, expected in [
            ({}, 403),
            ({"roles": ["Something.Else"]}, 403),
            ({"roles": [ROLE]}, 201),
        ]:
            token = await partners.issue_token({"aud": AUDIENCE, "azp": "app-allowed", **claims})
            response = await client.post(
                create_url(partners.gateway), json=body_for(), headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == expected, (claims, response.text)
    assert (await partners.graph_stats())["calls"] == 1


# 2. The signature covers the request line -----------------------------------------------------------------


async def test_2_signature_binds_method_path_and_body_and_v1_is_refused(partners: Stack):
    raw = json.dumps(body_for()).encode()
    url = create_url(partners.gateway)
    headers = signed(ACME_SECRET, "acme", "POST", url, raw)
    t = headers["X-Gateway-Signature"].split(",")[0].removeprefix("t=")
    v1 = hmac.new(ACME_SECRET.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(timeout=30) as client:
        old = await client.post(url, content=raw, headers={**headers, "X-Gateway-Signature": f"t={t},v1={v1}"})
        good = await client.post(url, content=raw, headers=headers)
        # The same captured request, replayed to another organizer, the beta API and with a query added.
        replays = [
            await client.post(create_url(partners.gateway, organizer=OTHER_ORGANIZER), content=raw, headers=headers),
            await client.post(create_url(partners.gateway, "beta"), content=raw, headers=headers),
            await client.post(url + "?x=1", content=raw, headers=headers),
        ]
        status = await client.get(f"{partners.gateway}/operations/{'0' * 64}", headers=headers)
    assert old.status_code == 401
    assert "v2" in old.json()["error"]["message"]
    assert good.status_code == 201, good.text
    for replay in [*replays, status]:
        assert replay.status_code == 401, replay.text
        assert replay.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert (await partners.graph_stats())["calls"] == 1


# 4. Mixed modes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("modes", ["function-key,entra", "hmac,function-key"])
def test_4_function_keys_beside_entra_or_hmac_refuse_to_start(local_stack: LocalStack, modes: str):
    env = {
        "CALLER_AUTH": modes,
        "ENTRA_TENANT_ID": "00000000-0000-0000-0000-00000000000a",
        "ENTRA_AUDIENCE": AUDIENCE,
        "PARTNER_SECRETS": json.dumps({"acme": ACME_SECRET}),
        "CALLER_POLICY": json.dumps({"function-key": {"organizers": ["*"]}}),
    }
    message = refused(local_stack, env)
    assert "cannot combine function-key with entra or hmac" in message


# 5. Key squatting -----------------------------------------------------------------------------------------


async def test_5_one_caller_neither_blocks_another_nor_gets_its_meeting(partners: Stack):
    external_id = f"order-{uuid.uuid4().hex[:8]}"
    squatted = body_for(externalId=external_id, subject="reserved first by acme")
    wanted = body_for(externalId=external_id, subject="globex's own meeting")
    url = create_url(partners.gateway)
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(secret: str, partner: str, body: dict[str, Any]) -> httpx.Response:
            raw = json.dumps(body).encode()
            return await client.post(url, content=raw, headers=signed(secret, partner, "POST", url, raw))

        acme = await post(ACME_SECRET, "acme", squatted)
        globex = await post(GLOBEX_SECRET, "globex", wanted)
        globex_same_body = await post(GLOBEX_SECRET, "globex", squatted)
        acme_again = await post(ACME_SECRET, "acme", squatted)
    assert acme.status_code == 201, acme.text
    assert globex.status_code == 201, globex.text  # not 403 (blocked) nor 200 with acme's meeting
    assert globex.json()["id"] != acme.json()["id"]
    assert globex.json()["subject"] == "globex's own meeting"
    assert globex_same_body.status_code == 422  # globex's own externalId, reused with another body
    assert acme_again.status_code == 200
    assert acme_again.json()["id"] == acme.json()["id"]
    for response in (acme, globex, acme_again):
        assert response.json()["externalId"] == external_id  # the caller's own id, not Graph's tagged one
    assert (await partners.graph_stats())["calls"] == 2
    # Operators find each caller's reservation by its caller id.
    for partner in ("acme", "globex"):
        shown = cli(partners, "show", ORGANIZER, external_id, "--caller", f"hmac:{partner}")
        assert shown.returncode == 0, shown.stderr
        assert f'"caller": "hmac:{partner}"' in shown.stdout


async def test_5_function_key_callers_keep_their_externalid_at_graph(stack: Stack):
    """The single-caller default is unchanged: Graph sees the externalId as sent, so old keys still match."""
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(create_url(stack.gateway), json=body)
        direct = await client.post(
            create_url(stack.graph), json=body, headers={**await stack.graph_auth(), "Content-Type": "application/json"}
        )
    assert created.status_code == 201, created.text
    assert created.json()["externalId"] == body["externalId"]
    assert direct.status_code == 200
    assert direct.json()["id"] == created.json()["id"]


# 6. Validation and parsing --------------------------------------------------------------------------------


async def test_6_whole_values_are_checked_and_every_parse_failure_is_a_4xx(partners: Stack, stack: Stack):
    url = create_url(stack.gateway)
    bodies = [
        b'{"externalId": "x", "a": ' + b"[" * 60_000 + b"]" * 60_000 + b"}",
        b'{"externalId": "x", "n": ' + b"7" * 5000 + b"}",
        b'{"externalId": "\\ud800"}',
        b'{"externalId": "caf\xe9"}',
        b'{"externalId": \xef\xbb\xbf"bom"}',  # a byte order mark is ignored only at the start (RFC 8259)
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        newline = await client.post(
            f"{stack.gateway}/v1.0/users/{ORGANIZER}%0A/onlineMeetings/createOrGet", json=body_for()
        )
        parsed = [await client.post(url, content=raw, headers={"Content-Type": "application/json"}) for raw in bodies]
        raw = json.dumps(body_for()).encode()
        digits = await client.post(
            create_url(partners.gateway),
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Gateway-Partner": "acme",
                # Starlette reads header bytes as latin-1: 0xB2 arrives as "²", a digit to str.isdigit().
                "X-Gateway-Signature": ("t=\u00b2,v2=" + "0" * 64).encode("latin-1"),
            },
        )
    assert newline.status_code == 400
    for response in parsed:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "BadRequest"
    assert digits.status_code == 401
    assert (await stack.graph_stats())["calls"] == 0


# 7. Configuration that silently weakens --------------------------------------------------------------------


def test_7_short_or_empty_partner_secrets_refuse_to_start(local_stack: LocalStack):
    for secret in ["", "short-secret"]:
        env = {
            "CALLER_AUTH": "hmac",
            "PARTNER_SECRETS": json.dumps({"acme": secret}),
            "CALLER_POLICY": json.dumps({"hmac:acme": {"organizers": ["*"]}}),
        }
        message = refused(local_stack, env)
        assert "PARTNER_SECRETS" in message
        assert "shorter than 32 characters" in message
        assert secret == "" or secret not in message


def test_7_function_keys_outside_the_functions_host_refuse_to_start(local_stack: LocalStack):
    message = refused(local_stack, {"CALLER_AUTH": "function-key", "LOCAL_DEVELOPMENT": "false"})
    assert "not running in the Azure Functions host" in message
    assert "LOCAL_DEVELOPMENT=true" in message


async def test_7_health_detail_only_for_authenticated_callers(partners: Stack, stack_factory):
    health = f"{partners.gateway}/health"
    async with httpx.AsyncClient(timeout=30) as client:
        anonymous = await client.get(health)
        detailed = await client.get(health, headers=signed(ACME_SECRET, "acme", "GET", health, b""))
        broken = await stack_factory(
            env={
                "CALLER_AUTH": "hmac",
                "PARTNER_SECRETS": json.dumps({"acme": ACME_SECRET}),
                "CALLER_POLICY": "{}",
                "TABLES_CONNECTION_STRING": partners.dead_tables,
            }
        )
        broken_health = f"{broken.gateway}/health"
        down = await client.get(broken_health)
        down_detailed = await client.get(broken_health, headers=signed(ACME_SECRET, "acme", "GET", broken_health, b""))
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "healthy"}
    checks = {"tableStorage": "ok", "tokenEndpoint": "ok", "signingKeys": "ok"}  # entra is on: the tenant keys too
    assert detailed.json() == {"status": "healthy", "checks": checks}
    assert down.status_code == 503
    assert down.json() == {"status": "unhealthy"}
    assert down_detailed.json()["checks"] == {"tableStorage": "failed", "tokenEndpoint": "ok"}
    assert "Error" not in down_detailed.text  # no exception type names
