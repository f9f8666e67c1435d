"""Each named client, modelled from its documentation, completes concurrent duplicates by itself.

Graph is slower than the duplicate wait, so duplicates get the in-progress answer (503 + Retry-After, or
202 + a signed Location to callers that asked for it); every run must still end with the same meeting and
Graph must create exactly one. The timings are scaled down together (wait 0.3 s, Graph 1.5 s, client
intervals x0.05) so the proportions of the real defaults hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.clients import graph_sdk
from tests.clients.custom_connector import Connection, ConnectorAction
from tests.clients.power_automate_http import PROFILES, HttpAction
from tests.clients.result import RunResult
from tests.clients.webhook_sender import WebhookSender
from tests.stackutil import ORGANIZER, Stack, body_for, create_url

pytestmark = pytest.mark.integration

SCALE = 0.05
GRAPH_LATENCY_MS = 1500
FAST = {
    "DUPLICATE_WAIT_SECONDS": "0.3",
    "GRAPH_DEADLINE_SECONDS": "3",
    "GRAPH_GRACE_SECONDS": "3",
    "RESERVATION_LEASE_SECONDS": "8",
}
Run = Callable[[httpx.AsyncClient, Stack, dict[str, object]], Awaitable[RunResult]]


@pytest.fixture(scope="module")
async def gateway(module_stack_factory) -> Stack:
    return await module_stack_factory(workers=1, env=FAST)


@pytest.fixture(scope="module")
async def conflict_gateway(module_stack_factory) -> Stack:
    return await module_stack_factory(workers=1, env={**FAST, "IN_PROGRESS_ANSWER": "conflict"})


async def http_action(client: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> RunResult:
    action = HttpAction(client, headers={"x-functions-key": "flow-key"}, time_scale=SCALE)
    return await action.run(create_url(stack.gateway), body)


async def http_action_async(client: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> RunResult:
    """A flow author who added `Prefer: respond-async`: the action follows 202 + Location."""
    headers = {"x-functions-key": "flow-key", "Prefer": "respond-async"}
    return await HttpAction(client, headers=headers, time_scale=SCALE).run(create_url(stack.gateway), body)


async def connector(client: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> RunResult:
    action = ConnectorAction(client, Connection(stack.gateway), time_scale=SCALE)
    return await action.run("CreateOrGetMeeting", {"userId": ORGANIZER, "body": body})


async def sdk(client: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> RunResult:
    return await graph_sdk.run(stack.gateway, ORGANIZER, body, headers={"x-functions-key": "app-key"})


async def webhook(client: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> RunResult:
    sender = WebhookSender(client, time_scale=SCALE)
    return await sender.deliver(create_url(stack.gateway) + "?code=partner-key", body)


CLIENTS: dict[str, Run] = {
    "power-automate-http-action": http_action,
    "power-automate-http-action-respond-async": http_action_async,
    "custom-connector": connector,
    "msgraph-sdk": sdk,
    "webhook-sender": webhook,
}


# Callers that send `Prefer: respond-async` get 202 + Location; the others get 503 + Retry-After.
ASKS_FOR_202 = {"power-automate-http-action-respond-async", "custom-connector"}


async def concurrent_runs(stack: Stack, run: Run, runs: int) -> tuple[list[RunResult], dict[str, object]]:
    await stack.graph_config(latency_ms=GRAPH_LATENCY_MS)
    body = body_for(subject="Concurrent runs")
    async with httpx.AsyncClient(timeout=30) as client:
        results = await asyncio.gather(*(run(client, stack, body) for _ in range(runs)))
    return list(results), await stack.graph_stats()


@pytest.mark.parametrize("runs", [2, 10])
@pytest.mark.parametrize("name", list(CLIENTS))
async def test_concurrent_runs_end_with_one_meeting(gateway: Stack, name: str, runs: int):
    results, stats = await concurrent_runs(gateway, CLIENTS[name], runs)
    assert all(result.ok for result in results), [(r.status, r.seen) for r in results]
    assert len({result.meeting_id for result in results}) == 1
    assert results[0].meeting_id
    assert stats["creates"] == 1
    # The runs did meet the in-progress answer: the test covers the retry or polling, not just the wait.
    in_progress = 202 if name in ASKS_FOR_202 else 503
    assert any(in_progress in result.seen for result in results), [r.seen for r in results]
    if name not in ASKS_FOR_202:  # the SDK would take a 202 body for the meeting (an onlineMeeting without id)
        assert not any(202 in result.seen for result in results)


@pytest.mark.parametrize("profile", list(PROFILES))
async def test_a_flow_finishes_by_itself_under_each_retry_profile(gateway: Stack, profile: str):
    # Power Automate's Default retry policy depends on the owner's plan (docs/POWER_AUTOMATE.md): Low retries
    # twice, minutes apart; Medium and High eight times from 7 s. Either way the duplicate ends with the meeting.
    async def run(client: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> RunResult:
        action = HttpAction(client, headers={"x-functions-key": "k"}, time_scale=SCALE, profile=PROFILES[profile])
        return await action.run(create_url(stack.gateway), body)

    results, stats = await concurrent_runs(gateway, run, 2)
    assert all(result.ok for result in results), [(r.status, r.seen) for r in results]
    assert len({result.meeting_id for result in results}) == 1
    assert stats["creates"] == 1
    assert any(503 in result.seen for result in results)  # one run did meet the in-progress answer and retried


@pytest.mark.parametrize("name", ["power-automate-http-action", "webhook-sender", "msgraph-sdk"])
async def test_control_409_is_not_retried_by_these_clients(conflict_gateway: Stack, name: str):
    # The IETF answer (IN_PROGRESS_ANSWER=conflict) fails a run: none of them retries a 409. (The webhook
    # sender even fails alone: its timeout retry is a duplicate of its own first, still running, delivery.)
    results, _ = await concurrent_runs(conflict_gateway, CLIENTS[name], 2)
    assert not all(result.ok for result in results)
    assert 409 in {result.status for result in results}
    await asyncio.sleep(GRAPH_LATENCY_MS / 1000)  # a failed run may return before the owner's Graph call ends
    assert (await conflict_gateway.graph_stats())["creates"] == 1
