"""The authenticated caller, as the rest of the gateway sees it."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GatewayError


@dataclass(frozen=True, slots=True)
class Caller:
    """`id` names the caller in policies and reservation records, e.g. `entra:<appid>` or `hmac:<partner>`."""

    id: str
    mode: str


def unauthorized(message: str) -> GatewayError:
    # One fixed challenge; the message says what is missing without echoing anything sent.
    return GatewayError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, "Forbidden", message)
