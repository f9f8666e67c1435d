"""What integration tests see of the running stack: URLs, emulator switches and stats, the table."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
from azure.data.tables.aio import TableClient

from devstack.stack import free_port, graph_bearer, tables_connection_string
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation
from meetings_core.idempotency.table_store import TableReservationStore

ORGANIZER = "1F35F2E6-9CAB-44AD-8D5A-B74C14720000"

# Short, proportionate times for gateways under test: Graph deadline 2 s, 3 s of grace for Graph to finish what
# the gateway gave up on, so a held key's lease ends 5 s after its unknown outcome.
SHORT_LEASE = {
    "GRAPH_DEADLINE_SECONDS": "2",
    "GRAPH_GRACE_SECONDS": "3",
    "RESERVATION_LEASE_SECONDS": "5",
    "DUPLICATE_WAIT_SECONDS": "8",
}


def create_url(base: str, version: str = "v1.0", organizer: str = ORGANIZER) -> str:
    return f"{base}/{version}/users/{organizer}/onlineMeetings/createOrGet"


def body_for(**overrides: Any) -> dict[str, Any]:
    """A valid createOrGet body with a fresh externalId."""
    return {
        "externalId": f"test-{uuid.uuid4()}",
        "startDateTime": "2026-03-01T09:00:00Z",
        "endDateTime": "2026-03-01T09:30:00Z",
        "subject": "Integration test",
        **overrides,
    }


@dataclass
class Stack:
    gateway: str
    gateway_pid: int
    graph: str
    identity: str
    identity_header: str
    tables: str
    tenant: str

    @property
    def dead_tables(self) -> str:
        """A connection string to a port where nothing listens."""
        return tables_connection_string(free_port())

    async def _call(self, method: str, url: str, payload: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.request(method, url, json=payload)
            response.raise_for_status()
            return response.json()

    async def graph_config(self, **switches: Any) -> Any:
        return await self._call("POST", f"{self.graph}/_emulator/config", switches)

    async def graph_stats(self) -> Any:
        return await self._call("GET", f"{self.graph}/_emulator/stats")

    async def identity_config(self, **switches: Any) -> Any:
        return await self._call("POST", f"{self.identity}/_emulator/config", switches)

    async def identity_stats(self) -> Any:
        return await self._call("GET", f"{self.identity}/_emulator/stats")

    async def identity_reset(self) -> None:
        await self._call("POST", f"{self.identity}/_emulator/reset")

    async def reset(self) -> None:
        await self._call("POST", f"{self.graph}/_emulator/reset")
        await self.identity_reset()

    async def graph_auth(self) -> dict[str, str]:
        """A managed-identity token for Graph from the identity emulator, to call the Graph emulator directly."""
        return await graph_bearer(self.identity, self.identity_header)

    async def issue_token(self, claims: dict[str, Any]) -> str:
        return str((await self._call("POST", f"{self.identity}/_emulator/tokens", claims))["access_token"])

    async def store_get(self, key: ReservationKey) -> Reservation | None:
        store = TableReservationStore(TableClient.from_connection_string(self.tables, "meetingreservations"))
        try:
            return await store.get(key)
        finally:
            await store.close()

    async def wait_for_record(self, key: ReservationKey) -> Reservation:
        for _ in range(500):
            record = await self.store_get(key)
            if record is not None:
                return record
            await asyncio.sleep(0.02)
        raise AssertionError("no reservation appeared")


def function_app_with(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[ModuleType]:
    """function_app.py imported afresh as the Functions worker loads it, with `env` set (for `yield from`)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from meetings_core.settings import get_settings

    sys.modules.pop("function_app", None)
    get_settings.cache_clear()
    yield importlib.import_module("function_app")
    sys.modules.pop("function_app", None)
    get_settings.cache_clear()
