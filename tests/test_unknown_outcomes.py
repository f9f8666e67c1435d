"""Exactly once when the outcome is unknown: slow Graph, hung storage, dead owners (real processes, Azurite).

The rule (docs/IDEMPOTENCY.md): no second request for a key reaches Graph while an earlier one may still be
running there, and every caller gets an answer within its client's limit. The Graph emulator, like any
real backend, finishes a create after its client gave up, so the checker counts meetings per externalId.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.data.tables.aio import TableClient

from devstack.stack import LocalStack
from meetings_core.graph.client import GraphClient
from meetings_core.graph.token import TokenProvider
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, RequestContext
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.store import ReservationExists
from meetings_core.idempotency.table_store import TableReservationStore
from meetings_core.validation import validate_call
from tests.stackutil import ORGANIZER, SHORT_LEASE, Stack, body_for, create_url

pytestmark = pytest.mark.integration

RETRYABLE = {429, 503, 504}


async def retrying_post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], *, attempts: int = 6
) -> tuple[httpx.Response, list[int]]:
    """A caller that retries what Power Automate and the Graph SDKs retry, after Retry-After."""
    seen: list[int] = []
    for _ in range(attempts):
        response = await client.post(url, json=body)
        seen.append(response.status_code)
        if response.status_code not in RETRYABLE:
            return response, seen
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    return response, seen


async def test_the_emulator_keeps_creating_after_its_client_gives_up(stack: Stack):
    """The control: a client timeout at Graph is an unknown outcome, not a failure."""
    await stack.graph_config(latency_ms=1500)
    body = body_for()
    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(create_url(stack.graph), json=body, headers=await stack.graph_auth())
    await asyncio.sleep(1.5)
    assert (await stack.graph_stats())["creates"] == 1


async def test_one_caller_graph_slower_than_the_deadline_gets_exactly_one_meeting(stack_factory):
    stack = await stack_factory(workers=1, env=SHORT_LEASE)
    await stack.graph_config(non_atomic=True, latency_ms=2800, slow_calls=1)
    body = body_for()
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(create_url(stack.gateway), json=body)
        assert first.status_code == 504, first.text
        assert first.json()["error"]["code"] == "GatewayTimeout"
        wait = int(first.headers["retry-after"])
        assert 1 <= wait <= 5
        answer, seen = await retrying_post(client, create_url(stack.gateway), body)
    assert answer.status_code == 200, seen
    assert time.monotonic() - started < 180
    stats = await stack.graph_stats()
    assert stats["creates"] == 1
    assert stats["calls"] == 2  # the timed-out one, and one after the lease ended, never both at once
    meeting_ids = await _meeting_ids(stack)
    assert answer.json()["id"] == meeting_ids[f"{ORGANIZER.lower()}|{body['externalId']}"]


async def test_concurrent_duplicates_while_graph_is_slower_than_the_deadline(stack_factory):
    one = await stack_factory(workers=1, env=SHORT_LEASE)
    two = await stack_factory(workers=1, env=SHORT_LEASE)
    await one.graph_config(non_atomic=True, latency_ms=2800, slow_calls=1)
    body = body_for()
    async with httpx.AsyncClient(timeout=60) as client:
        results = await asyncio.gather(
            *(retrying_post(client, create_url((one, two)[i % 2].gateway), body) for i in range(10))
        )
    answers = [response for response, _ in results]
    assert all(a.status_code in (200, 201) for a in answers), [seen for _, seen in results]
    assert len({a.json()["id"] for a in answers}) == 1
    stats = await one.graph_stats()
    assert stats["creates"] == 1
    assert stats["calls"] == 2


async def test_frozen_table_storage_answers_503_in_seconds_and_the_key_goes_through_after(
    local_stack: LocalStack, stack_factory
):
    # Default STORE_TIMEOUT_SECONDS. The frozen insert may commit on thaw, and nobody can tell it never
    # reached Graph, so it holds the key for one (short, here) lease.
    stack = await stack_factory(workers=1, env=SHORT_LEASE)
    body = body_for()
    async with httpx.AsyncClient(timeout=60) as client:
        assert (await client.get(f"{stack.gateway}/health")).status_code == 200  # clients built and connected
        with local_stack.azurite.frozen():
            started = time.monotonic()
            frozen = await client.post(create_url(stack.gateway), json=body)
            elapsed = time.monotonic() - started
        assert frozen.status_code == 503, frozen.text
        assert int(frozen.headers["retry-after"]) >= 1
        assert elapsed < 10
        assert (await stack.graph_stats())["calls"] == 0
        thawed = time.monotonic()
        after, seen = await retrying_post(client, create_url(stack.gateway), body)
    assert after.status_code in (200, 201), seen
    assert time.monotonic() - thawed < 5 + 3
    assert (await stack.graph_stats())["creates"] == 1


async def test_owner_killed_mid_call_then_only_status_polls_get_the_meeting(stack_factory):
    owner = await stack_factory(workers=1, env={**SHORT_LEASE, "DUPLICATE_WAIT_SECONDS": "0.2"})
    poller = await stack_factory(workers=1, env=SHORT_LEASE)
    await owner.graph_config(latency_ms=1500, slow_calls=1)
    body = body_for()
    key = ReservationKey(ORGANIZER.lower(), body["externalId"])
    async with httpx.AsyncClient(timeout=30) as client:
        doomed = asyncio.create_task(client.post(create_url(owner.gateway), json=body))
        await owner.wait_for_record(key)
        accepted = await client.post(create_url(owner.gateway), json=body, headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202
        os.killpg(owner.gateway_pid, signal.SIGKILL)
        with pytest.raises(httpx.TransportError):
            await doomed
        killed_at = time.monotonic()
        location = accepted.headers["location"].replace(owner.gateway, poller.gateway)
        while True:
            poll = await client.get(location)
            if poll.status_code != 202:
                break
            assert time.monotonic() - killed_at < 5 + 2 + 5  # lease + deadline + margin
            await asyncio.sleep(float(poll.headers["retry-after"]))
    assert poll.status_code in (200, 201), poll.text
    stats = await poller.graph_stats()
    assert stats["creates"] == 1
    assert poll.json()["id"] == (await _meeting_ids(poller))[f"{ORGANIZER.lower()}|{body['externalId']}"]
    record = await poller.store_get(key)
    assert record is not None
    assert record.state is State.COMPLETED


class _CommitThenConflict(TableReservationStore):
    """Azurite, but the first insert reports 409 after committing: what azure-core's retry of a POST does."""

    retried = False

    async def insert(self, record: Reservation) -> Reservation:
        stored = await super().insert(record)
        if not self.retried:
            self.retried = True
            raise ReservationExists(record.key)
        return stored


class _EmulatorCredential:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        bearer = (await self._stack.graph_auth())["Authorization"].removeprefix("Bearer ")
        return AccessToken(bearer, int(time.time()) + 3600)


async def test_an_insert_committed_then_reported_as_conflict_makes_one_graph_call(stack: Stack):
    store = _CommitThenConflict(TableClient.from_connection_string(stack.tables, "meetingreservations"))
    tokens = TokenProvider(_EmulatorCredential(stack), "scope")  # type: ignore[arg-type]
    transport = httpx.AsyncHTTPTransport()
    graph = GraphClient(transport, stack.graph, tokens, deadline_seconds=5)
    config = EngineConfig(lease=_seconds(25), duplicate_wait_seconds=5, retention=_seconds(3600), grace_seconds=15)
    engine = IdempotencyEngine(store, graph, config, CompletedCache(0))
    try:
        call = validate_call("v1.0", ORGANIZER.lower(), body_for())
        started = time.monotonic()
        outcome = await engine.create_or_get(call, RequestContext(caller="function-key", client_request_id="c"))
    finally:
        await transport.aclose()
        await store.close()
    assert store.retried
    assert outcome.status == 201
    assert time.monotonic() - started < 3  # recognised as its own at once, not after a wait
    assert (await stack.graph_stats())["calls"] == 1


async def test_a_lone_surrogate_is_a_400_and_nothing_is_reserved(stack: Stack):
    raw = b'{"externalId": "surrogate-%d", "subject": "\\udfff"}' % time.time_ns()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            create_url(stack.gateway), content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert "surrogate" in response.json()["error"]["message"]
    external_id = json.loads(raw.decode())["externalId"]
    assert await stack.store_get(ReservationKey(ORGANIZER.lower(), external_id)) is None
    assert (await stack.graph_stats())["calls"] == 0


async def test_beta_after_v1_gets_the_beta_shape_of_the_same_meeting(stack: Stack):
    """The other version is asked under the reservation and then stored: replays in it cost no Graph call."""
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        v1 = await client.post(create_url(stack.gateway, "v1.0"), json=body)
        beta = await client.post(create_url(stack.gateway, "beta"), json=body)
        beta_again = await client.post(create_url(stack.gateway, "beta"), json=body)
        v1_again = await client.post(create_url(stack.gateway, "v1.0"), json=body)
    assert (v1.status_code, beta.status_code, beta_again.status_code, v1_again.status_code) == (201, 200, 200, 200)
    assert "/beta/" in beta.json()["@odata.context"]
    assert beta.json()["id"] == v1.json()["id"] == v1_again.json()["id"]
    assert "idempotent-replayed" not in beta.headers  # Graph's own answer in the asked version
    assert beta_again.headers["idempotent-replayed"] == "true"
    assert beta_again.json() == beta.json()
    assert "/v1.0/" in v1_again.json()["@odata.context"]
    assert (await stack.graph_stats())["calls_by_version"] == {"v1.0": 2, "beta": 1}


async def test_the_same_meeting_in_another_offset_with_nulls_and_annotations_is_a_replay(stack: Stack):
    body = body_for(startDateTime="2026-03-01T09:00:00Z", endDateTime="2026-03-01T09:30:00Z")
    variant = {
        **body,
        "startDateTime": "2026-03-01T10:00:00+01:00",
        "endDateTime": "2026-03-01T04:30:00-05:00",
        "chatInfo": None,
        "@odata.type": "#microsoft.graph.onlineMeeting",
    }
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(create_url(stack.gateway), json=body)
        again = await client.post(create_url(stack.gateway), json=variant)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert (await stack.graph_stats())["calls"] == 1


async def _meeting_ids(stack: Stack) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{stack.graph}/_emulator/meetings")
        return dict(response.json())


def _seconds(value: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=value)
