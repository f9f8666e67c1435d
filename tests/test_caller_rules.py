"""Whose keys are whose (issue 19, item 8): callers' externalIds never meet, and the policy denies by default."""

from __future__ import annotations

import pytest

from meetings_core.auth.caller import Caller
from meetings_core.auth.policy import CallerPolicy, CallerRule
from meetings_core.errors import GatewayError
from meetings_core.idempotency.engine import RequestContext
from meetings_core.validation import validate_call
from tests.rules_rig import ORGANIZER, OTHER_ORGANIZER, meeting, rig

BODY = {"externalId": "order-1", "subject": "Kick-off"}


def test_two_callers_same_external_id_are_two_keys_and_two_graph_external_ids():
    a = validate_call("v1.0", ORGANIZER, BODY, scope="hmac:partner-a")
    b = validate_call("v1.0", ORGANIZER, BODY, scope="hmac:partner-b")
    assert a.key != b.key
    assert a.body["externalId"] != b.body["externalId"]
    assert {a.body["externalId"], b.body["externalId"]}.isdisjoint({"order-1"})


def test_control_the_function_key_caller_keeps_its_external_id_verbatim():
    unscoped = validate_call("v1.0", ORGANIZER, BODY)
    assert unscoped.body["externalId"] == "order-1"
    assert unscoped.key.external_id == "order-1"


async def test_two_callers_same_external_id_get_their_own_meetings_and_see_their_own_id():
    r = rig()
    r.graph.script = [meeting(201, "meeting-a"), meeting(201, "meeting-b")]
    outcomes = []
    for caller in ("hmac:partner-a", "hmac:partner-b"):
        c = validate_call("v1.0", ORGANIZER, BODY, scope=caller)
        outcomes.append(await r.engine.create_or_get(c, RequestContext(caller=caller, client_request_id="c")))
    assert [o.status for o in outcomes] == [201, 201]
    assert len(r.graph.calls) == 2
    assert r.graph.calls[0]["body"]["externalId"] != r.graph.calls[1]["body"]["externalId"]


POLICY = CallerPolicy(
    {
        "entra:app1": CallerRule(organizers=[ORGANIZER.upper()], versions=["v1.0"]),
        "hmac:reader": CallerRule(organizers=["*"], readOthers=True),
    }
)


@pytest.mark.parametrize(
    ("caller", "organizer", "version"),
    [
        ("entra:unknown", ORGANIZER, "v1.0"),  # no rule: denied
        ("entra:app1", OTHER_ORGANIZER, "v1.0"),  # not its organizer
        ("entra:app1", ORGANIZER, "beta"),  # not its version
    ],
    ids=["no-rule", "organizer", "version"],
)
def test_the_policy_refuses_what_it_does_not_grant(caller: str, organizer: str, version: str):
    with pytest.raises(GatewayError) as refused:
        POLICY.authorize(Caller(caller, "entra"), organizer, version)
    assert refused.value.status == 403
    assert not POLICY.allows(Caller(caller, "entra"), organizer, version)


def test_control_the_policy_grants_what_it_names():
    POLICY.authorize(Caller("entra:app1", "entra"), ORGANIZER, "v1.0")
    POLICY.authorize(Caller("hmac:reader", "hmac"), OTHER_ORGANIZER, "beta")


def test_only_a_rule_with_read_others_reads_others():
    assert POLICY.may_read_others(Caller("hmac:reader", "hmac"))
    assert not POLICY.may_read_others(Caller("entra:app1", "entra"))
    assert not POLICY.may_read_others(Caller("entra:unknown", "entra"))
    assert not CallerPolicy(None).may_read_others(Caller("function-key", "function-key"))
