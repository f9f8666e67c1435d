"""HMAC-signed partner webhooks: `X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The signed message is `<t>.<raw body>`, keyed with the partner's secret; `X-Gateway-Partner` names the
partner. A timestamp outside the tolerance window is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from .caller import Caller, unauthorized

SIGNATURE_HEADER = "x-gateway-signature"
PARTNER_HEADER = "x-gateway-partner"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a partner sends (also used by the docs' examples and the tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class HmacVerifier:
    """Checks a partner's signature over timestamp and body, in constant time."""

    def __init__(self, secrets: Mapping[str, str], tolerance_seconds: float) -> None:
        self._secrets = dict(secrets)
        self._tolerance = tolerance_seconds

    def verify(self, partner: str | None, signature: str | None, body: bytes) -> Caller:
        if not partner or not signature:
            raise unauthorized(f"Send the {PARTNER_HEADER} and {SIGNATURE_HEADER} headers.")
        secret = self._secrets.get(partner)
        timestamp, digest = _parse(signature)
        if timestamp is None or digest is None:
            raise unauthorized(f"The {SIGNATURE_HEADER} header must look like t=<unix seconds>,v1=<hex>.")
        if abs(time.time() - timestamp) > self._tolerance:
            raise unauthorized("The signature timestamp is outside the accepted window; sign the request anew.")
        # Compare against a dummy for unknown partners too, so timing does not reveal which partners exist.
        expected = sign(secret or "unknown-partner", body, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected.encode(), digest.encode()) or secret is None:
            raise unauthorized("The request signature is not valid for this partner.")
        return Caller(f"hmac:{partner}", "hmac")


def _parse(header: str) -> tuple[int | None, str | None]:
    parts = dict(item.strip().split("=", 1) for item in header.split(",") if "=" in item)
    stamp, digest = parts.get("t", ""), parts.get("v1")
    # Unix seconds have 10 digits until 2286; longer values are refused before any arithmetic.
    return (int(stamp) if stamp.isdigit() and len(stamp) <= 12 else None), digest
