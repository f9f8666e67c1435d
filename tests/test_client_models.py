"""What each client does with each status the gateway can answer (the table in docs/POWER_AUTOMATE.md).

Unit level: the models against a transport that always gives one answer, counting the attempts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.clients import graph_sdk
from tests.clients.custom_connector import Connection, ConnectorAction
from tests.clients.power_automate_http import LOW, MEDIUM_HIGH, PROFILES, HttpAction, RetryProfile
from tests.clients.result import RunResult
from tests.clients.webhook_sender import WebhookSender

GATEWAY = "http://gw"
ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"
MEETING = {"id": "m1", "joinWebUrl": "https://teams.example/join"}
BODY = {"externalId": "x-1", "subject": "s"}
STATUSES = [200, 201, 400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504]


class Fixed:
    """Always the same answer; counts the createOrGet attempts and records the polls."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.attempts = 0
        self.polls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/operations/"):
            self.polls.append(request)
            return httpx.Response(201, json=MEETING)
        self.attempts += 1
        body: Any = MEETING if self.status < 300 else {"error": {"code": "X", "message": "m"}}
        if self.status == 202:
            body = {"status": "inProgress"}
        return httpx.Response(self.status, json=body, headers=self.headers)


async def http_action(
    answer: Fixed, extra: dict[str, str] | None = None, profile: RetryProfile = MEDIUM_HIGH
) -> RunResult:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        headers = {"x-functions-key": "k", **(extra or {})}
        action = HttpAction(client, headers=headers, time_scale=0.0001, profile=profile)
        return await action.run(f"{GATEWAY}/v1.0/users/u/x", BODY)


async def connector(answer: Fixed, profile: RetryProfile = MEDIUM_HIGH) -> RunResult:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        action = ConnectorAction(client, Connection(GATEWAY), time_scale=0.0001, profile=profile)
        return await action.run("CreateOrGetMeeting", {"userId": ORGANIZER, "body": BODY})


async def webhook(answer: Fixed) -> RunResult:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        return await WebhookSender(client, time_scale=0.001).deliver(f"{GATEWAY}/v1.0/users/u/x?code=k", BODY)


PA_RETRIED = {408, 429} | set(range(500, 600))


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
@pytest.mark.parametrize("status", STATUSES)
async def test_power_automate_retries_408_429_and_5xx_as_its_profile_says_and_nothing_else(
    status: int, profile: RetryProfile
):
    answer = Fixed(status, {"Retry-After": "1"})
    result = await http_action(answer, profile=profile)
    assert answer.attempts == (profile.retries + 1 if status in PA_RETRIED else 1)
    assert result.ok is (status < 300)


@pytest.mark.parametrize("profile", [LOW, MEDIUM_HIGH], ids=["low", "medium-high"])
@pytest.mark.parametrize("status", STATUSES)
async def test_the_connector_step_has_the_same_retry_policy(status: int, profile: RetryProfile):
    answer = Fixed(status, {"Retry-After": "1"})
    result = await connector(answer, profile)
    assert answer.attempts == (profile.retries + 1 if status in PA_RETRIED else 1)
    assert result.ok is (status < 300)


def test_profiles_are_the_documented_ones():
    # learn.microsoft.com/power-automate/limits-and-config: Low "up to two retries ... scale by 5 minutes up to
    # ... approximately 10 minutes"; Medium, High "up to eight retries ... scale by 7 seconds up to ...
    # approximately 15 minutes"; each wait at least 5 s ("Retry minimum delay").
    for profile, retries, first, last in ((LOW, 2, 300, 600), (MEDIUM_HIGH, 8, 7, 900)):
        assert profile.retries == retries
        waits = [profile.interval(n) for n in range(1, retries + 1)]
        assert first * 0.8 <= waits[0] <= first * 1.2
        # The last wait is the doubled scale with the exponential type's jitter (x0.8 to x1.2), capped at `last`.
        assert 0.8 * min(last, first * 2 ** (retries - 1)) <= waits[-1] <= last
        assert waits == sorted(waits)
        assert min(waits) >= 5


@pytest.mark.parametrize("status", STATUSES)
async def test_the_webhook_sender_retries_5xx_only(status: int):
    answer = Fixed(status)
    result = await webhook(answer)
    assert answer.attempts == (5 if status >= 500 else 1)
    assert result.ok is (status < 300)


async def test_a_202_is_polled_by_flows_and_taken_as_delivered_by_the_webhook_sender():
    accepted = {"Location": f"{GATEWAY}/operations/abc?caller=Zg&exp=1&sig=s", "Retry-After": "1"}
    plain, keyed = Fixed(202, accepted), Fixed(202, accepted)
    assert (await http_action(plain, {"Prefer": "respond-async"})).meeting_id == "m1"
    assert "x-functions-key" not in plain.polls[0].headers  # the HTTP action's headers stay on the first call
    assert (await connector(keyed)).meeting_id == "m1"
    assert keyed.polls[0].headers["x-functions-key"] == "local-development-key"  # polls go through the connection
    sent = await webhook(Fixed(202, accepted))
    assert sent.ok
    assert sent.meeting_id is None  # "delivered", but nothing came back to use


async def test_the_sdk_retries_429_503_504_three_times_honouring_retry_after():
    transports = {status: Fixed(status, {"Retry-After": "1"}) for status in (429, 503, 504, 400, 409, 422, 500, 502)}

    async def one(answer: Fixed) -> RunResult:
        return await graph_sdk.run(GATEWAY, ORGANIZER, BODY, transport=httpx.MockTransport(answer))

    results = dict(zip(transports, await asyncio.gather(*map(one, transports.values())), strict=True))
    for status, answer in transports.items():
        assert answer.attempts == (4 if status in {429, 503, 504} else 1), status
        assert not results[status].ok


async def test_the_sdk_takes_a_202_body_for_a_meeting_without_an_id():
    result = await graph_sdk.run(GATEWAY, ORGANIZER, BODY, transport=httpx.MockTransport(Fixed(202)))
    assert result.status == 202
    assert not result.ok  # no exception: a "meeting" whose id is None
