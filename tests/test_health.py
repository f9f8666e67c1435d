"""Health checks run at most once per interval, whoever probes, and answer no exception type."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from meetings_core.http.health import HealthChecks


class _Counting:
    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            raise ConnectionRefusedError("table at 127.0.0.1:1 refused")


async def test_probes_share_one_check_per_interval_and_failures_are_only_named():
    ping, token = _Counting(fail=True), _Counting()
    settings = SimpleNamespace(auth_modes=frozenset({"function-key"}))
    services: Any = SimpleNamespace(
        store=SimpleNamespace(ping=ping), tokens=SimpleNamespace(get=token), settings=settings
    )
    checks = HealthChecks()
    reports = await asyncio.gather(*(checks.report(services) for _ in range(50)))
    assert ping.calls == token.calls == 1
    assert reports[0] == {"tableStorage": "failed", "tokenEndpoint": "ok"}
    assert all(report == reports[0] for report in reports)


async def test_in_entra_mode_the_tenants_signing_keys_are_a_check():
    keys = _Counting(fail=True)
    services: Any = SimpleNamespace(
        store=SimpleNamespace(ping=_Counting()),
        tokens=SimpleNamespace(get=_Counting()),
        settings=SimpleNamespace(auth_modes=frozenset({"entra"})),
        authenticator=SimpleNamespace(ready=keys),
    )
    assert await HealthChecks().report(services) == {
        "tableStorage": "ok",
        "tokenEndpoint": "ok",
        "signingKeys": "failed",
    }
    assert keys.calls == 1
