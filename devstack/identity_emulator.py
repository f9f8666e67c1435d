"""Managed-identity endpoint emulator (App Service protocol, api-version 2019-08-01), plus a tenant JWKS.

azure-identity's real `ManagedIdentityCredential` reaches it through `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`.
Tokens are RS256 JWTs signed with a key made at start; the Graph emulator checks them against the JWKS.

    python -m devstack.identity_emulator --port 7072 --identity-header SECRET
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_TENANT = "72f988bf-0000-4000-8000-000000000001"
DEFAULT_CLIENT_ID = "5b1c0a2e-0000-4000-8000-00000000c11e"
GRAPH_ROLE = "OnlineMeetings.ReadWrite.All"


class _Signer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


class IdentityEmulator:
    """State and handlers; `app()` builds the aiohttp application."""

    def __init__(self, identity_header: str, tenant: str, token_lifetime: int) -> None:
        self.identity_header = identity_header
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.signer = _Signer()
        self.stranger = _Signer()  # signs tokens with a key the JWKS does not publish
        self.token_requests = 0
        self.latency_ms = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/msi/token", self.msi_token)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self.jwks)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration)
        app.router.add_post("/_emulator/tokens", self.issue)
        app.router.add_get("/_emulator/stats", self.stats)
        app.router.add_post("/_emulator/config", self.config)
        app.router.add_post("/_emulator/reset", self.reset)
        return app

    async def msi_token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return _error(401, "invalid_request", "X-IDENTITY-HEADER is missing or wrong")
        if request.query.get("api-version") != "2019-08-01":
            return _error(400, "invalid_request", "api-version must be 2019-08-01")
        resource = request.query.get("resource", "")
        if not resource:
            return _error(400, "invalid_request", "resource is required")
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        client_id = request.query.get("client_id") or DEFAULT_CLIENT_ID
        now = int(time.time())
        claims = {
            "aud": resource.removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "tid": self.tenant,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "appid": client_id,
            "azp": client_id,
            "roles": [GRAPH_ROLE],
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
        }
        self.token_requests += 1
        return web.json_response(
            {
                "access_token": self.signer.sign(claims),
                "expires_on": str(now + self.token_lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.signer.jwk()]})

    async def openid_configuration(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}/{self.tenant}"
        return web.json_response({"issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys"})

    async def issue(self, request: web.Request) -> web.Response:
        """A caller token for tests: v2 issuer at this emulator, claims overridable."""
        overrides = dict(await request.json())
        expires_in = int(overrides.pop("expires_in", 3600))
        signer = self.stranger if overrides.pop("sign_with_unknown_key", False) else self.signer
        now = int(time.time())
        tenant = overrides.get("tid", self.tenant)
        principal = str(uuid.uuid4())
        claims = {
            "iss": f"{request.scheme}://{request.host}/{tenant}/v2.0",
            "tid": tenant,
            "aud": "api://meeting-gateway",
            "azp": DEFAULT_CLIENT_ID,
            # An app-only token, as client credentials issue it: about the app's service principal itself.
            "oid": principal,
            "sub": principal,
            "iat": now,
            "nbf": now - 5 if expires_in > 0 else now + expires_in - 60,
            "exp": now + expires_in,
            **overrides,
        }
        return web.json_response({"access_token": signer.sign(claims)})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"token_requests": self.token_requests, "latency_ms": self.latency_ms})

    async def config(self, request: web.Request) -> web.Response:
        self.latency_ms = int((await request.json()).get("latency_ms", self.latency_ms))
        return await self.stats(request)

    async def reset(self, request: web.Request) -> web.Response:
        self.token_requests = 0
        self.latency_ms = 0
        return await self.stats(request)


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=status)


def main() -> None:
    parser = argparse.ArgumentParser(description="Managed-identity endpoint emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7072)
    parser.add_argument("--identity-header", required=True, help="the secret IDENTITY_HEADER value")
    parser.add_argument("--tenant", default=DEFAULT_TENANT)
    parser.add_argument("--token-lifetime", type=int, default=3600)
    args = parser.parse_args()
    emulator = IdentityEmulator(args.identity_header, args.tenant, args.token_lifetime)
    web.run_app(emulator.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
