"""The request contract: every documented rule and every bad input gets a clear 4xx in Graph's envelope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from meetings_core.http.app import create_app
from meetings_core.settings import Settings

ORGANIZER = "1F35F2E6-9CAB-44AD-8D5A-B74C14720000"
URL = f"/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No backend is reachable: every request below must be refused before anything is stored.
    settings = Settings(
        tables_connection_string="UseDevelopmentStorage=true", max_body_bytes=2048, local_development=True
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c
    await app.state.services.close()


def assert_graph_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "innerError"}
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert "Traceback" not in response.text
    if code:
        assert error["code"] == code
    return dict(error)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "Field 'externalId' is required"),
        ({"externalId": "   "}, "must not be empty"),
        ({"externalId": "a\nb"}, "control characters"),
        ({"externalId": "x" * 513}, "externalId"),
        ({"externalId": "a", "endDateTime": "2026-01-01T10:00:00Z"}, "without startDateTime"),
        (
            {"externalId": "a", "startDateTime": "2026-01-01T10:00:00Z", "endDateTime": "2026-01-01T09:00:00Z"},
            "earlier than startDateTime",
        ),
        ({"externalId": "a", "startDateTime": "2026-01-01T10:00:00"}, "UTC offset or Z"),
        ({"externalId": "a", "startDateTime": 1767261600}, "ISO 8601"),
        ({"externalId": "a", "startDateTime": "1767261600"}, "ISO 8601"),  # pydantic alone reads a Unix time
        ({"externalId": "a", "startDateTime": "2026-01-01T10:00:00Z", "endDateTime": "1767261600.5"}, "ISO 8601"),
        # Valid dates whose UTC instant is outside years 1-9999: Python cannot convert them, Graph cannot store them.
        ({"externalId": "a", "startDateTime": "9999-12-31T23:59:59-14:00"}, "outside the years 0001 to 9999"),
        ({"externalId": "a", "startDateTime": "0001-01-01T00:00:00+14:00"}, "outside the years 0001 to 9999"),
        (
            {"externalId": "a", "startDateTime": "9999-12-31T20:00:00Z", "endDateTime": "9999-12-31T23:00:00-12:00"},
            "'endDateTime' is outside the years",
        ),
        ({"externalId": "a", "subjct": "typo"}, "Unknown field 'subjct'. Accepted fields there: chatInfo"),
        (
            {"externalId": "a", "participants": {"attendees": [{"idenity": {}}]}},
            "Unknown field 'participants.attendees[0].idenity'. Accepted fields there: identity, role, upn",
        ),
        ({"externalId": "a", "participants": {"attendees": [{"role": "boss"}]}}, "must be one of attendee"),
        ({"externalId": "a", "participants": {"producers": []}}, "only on the beta API"),
        ([{"externalId": "a"}], "must be a JSON object"),
    ],
)
async def test_invalid_bodies_get_400_naming_the_problem(client: httpx.AsyncClient, body: object, fragment: str):
    error = assert_graph_error(await client.post(URL, json=body), 400, "BadRequest")
    assert fragment in str(error["message"])


async def test_each_problem_is_listed_in_details(client: httpx.AsyncClient):
    body = {"externalId": "a", "subjct": 1, "chatInfo": {"threadID": "x"}}
    error = assert_graph_error(await client.post(URL, json=body), 400)
    targets = {d["target"] for d in error["details"]}  # type: ignore[attr-defined]
    assert targets == {"subjct", "chatInfo.threadID"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "fragment"),
    [
        (b"", "application/json", 400, "body is empty"),
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b'{"externalId": "a", "externalId": "b"}', "application/json", 400, "twice"),
        (b'{"externalId": "a", "\\ud800": 1, "\\ud800": 2}', "application/json", 400, "key '\\ud800' twice"),
        (b'{"externalId": "a", "subject": NaN}', "application/json", 400, "NaN"),
        (b"\xff\xfe", "application/json", 400, "UTF-8"),
        (b'{"externalId": "a", "@odata.type": 1e999}', "application/json", 400, "too large"),
        (b'{"externalId": "a"}', "text/plain", 415, "application/json"),
        (b'{"externalId": "a"}', "", 415, "application/json"),
        (json.dumps({"externalId": "a", "subject": "x" * 4000}).encode(), "application/json", 413, "larger"),
    ],
)
async def test_malformed_requests(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, fragment: str
):
    response = await client.post(URL, content=content, headers={"Content-Type": content_type})
    error = assert_graph_error(response, status)
    assert fragment in str(error["message"])


@pytest.mark.parametrize(
    "path",
    [
        "/v1.0/users/not-a-guid/onlineMeetings/createOrGet",
        "/v1.0/users/someone@contoso.com/onlineMeetings/createOrGet",
        "/v1.0/users/..%2F..%2Fme/onlineMeetings/createOrGet",
        "/v2.0/users/1f35f2e6-9cab-44ad-8d5a-b74c14720000/onlineMeetings/createOrGet",
        "/v1.0/users/1f35f2e6-9cab-44ad-8d5a-b74c14720000%3Fx=1/onlineMeetings/createOrGet",
    ],
)
async def test_bad_paths_never_reach_graph(client: httpx.AsyncClient, path: str):
    response = await client.post(path, json={"externalId": "a"})
    assert response.status_code in (400, 404)
    assert_graph_error(response, response.status_code)


async def test_charset_parameter_is_accepted_and_annotations_are_not_unknown_fields(client: httpx.AsyncClient):
    from meetings_core.validation import validate_call, validate_organizer_id

    body = {
        "@odata.type": "#microsoft.graph.onlineMeeting",
        "externalId": "a",
        "startDateTime": "2020-02-06T01:49:21.3524945+00:00",
        "participants": {
            "@odata.type": "#microsoft.graph.meetingParticipants",
            "attendees": [{"identity": {"user": {"id": "x", "@odata.type": "#microsoft.graph.identity"}}}],
        },
    }
    call = validate_call("v1.0", validate_organizer_id(ORGANIZER), body)
    assert call.organizer_id == ORGANIZER.lower()
    assert call.body is body  # forwarded as sent, annotations included, no defaults added
    # With charset the content type is right, so the request gets past validation to the backend.
    response = await client.post(
        URL, content=json.dumps(body).encode(), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code not in (400, 415)


async def test_security_headers_on_errors(client: httpx.AsyncClient):
    response = await client.post(URL, json={})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_route_is_graph_shaped_404(client: httpx.AsyncClient):
    assert_graph_error(await client.get("/nope"), 404, "NotFound")


@pytest.mark.parametrize(
    ("method", "path", "served"),
    [
        ("POST", URL + "/", "POST /{v1.0|beta}/users/{userId}/onlineMeetings/createOrGet"),
        ("POST", URL + "//", "POST /{v1.0|beta}/users/{userId}/onlineMeetings/createOrGet"),
        ("POST", "/beta/users/not-a-guid/onlineMeetings/createOrGet/", "POST /{v1.0|beta}/users/{userId}/"),
        ("GET", "/operations/abc/?caller=x&exp=1&sig=y", "GET /operations/{operationId}"),
        ("GET", "/health/", "GET /health"),
        ("GET", "/openapi.json/", "GET /openapi.json"),
    ],
)
async def test_a_trailing_slash_is_a_graph_shaped_404_naming_the_path_without_it(
    client: httpx.AsyncClient, method: str, path: str, served: str
):
    """Graph does not redirect, and a 307 would carry no envelope: the answer says which path to send instead."""
    response = await client.request(method, path, json={"externalId": "a"})
    error = assert_graph_error(response, 404, "NotFound")
    assert "location" not in response.headers
    assert "trailing '/'" in str(error["message"])
    assert served in str(error["message"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["client-request-id"]


async def test_an_unknown_path_is_the_generic_404_even_with_a_trailing_slash(client: httpx.AsyncClient):
    error = assert_graph_error(await client.get("/nope/"), 404, "NotFound")
    assert "trailing" not in str(error["message"])
    assert "POST /{v1.0|beta}/users/{userId}/onlineMeetings/createOrGet" in str(error["message"])


def test_every_route_has_the_spelling_a_404_names():
    from meetings_core.http.app import SERVED

    app = create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
    assert {route.path for route in app.routes} == set(SERVED)  # type: ignore[attr-defined]
