"""One Graph token per worker: fetched once under a burst, refreshed before it expires."""

from __future__ import annotations

import asyncio
import time

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError

from ..errors import GatewayError, retry_after_header

# Refresh this long before expiry so a token never lapses during a Graph call.
_REFRESH_MARGIN_SECONDS = 300


class TokenProvider:
    """Single-flight cache over an async credential (the SDK's own cache fetches once per concurrent caller)."""

    def __init__(self, credential: AsyncTokenCredential, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A bearer token for Graph; raises `GatewayError(503)` if the identity endpoint fails."""
        token = self._token
        if token is not None and not self._stale(token):
            return token.token
        async with self._lock:
            if self._token is None or self._stale(self._token):
                self._token = await self._fetch()
            return self._token.token

    def _stale(self, token: AccessToken) -> bool:
        return token.expires_on - _REFRESH_MARGIN_SECONDS <= time.time()

    async def _fetch(self) -> AccessToken:
        try:
            return await self._credential.get_token(self._scope)
        except AzureError as exc:
            # The credential's message names the endpoint and cause, never the token itself.
            raise GatewayError(
                503,
                "ServiceUnavailable",
                "The gateway could not obtain its managed identity token for Graph "
                f"({type(exc).__name__}). Retry later; if this persists, check the Function's identity.",
                headers=retry_after_header(5),
            ) from exc
