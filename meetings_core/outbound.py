"""Settings of the outbound HTTP clients (Table Storage, Graph) that keep each request cheap."""

from __future__ import annotations

import urllib.request
from typing import Any

import httpx

from .graph.transport import AiohttpTransport

# httpx's defaults: at most 100 Graph calls at once, idle connections closed after 5 s.
GRAPH_LIMITS = httpx.Limits(max_connections=100, keepalive_expiry=5.0)
USER_AGENT = "meeting-gateway/0.1"


def azure_transport_options() -> dict[str, Any]:
    """azure-core's aiohttp transport options: trust the environment only when it sets a proxy.

    Trusting it makes aiohttp look up `.netrc` and the proxy variables in a worker thread on every
    request, two thread hops per Table operation; the gateway sends its own credentials, so only a
    proxy needs the environment.
    """
    return {"use_env_settings": bool(urllib.request.getproxies_environment())}


def graph_transport() -> AiohttpTransport:
    """The Graph client's transport: aiohttp's pool behind httpx's API (meetings_core/graph/transport.py says why)."""
    return AiohttpTransport(GRAPH_LIMITS)
