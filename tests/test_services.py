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


async def test_the_status_url_keys_table_reads_are_bounded_by_the_store_timeout():
    """STORE_TIMEOUT_SECONDS bounds every Table Storage operation, the status URL key's load included."""
    from azure.identity.aio import ManagedIdentityCredential

    from meetings_core.services import _status_url_key

    settings = Settings(tables_connection_string="UseDevelopmentStorage=true", store_timeout_seconds=2.5)
    async with ManagedIdentityCredential() as credential:
        key = _status_url_key(settings, credential)
        assert key._timeout == 2.5
        await key.close()
