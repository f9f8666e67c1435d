"""The replay index in-process: a remembered answer is served only while the engine would replay the same record."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.context import Outcome
from meetings_core.idempotency.engine import IdempotencyEngine
from meetings_core.idempotency.replays import RequestBytes
from tests.test_engine import CTX, ORGANIZER, Rig, call, rig

SENT = RequestBytes(CTX.caller, None, "v1.0", ORGANIZER, b'{"externalId": "order-4711"}')


async def remembered(r: Rig) -> Outcome:
    """Create the meeting, replay it through the engine, and remember that replay's answer for SENT."""
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    outcome = await r.engine.create_or_get(call(), CTX)
    assert outcome.status == 200
    assert outcome.replay_of is not None
    r.engine.replays.remember(SENT, outcome.replay_of, outcome)
    return outcome


async def test_a_remembered_answer_is_served_for_the_same_bytes_only():
    r = rig()
    outcome = await remembered(r)
    assert r.engine.replays.answer(SENT) is outcome
    for other in (
        SENT._replace(caller="hmac:other"),
        SENT._replace(scope="hmac:other"),
        SENT._replace(api_version="beta"),
        SENT._replace(organizer_id="2f35f2e6-9cab-44ad-8d5a-b74c14720000"),
        SENT._replace(body=SENT.body + b" "),
    ):
        assert r.engine.replays.answer(other) is None, other


async def test_never_served_once_the_record_expired():
    r = rig()
    outcome = await remembered(r)
    assert outcome.replay_of is not None
    assert outcome.replay_of.expires_at is not None
    r.clock.now = outcome.replay_of.expires_at - timedelta(microseconds=1)
    assert r.engine.replays.answer(SENT) is outcome  # just before its expiry
    r.clock.now = outcome.replay_of.expires_at
    assert r.engine.replays.answer(SENT) is None


async def test_never_served_after_the_meeting_was_stored_again_in_the_other_version():
    r = rig()
    await remembered(r)
    beta = await r.engine.create_or_get(call("beta"), CTX)  # takes the completed record over and asks Graph
    assert beta.replay_of is None
    assert len(r.graph.calls) == 2
    assert r.engine.replays.answer(SENT) is None


async def test_never_served_after_the_cache_let_the_record_go():
    r = rig()
    r.engine = IdempotencyEngine(
        r.store, r.graph, r.config, CompletedCache(10, ttl_seconds=0.05), clock=r.clock, sleep=r.clock.sleep
    )  # type: ignore[arg-type]
    outcome = await remembered(r)
    assert r.engine.replays.answer(SENT) is outcome
    await asyncio.sleep(0.06)  # the cache's TTL, on cachetools' own monotonic timer
    assert r.engine.replays.answer(SENT) is None


async def test_a_replay_read_from_the_store_is_remembered_like_a_cached_one():
    r = rig()
    assert (await r.engine.create_or_get(call(), CTX)).status == 201
    r.rebuild()  # another worker: its cache is empty, so the replay reads the record from the store
    r.store.operations.clear()
    outcome = await r.engine.create_or_get(call(), CTX)
    assert r.store.operations == ["insert-conflict", "get"]
    assert outcome.replay_of is not None
    r.engine.replays.remember(SENT, outcome.replay_of, outcome)
    assert r.engine.replays.answer(SENT) is outcome


async def test_with_the_cache_off_nothing_is_remembered():
    r = rig(cache_size=0)
    await remembered(r)
    assert r.engine.replays.answer(SENT) is None
