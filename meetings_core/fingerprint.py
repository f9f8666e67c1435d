"""Fingerprint of a caller's request, to tell a true retry from a changed payload."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys: equal documents give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(model: BaseModel) -> str:
    """SHA-256 of the validated request, normalized as Graph reads it.

    Instants are compared in UTC, nulls and OData annotations are dropped (the contract already skips
    annotations), and list order is kept: the same meeting written another way is the same request.
    """
    return hashlib.sha256(canonical_json(_normalized(model.model_dump(by_alias=True, exclude_none=True)))).hexdigest()


def legacy_fingerprint(body: Any) -> str:
    """The fingerprint of records written before normalization: SHA-256 of the body as sent."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, Enum):
        return value.value
    return value
