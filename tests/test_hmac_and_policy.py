"""HMAC partner signatures and the per-caller policy, at unit level."""

from __future__ import annotations

import time

import pytest

from meetings_core.auth.caller import Caller
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
