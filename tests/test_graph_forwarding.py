"""Forwarding to Graph over real HTTP: the project's Graph and identity emulators, Azurite, gateway processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.stackutil import ORGANIZER, Stack, body_for, create_url

pytestmark = pytest.mark.integration


async def test_created_then_existing_passes_graph_status_and_body_through(stack: Stack):
    body = body_for(subject="Quarterly review")
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(create_url(stack.gateway), json=body)
        graph = await client.post(create_url(stack.graph), json=body, headers=await stack.graph_auth())
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    meeting = first.json()
    assert meeting["externalId"] == body["externalId"]
    assert meeting["subject"] == "Quarterly review"
    # Graph itself now answers 200 with the same meeting: the gateway's body was Graph's, unchanged.
    assert graph.status_code == 200
    assert graph.json() == meeting


async def test_beta_and_v1_are_forwarded_to_their_version(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        for version in ("beta", "v1.0"):
            response = await client.post(create_url(stack.gateway, version), json=body_for())
            assert response.status_code == 201, response.text
    stats = await stack.graph_stats()
    assert stats["calls_by_version"]["beta"] == 1
    assert stats["calls_by_version"]["v1.0"] == 1


async def test_client_request_id_is_sent_to_graph_and_returned(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            create_url(stack.gateway), json=body_for(), headers={"client-request-id": "flow-run-42"}
        )
    assert response.status_code == 201
    assert response.headers["client-request-id"] == "flow-run-42"
    assert response.headers["graph-request-id"]
    stats = await stack.graph_stats()
    assert stats["last_request"]["headers"]["client-request-id"] == "flow-run-42"


async def test_retries_honour_fractional_retry_after(stack: Stack):
    await stack.graph_config(faults=[{"status": 429, "retry_after": "0.6", "count": 2}])
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body_for())
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert elapsed >= 1.2  # waited both Retry-After delays
    assert (await stack.graph_stats())["calls"] == 3


async def test_retries_after_503_without_retry_after(stack: Stack):
    await stack.graph_config(faults=[{"status": 503, "retry_after": None, "count": 1}])
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body_for())
    assert response.status_code == 201, response.text
    assert (await stack.graph_stats())["calls"] == 2


async def test_retry_after_beyond_the_deadline_answers_503_at_once_and_releases_the_key(stack: Stack):
    await stack.graph_config(faults=[{"status": 429, "retry_after": "200", "count": 1}])
    body = body_for()
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body)
        assert time.monotonic() - started < 5
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 200
        assert response.json()["error"]["code"] == "ServiceUnavailable"
        # Released: the same request goes through once Graph recovers.
        again = await client.post(create_url(stack.gateway), json=body)
    assert again.status_code == 201, again.text


async def test_graph_403_and_404_pass_through_with_a_hint(stack: Stack):
    denied, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    await stack.graph_config(deny_organizers=[denied], unknown_organizers=[unknown])
    async with httpx.AsyncClient(timeout=30) as client:
        forbidden = await client.post(create_url(stack.gateway, organizer=denied), json=body_for())
        missing = await client.post(create_url(stack.gateway, organizer=unknown), json=body_for())
    assert forbidden.status_code == 403
    assert "Teams application access policy" in forbidden.json()["error"]["message"]
    assert "docs/DEPLOY.md, section 'Teams application access policy'" in forbidden.json()["error"]["message"]
    assert missing.status_code == 404
    assert "Teams license" in missing.json()["error"]["message"]
    for answer in (forbidden, missing):  # README step 4: one call traced end to end, Graph's 4xx too
        inner = answer.json()["error"]["innerError"]
        assert answer.headers["graph-request-id"] == inner["graph-request-id"] != answer.headers["request-id"]
        assert inner["request-id"] == answer.headers["request-id"]
        assert inner["graph-date"]


async def test_token_is_fetched_once_for_a_burst(stack_factory):
    stack = await stack_factory(workers=1)
    await stack.identity_reset()
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(client.post(create_url(stack.gateway), json=body_for()) for _ in range(20)))
    assert [a.status_code for a in answers] == [201] * 20
    assert (await stack.identity_stats())["token_requests"] == 1


async def test_graph_emulator_refuses_missing_and_wrong_tokens(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as client:
        missing = await client.post(create_url(stack.graph), json=body_for())
        wrong = await client.post(
            create_url(stack.graph), json=body_for(), headers={"Authorization": "Bearer not.a.token"}
        )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_msgraph_sdk_typed_client_works_against_the_gateway(stack: Stack):
    from kiota_abstractions.authentication import AnonymousAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.meeting_participant_info import MeetingParticipantInfo
    from msgraph.generated.models.meeting_participants import MeetingParticipants
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.online_meeting_role import OnlineMeetingRole
    from msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_post_request_body import (
        CreateOrGetPostRequestBody,
    )

    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider())
    adapter.base_url = f"{stack.gateway}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    meetings = client.users.by_user_id(ORGANIZER).online_meetings
    body = CreateOrGetPostRequestBody(
        external_id=f"sdk-{uuid.uuid4()}",
        subject="From the SDK",
        start_date_time=datetime(2026, 3, 1, 9, tzinfo=UTC),
        end_date_time=datetime(2026, 3, 1, 10, tzinfo=UTC),
        participants=MeetingParticipants(
            attendees=[MeetingParticipantInfo(upn="a@contoso.com", role=OnlineMeetingRole.Presenter)]
        ),
    )
    meeting = await meetings.create_or_get.post(body)
    assert meeting is not None
    assert meeting.external_id == body.external_id
    assert meeting.subject == "From the SDK"
    assert meeting.join_web_url

    bad = CreateOrGetPostRequestBody(
        external_id="x",
        start_date_time=datetime(2026, 3, 1, 10, tzinfo=UTC),
        end_date_time=datetime(2026, 3, 1, 9, tzinfo=UTC),
    )
    with pytest.raises(ODataError) as raised:
        await meetings.create_or_get.post(bad)
    assert raised.value.response_status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "BadRequest"
    assert "earlier than startDateTime" in (raised.value.error.message or "")


async def test_msgraph_sdk_reads_graphs_request_id_from_a_graph_403(stack: Stack):
    """Graph's ids sit in innerError beside the gateway's, where the SDK's ODataError keeps unknown fields."""
    from kiota_abstractions.authentication import AnonymousAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_post_request_body import (
        CreateOrGetPostRequestBody,
    )

    denied = str(uuid.uuid4())
    await stack.graph_config(deny_organizers=[denied])
    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider())
    adapter.base_url = f"{stack.gateway}/v1.0"
    body = CreateOrGetPostRequestBody(external_id=f"sdk-{uuid.uuid4()}", subject="Denied")
    meetings = GraphServiceClient(request_adapter=adapter).users.by_user_id(denied).online_meetings
    with pytest.raises(ODataError) as raised:
        await meetings.create_or_get.post(body)
    assert raised.value.response_status_code == 403
    headers = raised.value.response_headers or {}
    assert raised.value.error is not None
    inner = raised.value.error.inner_error
    assert inner is not None
    graph_request_id = str(inner.additional_data["graph-request-id"])  # kiota reads a GUID-shaped value as a UUID
    assert graph_request_id in str(headers.get("graph-request-id"))
    assert graph_request_id != inner.request_id


async def test_health_reports_each_part(stack: Stack, stack_factory):
    async with httpx.AsyncClient(timeout=30) as client:
        healthy = await client.get(f"{stack.gateway}/health")
        assert healthy.status_code == 200
        assert healthy.json()["checks"] == {"tableStorage": "ok", "tokenEndpoint": "ok"}
        broken = await stack_factory(workers=1, env={"TABLES_CONNECTION_STRING": stack.dead_tables})
        unhealthy = await client.get(f"{broken.gateway}/health")
    assert unhealthy.status_code == 503
    assert unhealthy.json()["checks"]["tableStorage"].startswith("failed")
    assert unhealthy.json()["checks"]["tokenEndpoint"] == "ok"


async def test_a_hanging_token_endpoint_is_cut_at_the_deadline(stack_factory):
    # The attempt's bound covers the token too, so an owner never calls Graph after its lease ends.
    env = {"GRAPH_DEADLINE_SECONDS": "1", "GRAPH_GRACE_SECONDS": "5", "RESERVATION_LEASE_SECONDS": "6"}
    stack = await stack_factory(workers=1, env=env)
    await stack.identity_config(latency_ms=4000)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body_for())
    elapsed = time.monotonic() - started
    await stack.identity_config(latency_ms=0)
    # No request left for Graph: a definite failure, the key is released at once.
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert elapsed < 3
    await asyncio.sleep(3.5)  # the emulator would now answer the abandoned token request
    assert (await stack.graph_stats())["calls"] == 0


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"startDateTime": None, "endDateTime": "2026-03-01T10:00:00Z"}, "without startDateTime"),
        ({"endDateTime": "2026-03-01T08:00:00Z"}, "earlier than startDateTime"),
        ({"startDateTime": "2026-03-01T09:00:00"}, "UTC offset or Z"),
        ({"subjekt": "x"}, "Unknown field 'subjekt'"),
    ],
)
async def test_documented_rules_over_http_never_reach_graph(stack: Stack, change: dict[str, object], fragment: str):
    body = {k: v for k, v in {**body_for(), **change}.items() if v is not None}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert (await stack.graph_stats())["calls"] == 0


async def test_graph_defaults_apply_to_what_the_caller_left_out(stack: Stack):
    body = {"externalId": f"defaults-{uuid.uuid4()}", "startDateTime": "2026-03-01T09:00:00Z"}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(create_url(stack.gateway), json=body)
    assert response.status_code == 201
    assert response.json()["endDateTime"] == "2026-03-01T10:00:00Z"
    assert (await stack.graph_stats())["last_request"]["body"] == body  # forwarded as sent, no defaults added
