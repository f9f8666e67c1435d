"""Issue 19 item 5: the other API version keeps one Graph call per key at a time, and a status URL answers in
the version its caller asked in (in-process: memory store, scripted Graph, fake clock)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphResult
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import State
from meetings_core.idempotency.store import ReservationChanged
from tests.rules_rig import meeting
from tests.stackutil import ORGANIZER, Stack, body_for, create_url
from tests.test_engine import CTX, LEASE, call, key, rig, seed_in_progress, stored


async def test_the_other_version_is_asked_under_the_reservation_and_then_replayed():
    r = rig(cache_size=0)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    r.graph.script = [meeting(200, version="beta")]
    beta = await r.engine.create_or_get(call("beta"), CTX)
    assert beta.status == 200
    assert b"/beta/" in beta.body
    assert (stored(r).state, stored(r).api_version) == (State.COMPLETED, "beta")
    again = await r.engine.create_or_get(call("beta"), CTX)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert b"/beta/" in again.body
    assert [c["version"] for c in r.graph.calls] == ["v1.0", "beta"]  # the second beta answer cost no call


async def test_a_refusal_in_the_other_version_puts_the_meetings_record_back():
    r = rig(cache_size=0)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    v1_record = stored(r)
    r.graph.script = [GatewayError(403, "Forbidden", "no beta for you")]
    with pytest.raises(GatewayError) as raised:
        await r.engine.create_or_get(call("beta"), CTX)
    assert raised.value.status == 403
    assert replace(stored(r), etag=None) == replace(v1_record, etag=None)
    replay = await r.engine.create_or_get(call("v1.0"), CTX)
    assert (replay.status, len(r.graph.calls)) == (200, 2)


class _SlowGraph:
    """Yields to other callers while 'in flight' and counts how many calls overlap."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def create_or_get(self, api_version: str, *args: Any, **kwargs: Any) -> GraphResult:
        self.calls.append(api_version)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(20):
            await asyncio.sleep(0)
        self.in_flight -= 1
        return meeting(200 if len(self.calls) > 1 else 201, version=api_version)


async def test_concurrent_callers_in_the_other_version_make_one_graph_call_at_a_time():
    r = rig(cache_size=0)
    graph = _SlowGraph()

    async def yielding_sleep(seconds: float) -> None:
        r.clock.advance(seconds)
        await asyncio.sleep(0)

    r.rebuild(cache_size=0, graph=graph, sleep=yielding_sleep)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    answers = await asyncio.gather(*(r.engine.create_or_get(call("beta"), CTX) for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]
    assert all(b"/beta/" in a.body for a in answers)
    assert graph.calls == ["v1.0", "beta"]
    assert graph.most_in_flight == 1


async def test_an_asynchronous_duplicate_gets_a_status_url_in_its_own_version():
    r = rig(cache_size=0)
    seed_in_progress(r, lease_left=LEASE, owner="live-owner")  # a v1.0 call, still running
    accepted = await r.engine.create_or_get(call("beta"), replace(CTX, respond_async=True))
    assert accepted.status == 202
    location = accepted.headers["Location"]
    assert location == f"/operations/{key().digest}_beta"
    assert r.graph.calls == []
    # The v1.0 owner finishes; the beta caller's poll answers in beta (asking Graph once, under the key).
    done = stored(r).as_completed(201, meeting(201, version="v1.0").body, "g-1", r.clock(), r.config.retention)
    r.store._commit(done)
    r.graph.script = [meeting(200, version="beta")]
    polled = await r.engine.status(location.removeprefix("/operations/"), CTX)
    assert polled.status == 200
    assert b"/beta/" in polled.body
    again = await r.engine.status(location.removeprefix("/operations/"), CTX)
    assert b"/beta/" in again.body
    assert [c["version"] for c in r.graph.calls] == ["beta"]


async def test_a_status_url_without_a_version_answers_the_records_version():
    r = rig(cache_size=0)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    legacy = await r.engine.status(key().digest, CTX)  # status URLs made before versions were named
    assert (legacy.status, b"/v1.0/" in legacy.body, len(r.graph.calls)) == (201, True, 1)


@pytest.mark.parametrize("suffix", ["_v2.0", "_", "_beta_beta"])
async def test_a_status_url_naming_an_unknown_version_is_not_found(suffix: str):
    r = rig(cache_size=0)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    with pytest.raises(GatewayError) as raised:
        await r.engine.status(key().digest + suffix, CTX)
    assert raised.value.status == 404


async def test_a_status_url_in_a_version_the_caller_may_not_use_is_not_found():
    r = rig(cache_size=0)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    v1_only = replace(CTX, allows=lambda organizer, version: version == "v1.0")
    with pytest.raises(GatewayError) as raised:
        await r.engine.status(f"{key().digest}_beta", v1_only)
    assert raised.value.status == 404
    assert len(r.graph.calls) == 1


@pytest.mark.integration
async def test_a_beta_asynchronous_duplicate_polls_its_signed_status_url_into_the_beta_shape(stack: Stack):
    """End to end: the v1.0 owner is slow; a beta duplicate with respond-async gets 202 at once, and its
    signed Location answers the same meeting in beta (on the old engine: v1.0's shape)."""
    await stack.graph_config(latency_ms=1500, slow_calls=1)
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        owner = asyncio.create_task(client.post(create_url(stack.gateway, "v1.0"), json=body))
        await stack.wait_for_record(ReservationKey(ORGANIZER.lower(), body["externalId"]))
        accepted = await client.post(create_url(stack.gateway, "beta"), json=body, headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        created = await owner
        for _ in range(40):
            polled = await client.get(location)
            if polled.status_code != 202:
                break
            await asyncio.sleep(0.25)
    assert created.status_code == 201
    assert polled.status_code == 200, polled.text
    assert "/beta/" in polled.json()["@odata.context"]
    assert polled.json()["id"] == created.json()["id"]
    assert (await stack.graph_stats())["calls_by_version"] == {"v1.0": 1, "beta": 1}


async def test_a_refusal_after_a_retried_version_switch_still_puts_the_meetings_record_back():
    """The switch's replace commits but its retry reports a conflict (azure-core retried it): the caller goes on
    as owner, and a refusal must still restore the completed record it replaced, not delete the key."""
    r = rig(cache_size=0)
    assert (await r.engine.create_or_get(call("v1.0"), CTX)).status == 201
    v1_record = stored(r)

    def retried(operation: str, record: Any) -> None:
        if operation == "replace":
            r.store.after = None
            raise ReservationChanged(record.key)

    r.store.after = retried
    r.graph.script = [GatewayError(403, "Forbidden", "no beta for you")]
    with pytest.raises(GatewayError) as raised:
        await r.engine.create_or_get(call("beta"), CTX)
    assert raised.value.status == 403
    assert replace(stored(r), etag=None) == replace(v1_record, etag=None)
