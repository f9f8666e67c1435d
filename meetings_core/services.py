"""The worker's long-lived clients, created once on first use and reused by every request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from azure.data.tables.aio import TableClient
from azure.identity.aio import ManagedIdentityCredential

from .auth.authenticator import Authenticator
from .auth.hmac_signature import HmacVerifier
from .graph.client import GraphClient
from .graph.token import TokenProvider
from .http.status_url import StatusUrlKey, StatusUrlSigner
from .idempotency.cache import CompletedCache
from .idempotency.engine import EngineConfig, IdempotencyEngine
from .idempotency.table_store import TableReservationStore
from .outbound import azure_transport_options, graph_transport
from .settings import Settings
from .telemetry.store import MeteredStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    credential: ManagedIdentityCredential
    graph_transport: httpx.AsyncBaseTransport
    tokens: TokenProvider
    store: TableReservationStore
    engine: IdempotencyEngine
    authenticator: Authenticator
    auth_http: httpx.AsyncClient
    status_urls: StatusUrlSigner
    status_key: StatusUrlKey

    async def close(self) -> None:
        """Close every client, even when one fails, then raise the first failure."""
        closing = (self.status_key.close(), self.store.close(), self.graph_transport.aclose(), self.auth_http.aclose())
        results = await asyncio.gather(*closing, self.credential.close(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def table_client(settings: Settings, credential: AsyncTokenCredential) -> TableClient:
    """Azurite by connection string locally; the account endpoint with the managed identity in Azure."""
    # Short socket timeouts and few retries, so a hung store is noticed in seconds; the store also
    # bounds each whole operation by STORE_TIMEOUT_SECONDS.
    budget = settings.store_timeout_seconds
    options: dict[str, Any] = {
        "connection_timeout": min(2.0, budget),
        "read_timeout": max(1.0, budget / 2),
        "retry_total": 2,
        "retry_backoff_factor": 0.2,
        "retry_backoff_max": 1,
        **azure_transport_options(),
    }
    if settings.tables_connection_string is not None:
        return TableClient.from_connection_string(
            settings.tables_connection_string.get_secret_value(), settings.table_name, **options
        )
    assert settings.tables_endpoint is not None
    return TableClient(settings.tables_endpoint, settings.table_name, credential=credential, **options)


def engine_config(settings: Settings) -> EngineConfig:
    """The engine's limits, from the settings."""
    return EngineConfig(
        lease=timedelta(seconds=settings.reservation_lease_seconds),
        duplicate_wait_seconds=settings.duplicate_wait_seconds,
        retention=timedelta(days=settings.retention_days),
        grace_seconds=settings.graph_grace_seconds,
        return_existing_on_mismatch=settings.on_payload_mismatch == "return-existing",
        in_progress_answer=settings.in_progress_answer,
        answer_seconds=settings.answer_limit_seconds,
        store_seconds=settings.store_timeout_seconds,
        graph_deadline_seconds=settings.graph_deadline_seconds,
    )


async def build_services(settings: Settings) -> Services:
    """Create every client for this worker (the table is created if missing, for Azurite)."""
    credential = ManagedIdentityCredential(client_id=settings.azure_client_id)
    transport = graph_transport()
    tokens = TokenProvider(credential, settings.graph_scope)
    graph = GraphClient(transport, settings.graph_base_url, tokens, deadline_seconds=settings.graph_deadline_seconds)
    store = TableReservationStore(table_client(settings, credential), settings.store_timeout_seconds)
    await store.create_table()
    engine = IdempotencyEngine(
        MeteredStore(store), graph, engine_config(settings), CompletedCache(settings.replay_cache_size)
    )
    auth_http = httpx.AsyncClient(timeout=5.0)
    status_key = _status_url_key(settings, credential)
    return Services(
        settings,
        credential,
        transport,
        tokens,
        store,
        engine,
        build_authenticator(settings, auth_http),
        auth_http,
        StatusUrlSigner(status_key, settings.status_url_ttl_seconds),
        status_key,
    )


def _status_url_key(settings: Settings, credential: AsyncTokenCredential) -> StatusUrlKey:
    if settings.status_url_key is not None:
        return StatusUrlKey(None, settings.status_url_key.get_secret_value().encode())
    return StatusUrlKey(table_client(settings, credential), timeout_seconds=settings.store_timeout_seconds)


def build_authenticator(settings: Settings, http: httpx.AsyncClient) -> Authenticator:
    """The verifiers for the modes CALLER_AUTH enables."""
    modes = settings.auth_modes
    entra = None
    if "entra" in modes:
        from .auth.entra import EntraVerifier, JwksCache  # PyJWT only in entra mode: not at every cold start

        assert settings.entra_tenant_id
        assert settings.entra_audience
        authority = settings.entra_authority
        jwks = JwksCache(http, f"{authority}/{settings.entra_tenant_id}/discovery/v2.0/keys")
        audiences = [a.strip() for a in settings.entra_audience.split(",") if a.strip()]
        entra = EntraVerifier(
            jwks,
            tenant_id=settings.entra_tenant_id,
            audiences=audiences,
            authority=authority,
            required_role=settings.entra_required_role,
        )
    hmac = None
    if "hmac" in modes:
        secrets = {name: value.get_secret_value() for name, value in (settings.partner_secrets or {}).items()}
        hmac = HmacVerifier(secrets, settings.hmac_tolerance_seconds)
    return Authenticator(function_keys="function-key" in modes, entra=entra, hmac=hmac)


class ServiceHolder:
    """Builds `Services` once per worker, on the first request (works with or without ASGI lifespan)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._services: Services | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def get(self) -> Services:
        if self._closed:  # after shutdown: never build a second set of clients that nobody closes
            raise RuntimeError("the gateway's services are closed")
        if self._services is None:
            async with self._lock:
                if self._services is None:
                    self._services = await build_services(self._settings)
        return self._services

    async def close(self) -> None:
        self._closed = True
        if self._services is not None:
            await self._services.close()
            self._services = None
