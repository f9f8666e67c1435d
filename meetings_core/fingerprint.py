"""Fingerprint of a caller's request, to tell a true retry from a changed payload."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys: equal documents give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(body: Any) -> str:
    """SHA-256 of the body as the caller sent it, before any default is applied."""
    return hashlib.sha256(canonical_json(body)).hexdigest()
