"""Byte-identical replays answered from the replay index answer exactly as the full path, and only after the
caller was authenticated and admitted by its policy (the app in-process, over Azurite and the Graph emulator)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import meetings_core.http.app as app_module
from devstack.stack import LocalStack
from meetings_core.auth.hmac_signature import PARTNER_HEADER, SIGNATURE_HEADER, sign
from meetings_core.auth.policy import CallerPolicy, CallerRule
from meetings_core.http.app import create_app
from meetings_core.settings import Settings
from tests.stackutil import body_for, create_url

SECRETS = {"acme": "s3cret-acme-" + "0123456789" * 3, "zeta": "s3cret-zeta-" + "0123456789" * 3}
EVERYWHERE = {"organizers": ["*"]}
# Headers that name the request, not the answer: each request gets its own.
PER_REQUEST = {"request-id", "client-request-id"}


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: Any
    parsed: list[str] = field(default_factory=list)  # one entry per request that went through validate_call

    async def post(
        self, raw: bytes, partner: str = "acme", version: str = "v1.0", secret: str | None = None, **headers: str
    ) -> httpx.Response:
        path = create_url("", version=version)
        signature = sign(secret or SECRETS[partner], "POST", path, raw, int(time.time()))
        sent = {"Content-Type": "application/json", PARTNER_HEADER: partner, SIGNATURE_HEADER: signature, **headers}
        return await self.client.post(path, content=raw, headers=sent)


@pytest.fixture
async def gateway(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    env = local_stack.gateway_env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
    settings = Settings(
        graph_base_url=env["GRAPH_BASE_URL"],
        tables_connection_string=env["TABLES_CONNECTION_STRING"],
        caller_auth="hmac",
        partner_secrets=SECRETS,
        caller_policy={"hmac:acme": EVERYWHERE, "hmac:zeta": EVERYWHERE},
        local_development=True,
    )
    app = create_app(settings)
    gateway = Gateway(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw"), app)
    monkeypatch.setattr(app_module, "validate_call", _counting(app_module.validate_call, gateway.parsed))
    yield gateway
    await gateway.client.aclose()
    await app.state.services.close()


def _counting(validate: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return validate(*args, **kwargs)

    return counted


def raw_body(**overrides: Any) -> bytes:
    return json.dumps(body_for(**overrides)).encode()


def answer_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in PER_REQUEST}


async def test_a_byte_identical_replay_is_answered_without_parsing_exactly_as_the_full_path(gateway: Gateway):
    raw = raw_body()
    assert (await gateway.post(raw)).status_code == 201
    full = await gateway.post(raw, **{"client-request-id": "retry-1"})
    assert len(gateway.parsed) == 2  # the first replay took the full path (and is remembered)
    fast = await gateway.post(raw, **{"client-request-id": "retry-2"})
    assert len(gateway.parsed) == 2  # the second was answered from the index
    assert fast.status_code == full.status_code == 200
    assert fast.content == full.content
    assert json.loads(fast.content)["externalId"] == json.loads(raw)["externalId"]  # the caller's, not Graph's
    assert answer_headers(fast) == answer_headers(full)
    assert fast.headers["idempotent-replayed"] == "true"
    assert fast.headers["graph-request-id"]
    assert (fast.headers["client-request-id"], full.headers["client-request-id"]) == ("retry-2", "retry-1")
    assert fast.headers["request-id"] != full.headers["request-id"]
    unnamed = await gateway.post(raw)  # without a client-request-id, the request's own id stands in for it
    assert unnamed.headers["client-request-id"] == unnamed.headers["request-id"] != fast.headers["request-id"]


async def test_a_remembered_replay_is_still_authenticated_and_authorized(gateway: Gateway):
    raw = raw_body()
    for _ in range(3):
        await gateway.post(raw)
    assert len(gateway.parsed) == 2  # the third was answered from the index
    forged = await gateway.post(raw, secret="not-the-partners-secret")
    assert forged.status_code == 401
    gateway.app.state.policy = CallerPolicy({"hmac:acme": CallerRule(organizers=["*"], versions=["beta"])})
    refused = await gateway.post(raw)
    assert refused.status_code == 403
    assert "v1.0" in refused.json()["error"]["message"]
    gateway.app.state.policy = CallerPolicy({"hmac:acme": CallerRule(organizers=["*"])})
    assert (await gateway.post(raw)).status_code == 200
    assert len(gateway.parsed) == 2


async def test_another_caller_sending_the_same_bytes_gets_its_own_meeting(gateway: Gateway):
    raw = raw_body()
    for _ in range(3):
        first = await gateway.post(raw)
    theirs = await gateway.post(raw, partner="zeta")
    assert theirs.status_code == 201  # zeta's externalId is its own: a new meeting, not acme's replay
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != first.json()["id"]
    assert len(gateway.parsed) == 3


async def test_another_version_or_another_body_takes_the_full_path_as_before(gateway: Gateway):
    raw = raw_body()
    for _ in range(3):
        await gateway.post(raw)
    assert len(gateway.parsed) == 2
    changed = await gateway.post(raw_body(externalId=json.loads(raw)["externalId"], subject="Another subject"))
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "ExternalIdReused"
    beta = await gateway.post(raw, version="beta")
    assert beta.status_code in (200, 201)
    assert "idempotent-replayed" not in beta.headers  # asked Graph in beta, under the reservation
    assert gateway.parsed[-1] == "beta"
    again = await gateway.post(raw)  # the record is beta's now: the v1.0 answer remembered is not served
    assert gateway.parsed[-1] == "v1.0"
    assert len(gateway.parsed) == 5
    assert again.status_code in (200, 201)
    assert "idempotent-replayed" not in again.headers


_NO_TELEMETRY_WORK = """
import asyncio, sys
import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from devstack.stack import tables_connection_string
from meetings_core.http import app as module
from meetings_core.settings import Settings

if sys.argv[1] == "sdk":
    trace.set_tracer_provider(TracerProvider())

def refuse(*args, **kwargs):
    raise AssertionError("telemetry work")

module.observe = refuse
settings = Settings(tables_connection_string=tables_connection_string(9), local_development=True)
app = module.create_app(settings)
if sys.argv[1] == "late":  # a host that installs its provider after the app was built
    trace.set_tracer_provider(TracerProvider())

async def main() -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        print((await client.post("/v9/users/x/onlineMeetings/createOrGet", json={})).status_code)

asyncio.run(main())
"""


@pytest.mark.parametrize(("installed", "status"), [("none", "404"), ("sdk", "500"), ("late", "500")])
def test_answers_are_traced_and_measured_only_when_an_opentelemetry_sdk_is_installed(installed: str, status: str):
    """Without an SDK every span and instrument is a no-op: the guard skips them (a replay's 14 us); with one,
    `observe` runs (here it raises, so the answer is a 500)."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_TELEMETRY_WORK, installed], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split()[-1] == status, done.stderr
