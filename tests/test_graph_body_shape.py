"""A 200/201 from Graph is the meeting only when its body is a JSON object: the reservation store reads back only
objects, so anything else stored as the meeting was replayed by the worker that cached it and was a 500 ("cannot be
read, an operator must remove it") everywhere else.

Found by the fresh-eyes review against the running stack (Graph emulator fault `{"status": 201, "body": "<html>"}`:
201 "<html>", then the same request in beta, or on another worker, 500); fixed in graph/client.py `_result`.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx

from meetings_core.graph.errors import OutcomeUnknown
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine
from meetings_core.idempotency.records import State
from tests.memory_store import MemoryStore
from tests.rules_rig import CTX, call
from tests.test_graph_outcome_rules import MEETING, URL, client, send

NOT_OBJECTS = [b'"<html>proxy sign-in</html>"', b"[1, 2]", b"null", b"42"]


@respx.mock
@pytest.mark.parametrize("body", NOT_OBJECTS)
async def test_a_2xx_whose_body_is_json_but_no_object_is_no_meeting(body: bytes):
    respx.post(URL).mock(return_value=httpx.Response(201, content=body, headers={"Content-Type": "application/json"}))
    with pytest.raises(OutcomeUnknown):
        await send(client())


@respx.mock
async def test_control_a_2xx_with_a_json_object_is_the_meeting():
    respx.post(URL).mock(return_value=httpx.Response(201, json=MEETING))
    result = await send(client())
    assert result.status == 201  # type: ignore[attr-defined]


@respx.mock
@pytest.mark.parametrize("body", NOT_OBJECTS)
async def test_such_a_body_is_never_stored_as_the_meeting(body: bytes):
    """Through the engine: the key stays reserved (the next request asks Graph again), nothing completed."""
    respx.post("https://graph.test/v1.0/users/1f35f2e6-9cab-44ad-8d5a-b74c14720000/onlineMeetings/createOrGet").mock(
        return_value=httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    )
    store = MemoryStore()
    config = EngineConfig(lease=timedelta(seconds=45), duplicate_wait_seconds=50, retention=timedelta(days=1))
    engine = IdempotencyEngine(store, client(), config, CompletedCache(0))
    with pytest.raises(OutcomeUnknown):
        await engine.create_or_get(call(), CTX)
    (record,) = store.records.values()
    assert record.state is State.IN_PROGRESS
