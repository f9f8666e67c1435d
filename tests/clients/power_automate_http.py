"""A model of the Power Automate HTTP action with its default settings (a model: it is not Power Automate).

Documented behaviour this model follows:
- What is retried: https://learn.microsoft.com/azure/logic-apps/logic-apps-exception-handling
  "If the trigger or action's original request times out or fails, resulting in a 408, 429, or 5xx response",
  the request is sent again. Nothing else is retried: a 409 or any other 4xx fails the action at once. The docs
  do not say the Default policy honours Retry-After on a retried answer, so this model does not.
- How often, by the flow owner's performance profile: https://learn.microsoft.com/power-automate/limits-and-config
  (Retry policy > Default retry policy; MicrosoftDocs/power-automate-docs articles/limits-and-config.md at
  aae35436a3092b836d14c1f87ba777ad25ba46a2):
  Low: "This policy sends up to two retries at exponentially increasing intervals, which scale by 5 minutes up
  to an interval of approximately 10 minutes for the last retry."
  Medium, High: "This policy sends up to eight retries at exponentially increasing intervals, which scale by
  7 seconds up to an interval of approximately 15 minutes for the last retry."
  Azure Logic Apps' own Default ("up to 4 retries", "scale by 7.5 seconds but are capped between 5 and 45
  seconds") is kept as a third profile: it is what Logic Apps, not Power Automate, documents.
- Asynchronous pattern, on by default: https://learn.microsoft.com/azure/connectors/connectors-native-http
  (Settings > "Asynchronous pattern"): a 202 Accepted with a Location header is followed by GET requests to
  Location until an answer other than 202; a Retry-After header sets the wait between polls (20 s otherwise,
  https://github.com/logicappsio/LogicAppsAsyncResponseSample). The poll is a new request to the Location URL:
  the action's own headers (an x-functions-key among them) and the original URL's query (`?code=`) are not
  carried, so this model polls with no credential at all.
- Each outbound request may take at most 120 s:
  https://learn.microsoft.com/azure/logic-apps/logic-apps-limits-and-config (outbound request timeout, multitenant).

`time_scale` shrinks every documented interval and the timeout alike, so a test keeps their proportions.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from .result import RunResult

RETRIED_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
MIN_INTERVAL_SECONDS = 5.0  # "Retry minimum delay: 5 seconds" (the same page, Retry setting limits)
DEFAULT_POLL_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class RetryProfile:
    """One Default retry policy: up to `retries` retries, waits growing from `scale` (doubling) to `last`."""

    name: str
    retries: int
    scale_seconds: float
    last_seconds: float

    def interval(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based), in seconds, with the exponential type's jitter."""
        grown = self.scale_seconds * 2 ** (retry - 1) * random.uniform(0.8, 1.2)
        return min(self.last_seconds, max(MIN_INTERVAL_SECONDS, grown))


# 5 min, then 10 min; 7 s doubling to 7 x 2^7 = 896 s (about 15 min) at the eighth; 7.5 s doubling, capped at 45 s.
LOW = RetryProfile("low", retries=2, scale_seconds=300.0, last_seconds=600.0)
MEDIUM_HIGH = RetryProfile("medium-high", retries=8, scale_seconds=7.0, last_seconds=900.0)
LOGIC_APPS = RetryProfile("logic-apps", retries=4, scale_seconds=7.5, last_seconds=45.0)
PROFILES = {profile.name: profile for profile in (LOW, MEDIUM_HIGH, LOGIC_APPS)}
# Custom connectors and the HTTP action are premium: a per-user (Medium) or per-flow (High) owner is the usual case.
DEFAULT_PROFILE = MEDIUM_HIGH


def poll_interval(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else DEFAULT_POLL_SECONDS


@dataclass
class FlowRuntime:
    """What Power Automate does around every action call: the retry policy and the asynchronous pattern."""

    client: httpx.AsyncClient
    time_scale: float = 1.0
    profile: RetryProfile = DEFAULT_PROFILE
    seen: list[int] = field(default_factory=list)

    async def send(self, method: str, url: str, *, headers: dict[str, str], json: Any = None) -> httpx.Response:
        """One request under the Default retry policy: retried on 408, 429, 5xx and timeouts only."""
        last = self.profile.retries
        for retry in range(last + 1):
            try:
                response = await self.client.request(
                    method, url, headers=headers, json=json, timeout=REQUEST_TIMEOUT_SECONDS * self.time_scale
                )
            except (httpx.TimeoutException, httpx.TransportError):
                if retry == last:
                    raise
            else:
                self.seen.append(response.status_code)
                if response.status_code not in RETRIED_STATUSES or retry == last:
                    return response
            await asyncio.sleep(self.profile.interval(retry + 1) * self.time_scale)
        raise AssertionError("unreachable")

    async def follow(self, response: httpx.Response, poll_headers: dict[str, str]) -> httpx.Response:
        """The asynchronous pattern: poll Location while the answer is 202 with a Location."""
        while response.status_code == 202 and "location" in response.headers:
            await asyncio.sleep(poll_interval(response) * self.time_scale)
            response = await self.send("GET", response.headers["location"], headers=poll_headers)
        return response


@dataclass
class HttpAction:
    """The HTTP action: method, URI, headers and body as the flow author typed them; default settings."""

    client: httpx.AsyncClient
    headers: dict[str, str] = field(default_factory=dict)
    time_scale: float = 1.0
    profile: RetryProfile = DEFAULT_PROFILE

    async def run(self, url: str, body: Any) -> RunResult:
        runtime = FlowRuntime(self.client, self.time_scale, self.profile)
        headers = {"Content-Type": "application/json", **self.headers}
        try:
            response = await runtime.send("POST", url, headers=headers, json=body)
            response = await runtime.follow(response, poll_headers={})
        except httpx.HTTPError:
            return RunResult(False, None, None, runtime.seen)
        return RunResult(200 <= response.status_code < 300, response.status_code, _json(response), runtime.seen)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
