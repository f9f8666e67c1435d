"""Retry-After as Graph sends it: whole or fractional seconds, or an HTTP date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meetings_core.graph.retry_after import parse_retry_after

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("2.128", 2.128),
        ("0", 0.0),
        ("Wed, 25 Nov 2026 12:00:07 GMT", 7.0),
        ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),
        ("-1", None),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None):
    assert parse_retry_after(value, now=NOW) == expected
