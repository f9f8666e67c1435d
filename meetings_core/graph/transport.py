"""An httpx transport over aiohttp's connection pool, with httpx's errors kept exact for the Graph client.

httpcore's pool re-checks every pooled connection (a `poll` per socket) on each request and on each
release, so under 32 concurrent Graph calls one POST cost more CPU than the two Table writes around it
(docs/BENCHMARKS.md). aiohttp, already installed for azure-core, learns of closed connections from the
event loop instead. The Graph client keeps httpx's API; this module only carries the bytes.

The mapping keeps the one distinction the gateway relies on (docs/IDEMPOTENCY.md): `ConnectError` and
`ConnectTimeout` only when no byte of the request can have left; everything after that is a read,
write or protocol error, an outcome the gateway never retries blindly.
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # imported on first use: a cold start does not pay for aiohttp before its first Graph call
    import aiohttp


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one `aiohttp.ClientSession`, created on first use inside the loop."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._closed:
            raise RuntimeError("the Graph transport is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 0,
                ssl=self._ssl,
            )
            # Trusting the environment costs two thread hops per request (.netrc, proxy variables):
            # only worth it when a proxy is set, as for the Table client (meetings_core/outbound.py).
            trust_env = bool(urllib.request.getproxies_environment())
            self._session = aiohttp.ClientSession(connector=connector, trust_env=trust_env, auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp
        from multidict import CIMultiDict

        timeout = request.extensions.get("timeout", {})
        try:
            async with self._client().request(
                request.method,
                str(request.url),
                headers=CIMultiDict(request.headers.multi_items()),
                data=await request.aread(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"), sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            ) as answer:
                body = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:  # no connection yet (pool or connect): nothing was sent
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:  # the connection could not be made: nothing was sent
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.SocketTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:  # dropped, reset or garbled after the request went out
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}", request=request) from exc
        # Still encoded (auto_decompress off): httpx decodes it by its Content-Encoding, as with its own transport.
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
