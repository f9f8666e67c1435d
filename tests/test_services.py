"""The worker's long-lived clients: closed together, never rebuilt after shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from meetings_core.services import ServiceHolder, Services
from meetings_core.settings import Settings


class Closable:
    def __init__(self, fail: bool = False) -> None:
        self.closed = False
        self.fail = fail

    async def close(self) -> None:
        self.closed = True
        if self.fail:
            raise OSError("socket already gone")

    aclose = close


async def test_every_client_is_closed_even_when_one_fails():
    names = ("credential", "graph_transport", "store", "auth_http", "status_key")
    parts: dict[str, Any] = {name: Closable(fail=name == "store") for name in names}
    services = Services(tokens=None, engine=None, authenticator=None, status_urls=None, settings=None, **parts)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="socket already gone"):
        await services.close()
    assert all(part.closed for part in parts.values())


async def test_a_closed_holder_refuses_to_build_clients_again():
    holder = ServiceHolder(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
    await holder.close()
    with pytest.raises(RuntimeError, match="closed"):
        await holder.get()
