"""The idempotency engine against Azurite and a non-atomic Graph emulator, across gateway processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import State
from tests.stackutil import ORGANIZER, Stack, body_for, create_url

pytestmark = pytest.mark.integration


async def test_100_concurrent_duplicates_over_two_processes_make_one_meeting(stack: Stack, stack_factory):
    other = await stack_factory(workers=1)
    # Non-atomic Graph with latency: without the gateway, concurrent calls would create duplicates.
    await stack.graph_config(non_atomic=True, latency_ms=300)
    body = body_for()
    gateways = [stack.gateway, other.gateway]
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
        answers = await asyncio.gather(*(client.post(create_url(gateways[i % 2]), json=body) for i in range(100)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 99 + [201], statuses
    assert len({a.json()["id"] for a in answers}) == 1
    stats = await stack.graph_stats()
    assert stats["creates"] == 1
    assert stats["calls"] == 1


async def test_straight_to_the_non_atomic_emulator_duplicates_do_happen(stack: Stack):
    """The control for the test above: the emulator really does create duplicates when raced."""
    await stack.graph_config(non_atomic=True, latency_ms=300)
    body = body_for()
    headers = await stack.graph_auth()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(client.post(create_url(stack.graph), json=body, headers=headers) for _ in range(10)))
    assert (await stack.graph_stats())["creates"] > 1


async def test_replay_makes_no_graph_call_and_says_so(stack: Stack):
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(create_url(stack.gateway), json=body)
        calls = (await stack.graph_stats())["calls"]
        replays = [await client.post(create_url(stack.gateway), json=body) for _ in range(5)]
    assert first.status_code == 201
    for replay in replays:
        assert replay.status_code == 200
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["graph-request-id"] == first.headers["graph-request-id"]
        assert replay.json() == first.json()
    assert (await stack.graph_stats())["calls"] == calls


async def test_changed_payload_gets_422(stack: Stack):
    body = body_for(subject="first")
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.post(create_url(stack.gateway), json=body)).status_code == 201
        changed = await client.post(create_url(stack.gateway), json={**body, "subject": "second"})
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "ExternalIdReused"
    assert "different request body" in changed.json()["error"]["message"]


@pytest.mark.parametrize(("answer", "status"), [("retry", 503), ("conflict", 409)])
async def test_in_flight_duplicate_past_the_wait_gets_the_set_answer_or_202(stack_factory, answer: str, status: int):
    env = {"DUPLICATE_WAIT_SECONDS": "0.3", "IN_PROGRESS_ANSWER": answer}
    stack = await stack_factory(workers=1, env=env)
    await stack.graph_config(latency_ms=2500)
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        owner = asyncio.create_task(client.post(create_url(stack.gateway), json=body))
        await asyncio.sleep(0.8)
        conflict = await client.post(create_url(stack.gateway), json=body)
        accepted = await client.post(create_url(stack.gateway), json=body, headers={"Prefer": "respond-async"})
        assert conflict.status_code == status
        assert conflict.json()["error"]["code"] == "RequestInProgress"
        assert int(conflict.headers["retry-after"]) >= 1
        assert accepted.status_code == 202
        location = accepted.headers["location"]
        assert location.startswith(stack.gateway + "/operations/")
        pending = await client.get(location)
        assert pending.status_code == 202
        created = await owner
        assert created.status_code == 201
        done = await client.get(location)
    assert done.status_code == 201
    assert done.json()["id"] == created.json()["id"]


async def _kill_owner_and_recover(stack_factory, *, hold: str) -> None:
    # A lease of 6 s (Graph deadline 3 s) keeps the test short; the taker waits for the lease to end.
    env = {"GRAPH_DEADLINE_SECONDS": "3", "GRAPH_GRACE_SECONDS": "3", "RESERVATION_LEASE_SECONDS": "6"}
    owner = await stack_factory(workers=1, env=env)
    taker = await stack_factory(workers=1, env=env)
    if hold == "token":
        await owner.identity_config(latency_ms=5000)  # the owner dies waiting for its token: Graph never called
    else:
        await owner.graph_config(latency_ms=2500)  # the owner dies while Graph is creating the meeting
    body = body_for()
    key = ReservationKey(ORGANIZER.lower(), body["externalId"])
    async with httpx.AsyncClient(timeout=30) as client:
        doomed = asyncio.create_task(client.post(create_url(owner.gateway), json=body))
        record = await owner.wait_for_record(key)
        assert record.state is State.IN_PROGRESS
        await asyncio.sleep(0.3)
        os.killpg(owner.gateway_pid, signal.SIGKILL)
        with pytest.raises(httpx.TransportError):
            await doomed
        await asyncio.sleep(2.5)  # let the emulator finish the dead owner's create, as Graph would
        await owner.identity_config(latency_ms=0)
        await owner.graph_config(latency_ms=0)
        started = time.monotonic()
        recovered = await client.post(create_url(taker.gateway), json=body)
    assert recovered.status_code in (200, 201), recovered.text
    assert time.monotonic() - started < 15
    stats = await taker.graph_stats()
    assert stats["creates"] == 1
    assert recovered.status_code == (201 if hold == "token" else 200)
    final = await taker.store_get(key)
    assert final is not None
    assert final.state is State.COMPLETED
    assert final.meeting()["id"] == recovered.json()["id"]


async def test_owner_killed_after_reserving_is_recovered_by_takeover(stack_factory):
    await _kill_owner_and_recover(stack_factory, hold="token")


async def test_owner_killed_after_graph_created_is_recovered_without_duplicate(stack_factory):
    await _kill_owner_and_recover(stack_factory, hold="graph")


async def test_graph_400_releases_the_key(stack: Stack):
    body = body_for()
    await stack.graph_config(
        faults=[{"status": 400, "count": 1, "body": {"error": {"code": "BadRequest", "message": "no"}}}]
    )
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.post(create_url(stack.gateway), json=body)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "no"
        released = await stack.store_get(ReservationKey(ORGANIZER.lower(), body["externalId"]))
        assert released is not None
        assert released.released_at is not None  # kept for a poller, whom the next request's takeover answers
        retried = await client.post(create_url(stack.gateway), json=body)
    assert retried.status_code == 201


async def test_table_storage_down_gives_503_and_no_graph_call(stack: Stack, stack_factory):
    broken = await stack_factory(workers=1, env={"TABLES_CONNECTION_STRING": stack.dead_tables})
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(broken.gateway), json=body_for())
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "no meeting was requested" in response.json()["error"]["message"]
    assert (await stack.graph_stats())["calls"] == 0


async def test_externalids_with_forbidden_key_characters_work(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        for external_id in ["a/b\\c#d?e", "ü" * 400, "  padded  ", "x" * 512]:
            body = body_for(externalId=external_id)
            first = await client.post(create_url(stack.gateway), json=body)
            again = await client.post(create_url(stack.gateway), json=body)
            assert (first.status_code, again.status_code) == (201, 200), first.text
            assert first.json()["externalId"] == external_id


async def test_return_existing_mode_answers_the_stored_meeting_for_a_changed_payload(stack_factory):
    stack = await stack_factory(workers=1, env={"ON_PAYLOAD_MISMATCH": "return-existing"})
    body = body_for(subject="first")
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(create_url(stack.gateway), json=body)
        changed = await client.post(create_url(stack.gateway), json={**body, "subject": "second"})
    assert created.status_code == 201
    assert changed.status_code == 200
    assert changed.json()["id"] == created.json()["id"]
    assert changed.json()["subject"] == "first"
    assert (await stack.graph_stats())["calls"] == 1


@pytest.mark.parametrize("operation_id", ["nope", "a/b", "x#y", "0" * 63, "%3F", "A" * 64])
async def test_unknown_or_malformed_operation_ids_are_404(stack: Stack, operation_id: str):
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{stack.gateway}/operations/{operation_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"
