"""A partner's webhook sender, as issue 13 defines it: it retries 5xx answers and timeouts, nothing else.

The schedule is a documented one (Trackunit's webhook retry schedule, github.com/Trackunit/developer-hub
guides/webhooks/webhooks-retry-schedule.md: immediately, then 5 s, 5 min, 30 min, 2 h, ...): any 2xx is a
delivery; a 5xx, a timeout or a dropped connection is retried; every other answer (400, 401, 404, 409, 422)
ends the delivery as failed, as senders that treat 4xx as non-recoverable do. It does not follow 202
Location links or read Retry-After. The credential is part of the webhook URL (the Functions host's
`?code=` function key), as partner systems configure one URL.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx

from .result import RunResult

SCHEDULE_SECONDS = (5.0, 300.0, 1800.0, 7200.0)  # the first retries: 5 s, 5 min, 30 min, 2 h
TIMEOUT_SECONDS = 15.0


@dataclass
class WebhookSender:
    client: httpx.AsyncClient
    time_scale: float = 1.0
    # Long waits make the sender's later retries moot for a test; keep at most this many seconds (scaled).
    longest_wait_seconds: float = 10.0

    async def deliver(self, url: str, event: Any) -> RunResult:
        seen: list[int] = []
        for attempt in range(len(SCHEDULE_SECONDS) + 1):
            try:
                response = await self.client.post(url, json=event, timeout=TIMEOUT_SECONDS * self.time_scale)
            except (httpx.TimeoutException, httpx.TransportError):
                pass
            else:
                seen.append(response.status_code)
                if response.status_code < 500:
                    ok = 200 <= response.status_code < 300
                    return RunResult(ok, response.status_code, _json(response), seen)
            if attempt < len(SCHEDULE_SECONDS):
                wait = min(SCHEDULE_SECONDS[attempt], self.longest_wait_seconds) * random.uniform(0.9, 1.1)
                await asyncio.sleep(wait * self.time_scale)
        return RunResult(False, seen[-1] if seen else None, None, seen)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
