"""Log records are JSON with their correlation fields, and secrets are masked whatever logged them."""

from __future__ import annotations

import json
import logging

from meetings_core.logs import JsonFormatter, redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlLWJ5dGVz"


def test_redact_masks_tokens_keys_and_signatures():
    text = redact(
        f"Authorization: Bearer abc.def-ghi token={JWT} AccountKey=Eby8vdM02x==;Endpoint=x "
        "https://h/api?code=s3cretkey&x=1 sv=2020&sig=abcd%2F x-functions-key: k3y"
    )
    for secret in ("abc.def-ghi", JWT, "Eby8vdM02x", "s3cretkey", "abcd%2F", "k3y"):
        assert secret not in text
    assert "Endpoint=x" in text
    assert "x=1" in text


def test_json_formatter_keeps_extra_fields_and_redacts():
    record = logging.makeLogRecord(
        {"name": "meetings_core.graph", "levelname": "INFO", "msg": "sent Bearer %s", "args": ("tok123",)}
    )
    record.graph_request_id = "g-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["graph_request_id"] == "g-1"
    assert entry["message"] == "sent Bearer ***"
