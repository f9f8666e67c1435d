"""Entra ID bearer tokens, validated by the gateway: signature (tenant JWKS), issuer, audience, expiry."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

from ..errors import GatewayError, retry_after_header
from .caller import Caller, forbidden, unauthorized

log = logging.getLogger("meetings_core.auth")

_CLOCK_SKEW_SECONDS = 60
# An unknown `kid` triggers a JWKS refresh at most this often, so forged kids cannot flood the tenant;
# after a failed fetch, sooner: callers are told to retry (503), not that their token is bad.
_MIN_REFRESH_SECONDS = 30.0
_RETRY_FAILED_SECONDS = 5.0
_MAX_KEYS_AGE_SECONDS = 24 * 3600.0


class KeysUnavailable(Exception):
    """The tenant's signing keys could not be fetched, so a token signed by a key not yet known cannot be judged."""


class JwksCache:
    """The tenant's signing keys, fetched once, refreshed daily and on an unknown key id."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self._http = http
        self._url = url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched: float | None = None  # monotonic time of the last fetch attempt
        self._failed = False  # the last fetch attempt failed
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key `kid` names; None when the tenant does not publish it; KeysUnavailable when unknown because
        the last fetch failed."""
        if kid not in self._keys or self._age() > _MAX_KEYS_AGE_SECONDS:
            async with self._lock:
                if (
                    kid not in self._keys and self._age() > self._min_interval()
                ) or self._age() > _MAX_KEYS_AGE_SECONDS:
                    await self._refresh()
        key = self._keys.get(kid)
        if key is None and self._failed:
            raise KeysUnavailable
        return key

    async def ready(self) -> None:
        """Raise KeysUnavailable unless keys are held: fetched now when there are none (health checks)."""
        if not self._keys:
            async with self._lock:
                if not self._keys and self._age() > self._min_interval():
                    await self._refresh()
        if not self._keys:
            raise KeysUnavailable

    def _min_interval(self) -> float:
        return _RETRY_FAILED_SECONDS if self._failed else _MIN_REFRESH_SECONDS

    def _age(self) -> float:
        return float("inf") if self._fetched is None else time.monotonic() - self._fetched

    async def _refresh(self) -> None:
        self._fetched = time.monotonic()  # failures count too, so a dead endpoint is not hammered
        # Failed until it succeeds: a fetch cancelled midway (a health probe's timeout, a caller hanging up)
        # must also answer 503 and be retried soon, not leave unknown keys judged as forged for 30 s.
        self._failed = True
        try:
            response = await self._http.get(self._url, timeout=5.0)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.warning("JWKS refresh failed: %s", type(exc).__name__)
            return
        self._keys = {str(k.key_id): k for k in keys if k.key_id}
        self._failed = False


class EntraVerifier:
    """Accepts tokens of one tenant for one audience; the caller is the app (azp/appid) or the user (oid)."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        tenant_id: str,
        audiences: list[str],
        authority: str,
        required_role: str | None = None,
    ) -> None:
        self._jwks = jwks
        self._tenant = tenant_id
        self._audiences = audiences
        self._required_role = required_role
        self._issuers = [f"{authority}/{tenant_id}/v2.0", f"https://sts.windows.net/{tenant_id}/"]

    async def ready(self) -> None:
        """Raise KeysUnavailable unless the tenant's signing keys are held (fetched now if none are)."""
        await self._jwks.ready()

    async def verify(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("Send an Entra ID access token: 'Authorization: Bearer <token>'.")
        claims = await self._decode(token.strip())
        if claims.get("tid") != self._tenant:
            raise unauthorized("The access token was issued for another tenant.")
        if self._required_role is not None and not _grants(claims, self._required_role):
            # Without this any principal of the tenant that can get a token for the audience would pass.
            raise forbidden(
                f"The access token carries no '{self._required_role}' app role (roles) or scope (scp); "
                "ask the gateway's operator to assign it to your application or user."
            )
        return _caller(claims)

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("The access token is not a valid JWT.") from None
        try:
            key = await self._jwks.key(str(header.get("kid", "")))
        except KeysUnavailable:
            raise _keys_unavailable() from None
        if key is None:
            raise unauthorized("The access token is signed by a key this tenant does not publish.")
        try:
            return dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    audience=self._audiences,
                    issuer=self._issuers,
                    leeway=_CLOCK_SKEW_SECONDS,
                    options={"require": ["exp", "iss", "aud", "tid"]},
                )
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The access token has expired; get a new one.") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("The access token is for another audience than this gateway.") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("The access token was issued by another tenant or authority.") from None
        except jwt.PyJWTError:
            raise unauthorized("The access token is not valid.") from None


def _keys_unavailable() -> GatewayError:
    # A 503 that every client retries: the token may be fine, and a 401 would fail the flow for good.
    return GatewayError(
        503,
        "ServiceUnavailable",
        "The gateway could not fetch the tenant's token signing keys to check the access token; send the request "
        "again after the Retry-After delay.",
        headers=retry_after_header(_RETRY_FAILED_SECONDS),
    )


def _caller(claims: dict[str, Any]) -> Caller:
    """`entra:<appid>` for an app-only token, `entra:<oid>` for a token on behalf of a user."""
    if is_app_only(claims):
        app_id = claims.get("azp") or claims.get("appid")
        if not isinstance(app_id, str) or not app_id:
            raise unauthorized("The app-only access token names no application (azp/appid).")
        return Caller(f"entra:{app_id}", "entra")
    user = claims.get("oid")
    if not isinstance(user, str) or not user:
        raise unauthorized("The access token is on behalf of a user but names no user (oid).")
    return Caller(f"entra:{user}", "entra")


def is_app_only(claims: dict[str, Any]) -> bool:
    """Microsoft.Identity.Web's rule: `idtyp` == "app" when the claim is present, else no `scp` and `oid` == `sub`."""
    # Sources: learn.microsoft.com/entra/identity-platform/optional-claims-reference (idtyp) and
    # .../scenario-protected-web-api-verification-scope-app-roles (an app's token is about its own service
    # principal: oid == sub; a user's sub is pairwise). `roles` proves nothing: users can hold app roles too.
    if "idtyp" in claims:
        return bool(claims["idtyp"] == "app")
    oid, sub = claims.get("oid"), claims.get("sub")
    return "scp" not in claims and isinstance(oid, str) and bool(oid) and oid == sub


def _grants(claims: dict[str, Any], name: str) -> bool:
    """True when the app role (`roles`, app tokens) or delegated scope (`scp`, user tokens) is present."""
    roles = claims.get("roles")
    scopes = claims.get("scp")
    in_roles = isinstance(roles, list) and name in roles
    in_scopes = isinstance(scopes, str) and name in scopes.split(" ")
    return in_roles or in_scopes
