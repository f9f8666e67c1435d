"""HMAC partner signatures and the per-caller policy, at unit level."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetings_core.auth.caller import Caller
from meetings_core.auth.entra import EntraVerifier, JwksCache
from meetings_core.auth.hmac_signature import HmacVerifier, sign
from meetings_core.auth.policy import CallerPolicy, CallerRule
from meetings_core.errors import GatewayError

BODY = b'{"externalId":"a"}'
ORG = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"


@pytest.fixture
def verifier() -> HmacVerifier:
    return HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=300)


def test_valid_signature_names_the_partner(verifier: HmacVerifier):
    caller = verifier.verify("acme", sign("s3cret-acme", BODY, int(time.time())), BODY)
    assert caller == Caller("hmac:acme", "hmac")


@pytest.mark.parametrize(
    ("partner", "signature", "fragment"),
    [
        (None, None, "Send the"),
        ("acme", "v1=abc", "must look like"),
        ("acme", sign("wrong", BODY, int(time.time())), "not valid"),
        ("acme", sign("s3cret-acme", BODY + b" ", int(time.time())), "not valid"),
        ("acme", sign("s3cret-acme", BODY, int(time.time()) - 900), "outside the accepted window"),
        ("acme", sign("s3cret-acme", BODY, int(time.time()) + 900), "outside the accepted window"),
        ("nobody", sign("s3cret-acme", BODY, int(time.time())), "not valid"),
        ("acme", f"t={int(time.time())},v1=\u00e9\u00e9", "not valid"),
        ("acme", "t=" + "9" * 400 + ",v1=ab", "must look like"),
    ],
)
def test_bad_or_stale_signatures_are_401(verifier: HmacVerifier, partner, signature, fragment):
    with pytest.raises(GatewayError) as raised:
        verifier.verify(partner, signature, BODY)
    assert raised.value.status == 401
    assert fragment in raised.value.message
    assert "s3cret" not in raised.value.message


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


@settings(deadline=None, max_examples=200)
@given(partner=st.text(max_size=20), signature=st.text(max_size=80), body=st.binary(max_size=50))
def test_any_signature_header_is_a_clean_401(partner: str, signature: str, body: bytes):
    verifier = HmacVerifier({"acme": "s3cret-acme"}, tolerance_seconds=300)
    with pytest.raises(GatewayError) as raised:
        verifier.verify(partner or None, signature or None, body)
    assert raised.value.status == 401


@settings(deadline=None, max_examples=100)
@given(authorization=st.text(max_size=120) | st.just("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.c2ln"))
async def test_any_authorization_header_is_a_clean_401(authorization: str):
    async with httpx.AsyncClient() as http:
        jwks = JwksCache(http, "http://127.0.0.1:9/keys")  # nothing listens: no key is ever known
        entra = EntraVerifier(jwks, tenant_id="t", audiences=["api://x"], authority="http://127.0.0.1:9")
        with pytest.raises(GatewayError) as raised:
            await entra.verify(authorization)
    assert raised.value.status == 401
