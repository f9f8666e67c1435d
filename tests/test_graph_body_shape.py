"""A 200/201 from Graph is the meeting only when its body is a JSON object: the reservation store reads back only
objects, so anything else stored as the meeting was replayed by the worker that cached it and was a 500 ("cannot be
read, an operator must remove it") everywhere else.

Found by the fresh-eyes review against the running stack (Graph emulator fault `{"status": 201, "body": "<html>"}`:
201 "<html>", then the same request in beta, or on another worker, 500); fixed in graph/client.py `_result`.
The engine's side (the key stays reserved) is in tests/test_graph_outcome_rules.py
(`test_an_odd_2xx_leaves_the_reservation_in_progress_not_completed`).
"""

from __future__ import annotations

import httpx
import pytest
import respx

from meetings_core.graph.errors import OutcomeUnknown
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
