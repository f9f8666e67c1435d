"""HMAC partner signatures and the per-caller policy, at unit level."""

from __future__ import annotations

import hashlib
import hmac
import time

import azure.functions as func
import httpx
import jwt
import pytest
from azure.functions._http_asgi import AsgiRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetings_core.auth.caller import Caller
from meetings_core.auth.entra import EntraVerifier, JwksCache, _grants
from meetings_core.auth.hmac_signature import HmacVerifier, sign
from meetings_core.auth.policy import CallerPolicy, CallerRule
from meetings_core.errors import GatewayError
from meetings_core.http.target import request_target

BODY = b'{"externalId":"a"}'
ORG = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"
PATH = f"/v1.0/users/{ORG}/onlineMeetings/createOrGet"


@pytest.fixture
def verifier() -> HmacVerifier:
    return HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=300)


def _sign(secret: str = "s3cret-acme", body: bytes = BODY, *, at: int | None = None, path: str = PATH) -> str:
    return sign(secret, "POST", path, body, int(time.time()) if at is None else at)


def test_valid_signature_names_the_partner(verifier: HmacVerifier):
    caller = verifier.verify("acme", _sign(), "POST", PATH, BODY)
    assert caller == Caller("hmac:acme", "hmac")


def _v1(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@pytest.mark.parametrize(
    ("partner", "signature", "fragment"),
    [
        (None, None, "Send the"),
        ("acme", "v2=abc", "must look like"),
        ("acme", _v1("s3cret-acme", BODY, int(time.time())), "sign with v2"),
        ("acme", _sign("wrong"), "not valid"),
        ("acme", _sign(body=BODY + b" "), "not valid"),
        ("acme", _sign(path=PATH + "?x=1"), "not valid"),
        ("acme", _sign(path=PATH.replace("v1.0", "beta")), "not valid"),
        ("acme", _sign(at=int(time.time()) - 900), "outside the accepted window"),
        ("acme", _sign(at=int(time.time()) + 900), "ahead of the gateway's clock"),
        ("nobody", _sign(), "not valid"),
        ("acme", f"t={int(time.time())},v2=" + "\u00e9" * 64, "must look like"),
        ("acme", "t=\u00b2,v2=" + "0" * 64, "must look like"),
        ("acme", "t=" + "9" * 400 + ",v2=" + "0" * 64, "must look like"),
    ],
)
def test_bad_or_stale_signatures_are_401(verifier: HmacVerifier, partner, signature, fragment):
    with pytest.raises(GatewayError) as raised:
        verifier.verify(partner, signature, "POST", PATH, BODY)
    assert raised.value.status == 401
    assert fragment in raised.value.message
    assert "s3cret" not in raised.value.message


def test_signature_binds_the_method():
    verifier = HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=300)
    signature = sign("s3cret-acme", "GET", "/operations/abc", b"", int(time.time()))
    assert verifier.verify("acme", signature, "GET", "/operations/abc", b"").id == "hmac:acme"
    with pytest.raises(GatewayError):
        verifier.verify("acme", signature, "GET", "/operations/abd", b"")
    with pytest.raises(GatewayError):
        verifier.verify("acme", signature, "POST", "/operations/abc", b"")


def test_no_policy_allows_everyone():
    CallerPolicy(None).authorize(Caller("x", "entra"), ORG, "beta")


def test_policy_denies_by_default_and_limits_organizers_and_versions():
    policy = CallerPolicy(
        {
            "entra:app1": CallerRule(organizers=[ORG.upper()], versions=["v1.0"]),
            "hmac:acme": CallerRule(organizers=["*"], readOthers=True),
        }
    )
    policy.authorize(Caller("entra:app1", "entra"), ORG, "v1.0")
    policy.authorize(Caller("hmac:acme", "hmac"), "00000000-0000-0000-0000-000000000001", "beta")
    for caller, organizer, version in [
        (Caller("entra:other", "entra"), ORG, "v1.0"),
        (Caller("entra:app1", "entra"), "00000000-0000-0000-0000-000000000001", "v1.0"),
        (Caller("entra:app1", "entra"), ORG, "beta"),
    ]:
        with pytest.raises(GatewayError) as raised:
            policy.authorize(caller, organizer, version)
        assert raised.value.status == 403
    assert policy.may_read_others(Caller("hmac:acme", "hmac"))
    assert not policy.may_read_others(Caller("entra:app1", "entra"))
    assert not CallerPolicy(None).may_read_others(Caller("function-key", "function-key"))


# Digits of every script and superscripts: str.isdigit() accepts them all, int() reads most of them.
_DIGITS = st.characters(categories=["Nd", "No"])


@settings(deadline=None, max_examples=200)
@given(
    partner=st.text(max_size=20) | st.just("acme"),
    signature=st.text(max_size=80)
    | st.builds(lambda t, d: f"t={t},v2={d}", st.text(_DIGITS, min_size=1, max_size=14), st.text(max_size=70))
    | st.builds(lambda t: f"t={t},v1=" + "0" * 64, st.text(_DIGITS, min_size=1, max_size=14)),
    body=st.binary(max_size=50),
)
def test_any_signature_header_is_a_clean_401(partner: str, signature: str, body: bytes):
    verifier = HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=300)
    with pytest.raises(GatewayError) as raised:
        verifier.verify(partner or None, signature or None, "POST", PATH, body)
    assert raised.value.status == 401


@settings(deadline=None, max_examples=100)
@given(authorization=st.text(max_size=120) | st.just("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.c2ln"))
async def test_any_authorization_header_is_a_clean_401_or_a_503_while_the_keys_are_unreachable(authorization: str):
    """401 for anything that is not a bearer JWT; a JWT whose key cannot be fetched yet is 503 + Retry-After."""
    async with httpx.AsyncClient() as http:
        jwks = JwksCache(http, "http://127.0.0.1:9/keys")  # nothing listens: no key is ever known
        entra = EntraVerifier(jwks, tenant_id="t", audiences=["api://x"], authority="http://127.0.0.1:9")
        with pytest.raises(GatewayError) as raised:
            await entra.verify(authorization)
    scheme, _, token = authorization.partition(" ")
    try:
        jwt.get_unverified_header(token.strip())
        judged = scheme.lower() == "bearer"
    except jwt.PyJWTError:
        judged = False
    assert raised.value.status == (503 if judged else 401)
    if judged:
        assert "Retry-After" in raised.value.headers


def test_the_signed_target_is_the_same_under_uvicorn_and_the_functions_host():
    url = f"https://gw.example{PATH}?a=1&b=%20"
    request = func.HttpRequest("POST", url, headers={}, body=b"")
    functions_scope = AsgiRequest(request).to_asgi_http_scope()  # what AsgiFunctionApp serves
    uvicorn_scope = {"path": PATH, "raw_path": PATH.encode(), "query_string": b"a=1&b=%20"}
    assert request_target(functions_scope) == request_target(uvicorn_scope) == f"{PATH}?a=1&b=%20"


@pytest.mark.parametrize(
    ("claims", "granted"),
    [
        ({"roles": ["MeetingGateway.Create"]}, True),
        ({"scp": "User.Read MeetingGateway.Create"}, True),
        ({"scp": "MeetingGateway.CreateAll"}, False),
        ({"roles": "MeetingGateway.Create"}, False),  # roles is a list; a string is not trusted
        ({}, False),
    ],
)
def test_required_role_is_an_app_role_or_a_delegated_scope(claims: dict[str, object], granted: bool):
    assert _grants(claims, "MeetingGateway.Create") is granted
