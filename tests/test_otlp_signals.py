"""End to end over OTLP: a gateway process exports to an in-test receiver, and each hard state shows up.

A new key, a replay, a duplicate wait, a throttled Graph, unknown outcomes that hold their key, and a
takeover by a duplicate and by a status poll: each must arrive as the signal docs/OPERATIONS.md draws,
with the attributes its chart and alert filter on, and no label may carry an externalId or organizer id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import httpx
import pytest

from meetings_core.telemetry import names
from tests.otlp_receiver import OtlpReceiver
from tests.stackutil import ORGANIZER, SHORT_LEASE, Stack, body_for, create_url

pytestmark = pytest.mark.integration

FAST = {
    **SHORT_LEASE,
    "OTEL_METRIC_EXPORT_INTERVAL": "200",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_SERVICE_NAME": "gateway-under-test",
}
MS = "http.server.request.duration"


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    await otlp.start()
    yield otlp
    await otlp.stop()


async def drive(stack: Stack) -> dict[str, str]:
    """Every state, in one gateway; returns the externalIds used (none may become a label)."""
    ids = {name: f"otlp-{name}-{uuid.uuid4()}" for name in ("new", "dup", "throttled", "held", "polled")}
    url = create_url(stack.gateway)
    async with httpx.AsyncClient(timeout=30) as client:
        new = body_for(externalId=ids["new"])
        assert (await client.post(url, json=new)).status_code == 201
        replay = await client.post(url, json=new)
        assert (replay.status_code, replay.headers.get("idempotent-replayed")) == (200, "true")

        await stack.graph_config(latency_ms=1200, slow_calls=1)
        dup = body_for(externalId=ids["dup"])
        owner = asyncio.create_task(client.post(url, json=dup))
        await asyncio.sleep(0.4)  # the owner holds the key and waits on Graph
        duplicate = await client.post(url, json=dup)
        assert ((await owner).status_code, duplicate.status_code) == (201, 200)

        await stack.graph_config(faults=[{"status": 429, "retry_after": 0, "count": 1}])
        assert (await client.post(url, json=body_for(externalId=ids["throttled"]))).status_code == 201

        await stack.graph_config(drop_connections=2)  # both sent, neither answered: unknown outcomes
        held, polled = body_for(externalId=ids["held"]), body_for(externalId=ids["polled"])
        assert (await client.post(url, json=held)).status_code == 503
        assert (await client.post(url, json=polled)).status_code == 503
        accepted = await client.post(url, json=polled, headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202
        await asyncio.sleep(7)  # both leases end, by storage's clock (its Date header has whole seconds)
        assert (await client.post(url, json=held)).status_code == 201  # a duplicate takes over
        poll = await client.get(urljoin(stack.gateway, accepted.headers["location"]))
        assert poll.status_code == 201, poll.text  # the status poll takes over and finishes the call
    return ids


async def test_each_state_arrives_over_otlp_with_its_attributes(stack_factory, receiver: OtlpReceiver):
    stack = await stack_factory(workers=1, env={**FAST, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    ids = await drive(stack)
    r = receiver
    caller = {"gateway__caller": "function-key"}
    await r.until(lambda: r.total("gateway.requests", gateway__path="takeover_poll") >= 1)
    await r.until(lambda: any(name == "gateway operation_status" for name, _ in r.spans))

    # Answers by outcome, path and caller.
    assert r.total("gateway.requests", gateway__outcome="created", gateway__path="owner", **caller) == 3
    assert r.total("gateway.requests", gateway__outcome="replayed", gateway__path="replay", **caller) == 1
    assert r.total("gateway.requests", gateway__outcome="replayed", gateway__path="waited", **caller) == 1
    assert r.total("gateway.requests", gateway__outcome="unknown_outcome", gateway__path="owner") == 2
    assert r.total("gateway.requests", gateway__outcome="accepted", http__response__status_code=202) == 1
    assert r.total("gateway.requests", gateway__outcome="created", gateway__path="takeover_duplicate") == 1
    assert r.total("gateway.requests", gateway__outcome="created", gateway__path="takeover_poll") == 1
    assert r.total("gateway.requests", gateway__api_version="status") == 1
    # Semantic conventions' server duration, by route template.
    create = "/{version}/users/{user_id}/onlineMeetings/createOrGet"
    assert r.total(MS, http__route=create, http__request__method="POST", http__response__status_code=201) == 4
    assert r.total(MS, http__route=create, http__response__status_code=503, error__type="503") == 2
    assert r.total(MS, http__route="/operations/{operation_id}", http__request__method="GET") == 1
    # Duplicate waits, by how they ended; takeovers, by whom; keys held after an unknown outcome.
    assert r.total("gateway.duplicate.wait.duration", gateway__wait__result="meeting") == 1
    assert r.total("gateway.lease.takeovers", gateway__takeover__by="duplicate") == 1
    assert r.total("gateway.lease.takeovers", gateway__takeover__by="status_poll") == 1
    assert r.total("gateway.keys.held", gateway__api_version="v1.0") == 2
    # Graph: each call's result class, each attempt (the 429 is one), per semantic conventions.
    graph = "gateway.graph.call.duration"
    assert r.total(graph, gateway__graph__result="created", gateway__api_version="v1.0") == 5
    assert r.total(graph, gateway__graph__result="unknown_outcome") == 2
    attempts = "http.client.request.duration"
    assert r.total(attempts, http__response__status_code=429, error__type="429", server__address="127.0.0.1") == 1
    assert r.total(attempts, http__response__status_code=201, http__request__method="POST") == 5
    assert r.total(attempts, error__type="RemoteProtocolError") + r.total(attempts, error__type="ReadError") == 2
    # The store, per semantic conventions, with the lost races named.
    store = "db.client.operation.duration"
    assert r.total(store, db__system__name="azure.tables", db__operation__name="insert", error__type=None) == 5
    assert r.total(store, db__operation__name="insert", error__type="ReservationExists") == 3
    assert r.total(store, db__operation__name="replace") >= 7
    # Every signal the catalogue declares arrives (the stuck-key gauges come from the purge timer: test_stats.py).
    timer_only = {names.STUCK_KEYS.name, names.STUCK_OLDEST_AGE.name}
    assert {p.metric for p in r.latest.values()} == {s.name for s in names.METRICS} - timer_only
    # Units and kinds as declared; spans by name; the resource names the service.
    for point in r.latest.values():
        signal = next(s for s in names.METRICS if s.name == point.metric)
        assert (point.unit, point.kind) == (signal.unit, {"counter": "sum"}.get(signal.kind, signal.kind))
        assert set(point.attributes) <= set(signal.attributes), point
    assert {name for name, _ in r.spans} >= set(names.SPANS)
    assert {"service.name": "gateway-under-test"}.items() <= r.resources[-1].items()
    # Bounded labels: no externalId, no organizer id, anywhere.
    values = {str(v).lower() for point in r.latest.values() for v in point.attributes.values()}
    for secret in [ORGANIZER.lower(), *ids.values()]:
        assert not any(secret.lower() in value for value in values)
