"""Pick the authentication mode a request uses, among those the settings enable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .caller import Caller, unauthorized
from .hmac_signature import PARTNER_HEADER, SIGNATURE_HEADER, HmacVerifier

if TYPE_CHECKING:  # entra (and with it PyJWT) is imported only where the settings enable it: services.py
    from .entra import EntraVerifier

FUNCTION_KEY_CALLER = Caller("function-key", "function-key")


class Authenticator:
    """Signed requests go to HMAC, bearer tokens to Entra; with function keys the host has already checked.

    Settings never enable function keys beside entra or hmac (the host would demand a key from everyone,
    and a key holder could drop its token to escape its policy), so exactly one branch applies per mode.
    """

    def __init__(
        self, *, function_keys: bool, entra: EntraVerifier | None = None, hmac: HmacVerifier | None = None
    ) -> None:
        self._function_keys = function_keys
        self._entra = entra
        self._hmac = hmac

    async def ready(self) -> None:
        """Raise unless every enabled mode can judge a request now (entra: the tenant's signing keys are held)."""
        if self._entra is not None:
            await self._entra.ready()

    async def authenticate(
        self, headers: Mapping[str, str], body: bytes, *, method: str, target: str, key_checked: bool = False
    ) -> Caller:
        """`target` is the path with its query exactly as received, which HMAC signatures cover;
        `key_checked` is true only for a request the Functions host passed on after checking its key."""
        if self._hmac is not None and (SIGNATURE_HEADER in headers or PARTNER_HEADER in headers):
            return self._hmac.verify(headers.get(PARTNER_HEADER), headers.get(SIGNATURE_HEADER), method, target, body)
        if self._entra is not None:
            return await self._entra.verify(headers.get("authorization"))
        if self._function_keys:
            if not key_checked:  # fail closed: a server other than the Functions host checked no key
                raise unauthorized(
                    "Function keys are checked only by the Azure Functions host, and this request did not come "
                    "through it; call the gateway's Function App."
                )
            return FUNCTION_KEY_CALLER
        raise unauthorized(f"Sign the request ({PARTNER_HEADER} and {SIGNATURE_HEADER} headers).")
