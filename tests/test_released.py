"""A definite failure releases the key for takeover, against Azurite and the Graph emulator: a caller that got
202 polls its status URL to the meeting once Graph recovers, or to Graph's own refusal, never to a 404."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.purge import RELEASED_KEPT_FOR
from meetings_core.settings import Settings
from tests.stackutil import ORGANIZER, Stack, body_for, create_url

pytestmark = pytest.mark.integration

# A short lease (Graph deadline 3 s) keeps the owner's failure, and the tests, short.
SHORT = {"GRAPH_DEADLINE_SECONDS": "3", "GRAPH_GRACE_SECONDS": "3", "RESERVATION_LEASE_SECONDS": "6"}
ASYNC = {"Prefer": "respond-async"}


async def _accepted_while_the_owner_calls(
    stack: Stack, client: httpx.AsyncClient, body: dict[str, object]
) -> tuple[httpx.Response, httpx.Response]:
    """Run A, the owner, to its answer; B posts the same with respond-async while A holds the key: (A's, B's)."""
    owner = asyncio.create_task(client.post(create_url(stack.gateway), json=body))
    await stack.wait_for_record(ReservationKey(ORGANIZER.lower(), str(body["externalId"])))
    accepted = await client.post(create_url(stack.gateway), json=body, headers=ASYNC)
    return await owner, accepted


async def test_a_poll_after_a_503_storm_takes_over_and_answers_the_meeting(stack_factory):
    stack = await stack_factory(workers=1, env=SHORT)
    await stack.graph_config(faults=[{"status": 503, "retry_after": 1, "count": 1000}])
    body = body_for()
    key = ReservationKey(ORGANIZER.lower(), body["externalId"])
    async with httpx.AsyncClient(timeout=30) as client:
        failed, accepted = await _accepted_while_the_owner_calls(stack, client, body)
        assert failed.status_code == 503, failed.text
        assert accepted.status_code == 202, accepted.text
        released = await stack.store_get(key)
        assert released is not None, "the owner deleted the key: the poll below would be 404"
        assert released.released_at is not None
        still_down = await client.get(accepted.headers["location"])  # takes over, Graph still refuses: 503
        assert still_down.status_code == 503, still_down.text
        await stack.graph_config(faults=[])
        done = await client.get(accepted.headers["location"])
        retried = await client.post(create_url(stack.gateway), json=body)
    assert done.status_code == 201, done.text
    assert retried.status_code == 200
    assert retried.json()["id"] == done.json()["id"]
    assert (await stack.graph_stats())["creates"] == 1


async def test_a_poll_after_a_graph_403_answers_403_with_graphs_reason(stack_factory):
    stack = await stack_factory(workers=1, env=SHORT)
    await stack.identity_config(latency_ms=1500)  # the owner waits for its token: B gets its 202 meanwhile
    await stack.graph_config(deny_organizers=[ORGANIZER.lower()])
    async with httpx.AsyncClient(timeout=30) as client:
        failed, accepted = await _accepted_while_the_owner_calls(stack, client, body_for())
        assert failed.status_code == 403, failed.text
        assert accepted.status_code == 202, accepted.text
        polled = await client.get(accepted.headers["location"])
    assert polled.status_code == 403, polled.text
    assert polled.json()["error"]["message"] == failed.json()["error"]["message"]
    assert "not allowed to perform operations on the user" in polled.json()["error"]["message"]


async def test_a_poll_of_a_body_graph_refused_answers_the_refusal_and_a_corrected_request_goes_through(stack_factory):
    """Graph's refusal is kept on the released record: the poll answers it without sending the body to Graph again
    (so the key is never held against the corrected request), and then polls to the corrected request's meeting."""
    stack = await stack_factory(workers=1, env=SHORT)
    await stack.identity_config(latency_ms=1500)  # the owner waits for its token: B gets its 202 meanwhile
    inner = {"request-id": "graph-refusal-1", "date": "2026-11-29T09:00:00"}
    refusal = {"error": {"code": "BadRequest", "message": "The subject is too long.", "innerError": inner}}
    await stack.graph_config(faults=[{"status": 400, "count": 1, "body": refusal}])
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        failed, accepted = await _accepted_while_the_owner_calls(stack, client, body)
        assert failed.status_code == 400, failed.text
        assert accepted.status_code == 202, accepted.text
        polled = await client.get(accepted.headers["location"])
        assert (await stack.graph_stats())["calls"] == 1, "the poll sent the refused body to Graph again"
        corrected = await client.post(create_url(stack.gateway), json={**body, "subject": "Short"})
        done = await client.get(accepted.headers["location"])
    assert polled.status_code == 400, polled.text
    error = polled.json()["error"]
    assert (error["code"], error["message"]) == ("BadRequest", "The subject is too long.")
    assert error["innerError"]["graph-request-id"] == "graph-refusal-1"
    assert error["innerError"]["request-id"] == polled.headers["request-id"]  # the poll's own id, as for any answer
    assert corrected.status_code == 201, corrected.text
    assert done.status_code == 201, done.text
    assert done.json()["id"] == corrected.json()["id"]
    assert (await stack.graph_stats())["creates"] == 1


async def test_the_callers_retry_after_a_503_takes_the_released_key_over(stack_factory):
    stack = await stack_factory(workers=1, env=SHORT)
    await stack.graph_config(faults=[{"status": 503, "retry_after": 1, "count": 1000}])
    body = body_for()
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.post(create_url(stack.gateway), json=body)
        assert refused.status_code == 503, refused.text
        released = await stack.store_get(ReservationKey(ORGANIZER.lower(), body["externalId"]))
        assert released is not None
        assert released.released_at is not None
        await stack.graph_config(faults=[])
        retried = await client.post(create_url(stack.gateway), json=body)
    assert retried.status_code == 201, retried.text
    assert (await stack.graph_stats())["creates"] == 1


def test_the_purge_keeps_a_released_record_as_long_as_the_longest_status_url_lives():
    """RELEASED_KEPT_FOR is the bound of STATUS_URL_TTL_SECONDS: a longer setting would let a poll miss its record."""
    field = Settings.model_fields["status_url_ttl_seconds"]
    assert [getattr(m, "le", None) for m in field.metadata if hasattr(m, "le")] == [RELEASED_KEPT_FOR.total_seconds()]
