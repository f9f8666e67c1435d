"""Health checks of Table Storage and the token endpoint, shared by all probes for a few seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger("meetings_core.health")

# Probes (anonymous ones included) cost at most one table read and one token lookup per this interval.
CACHE_SECONDS = 5.0


class HealthChecks:
    """Runs the checks at most once per `CACHE_SECONDS`; failures are logged here, never answered in detail."""

    def __init__(self) -> None:
        self._report: dict[str, str] | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()

    async def report(self, services: Services) -> dict[str, str]:
        async with self._lock:
            if self._report is None or time.monotonic() - self._checked > CACHE_SECONDS:
                self._report = await _check(services)
                self._checked = time.monotonic()
            return dict(self._report)


async def _check(services: Services) -> dict[str, str]:
    checks = {"tableStorage": services.store.ping(), "tokenEndpoint": services.tokens.get()}
    if "entra" in services.settings.auth_modes:  # without the tenant's keys every caller would get a 503
        checks["signingKeys"] = services.authenticator.ready()
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout=5) for check in checks.values()), return_exceptions=True
    )
    report: dict[str, str] = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("health check %s failed: %s", name, type(result).__name__)
            report[name] = "failed"
        else:
            report[name] = "ok"
    return report
