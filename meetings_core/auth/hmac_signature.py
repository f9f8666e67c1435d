"""HMAC-signed partner webhooks: `X-Gateway-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256>`.

Scheme `v2` signs `<t>.<METHOD>.<path?query>.<raw body>` with the partner's secret, so a captured request
cannot be replayed to another organizer, API version or the status URL; `X-Gateway-Partner` names the
partner. A timestamp older than the tolerance, or ahead of the gateway's clock by more than a minute, is
refused. The old `v1` (`<t>.<body>`) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from .caller import Caller, unauthorized

SIGNATURE_HEADER = "x-gateway-signature"
PARTNER_HEADER = "x-gateway-partner"
SCHEME = "v2"
# ASCII digits and hex only: `\d` and str.isdigit() accept digits of other scripts, which int() then reads.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# A timestamp may be ahead of the gateway's clock by clock skew only: accepting the whole tolerance ahead
# would let a captured request be replayed for twice the tolerance.
MAX_FUTURE_SKEW_SECONDS = 60.0


def signed_message(timestamp: int, method: str, target: str, body: bytes) -> bytes:
    """The bytes a `v2` signature covers: `<t>.<METHOD>.<path?query>.<body>`."""
    return f"{timestamp}.{method.upper()}.{target}.".encode() + body


def sign(secret: str, method: str, target: str, body: bytes, timestamp: int) -> str:
    """The header value a partner sends (also used by the docs' examples and the tests)."""
    digest = hmac.new(secret.encode(), signed_message(timestamp, method, target, body), hashlib.sha256)
    return f"t={timestamp},{SCHEME}={digest.hexdigest()}"


class HmacVerifier:
    """Checks a partner's signature over timestamp, method, path with query and body, in constant time."""

    def __init__(self, secrets: Mapping[str, str], tolerance_seconds: float) -> None:
        self._secrets = dict(secrets)
        self._tolerance = tolerance_seconds

    def verify(self, partner: str | None, signature: str | None, method: str, target: str, body: bytes) -> Caller:
        if not partner or not signature:
            raise unauthorized(f"Send the {PARTNER_HEADER} and {SIGNATURE_HEADER} headers.")
        parts = _parse(signature)
        if SCHEME not in parts and "v1" in parts:
            raise unauthorized(
                "The v1 signature (over timestamp and body only) is no longer accepted: sign with v2, "
                "HMAC-SHA256 over '<t>.<METHOD>.<path?query>.<body>', and send t=<t>,v2=<hex>."
            )
        stamp, digest = parts.get("t", ""), parts.get(SCHEME, "")
        if not _TIMESTAMP.fullmatch(stamp) or not _DIGEST.fullmatch(digest):
            raise unauthorized(f"The {SIGNATURE_HEADER} header must look like t=<unix seconds>,v2=<64 hex digits>.")
        timestamp = int(stamp)
        age = time.time() - timestamp
        if age > self._tolerance:
            raise unauthorized("The signature timestamp is outside the accepted window; sign the request anew.")
        if age < -min(MAX_FUTURE_SKEW_SECONDS, self._tolerance):
            raise unauthorized(
                "The signature timestamp is ahead of the gateway's clock by more than the allowed skew "
                f"({MAX_FUTURE_SKEW_SECONDS:g} s); sign with the current time and check the sender's clock."
            )
        secret = self._secrets.get(partner)
        # Compare against a dummy for unknown partners too, so timing does not reveal which partners exist.
        expected = sign(secret or "unknown-partner", method, target, body, timestamp).split("=", 2)[2]
        if not hmac.compare_digest(expected.encode(), digest.lower().encode()) or secret is None:
            raise unauthorized("The request signature is not valid for this partner, method, path and body.")
        return Caller(f"hmac:{partner}", "hmac")


def _parse(header: str) -> dict[str, str]:
    return dict(item.strip().split("=", 1) for item in header.split(",") if "=" in item)
