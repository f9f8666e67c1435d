"""Log records are JSON with their correlation fields, and secrets are masked whatever logged them."""

from __future__ import annotations

import json
import logging
import traceback

from hypothesis import example, given
from hypothesis import strategies as st

from meetings_core.logs import _SECRETS, JsonFormatter, configure_logging, redact

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


class _Capture(logging.Handler):
    """Stands in for a handler added after configuration, such as Application Insights' exporter."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_handlers_added_after_configuration_get_redacted_records_and_tracebacks():
    configure_logging("DEBUG")
    capture = _Capture()
    logger = logging.getLogger("meetings_core")
    logger.addHandler(capture)  # as configure_azure_monitor(logger_name="meetings_core") does
    inner_text = "inner AccountKey=" + "Eby8vdM02x== " + JWT  # built here so no source line shows a secret
    outer_text = "call failed with Bearer " + "tok123secret"
    try:
        try:
            try:
                raise ValueError(inner_text)
            except ValueError as inner:
                raise RuntimeError(outer_text) from inner
        except RuntimeError:
            logging.getLogger("meetings_core.graph").exception("failed for code=%s", "k3ysecret")
    finally:
        logger.removeHandler(capture)
    (record,) = capture.records
    text = record.getMessage() + "".join(traceback.format_exception(*record.exc_info))  # type: ignore[misc]
    for secret in ("tok123secret", "Eby8vdM02x", JWT, "k3ysecret"):
        assert secret not in text
    assert "builtins.RuntimeError" in text
    assert "builtins.ValueError" in text
    assert "test_logs.py" in text  # the traceback itself is kept


def test_exceptions_without_secrets_are_logged_unchanged():
    configure_logging("DEBUG")
    capture = _Capture()
    logger = logging.getLogger("meetings_core")
    logger.addHandler(capture)
    try:
        try:
            raise KeyError("plain")
        except KeyError:
            logging.getLogger("meetings_core.x").exception("boom")
    finally:
        logger.removeHandler(capture)
    assert capture.records[0].exc_info[1].__class__ is KeyError  # type: ignore[index]


def test_formatters_that_unpack_args_get_them_masked_not_dropped():
    from uvicorn.logging import AccessFormatter

    configure_logging("INFO")
    capture = _Capture()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(capture)
    access.setLevel(logging.INFO)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", "/v1.0/x?code=k3ysecret&a=1", "1.1", 201)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/health", "1.1", 200)
    finally:
        access.removeHandler(capture)
    masked, plain = (AccessFormatter("%(request_line)s %(status_code)s").format(r) for r in capture.records)
    assert masked == "POST /v1.0/x?code=***&a=1 HTTP/1.1 201 Created"
    assert plain == "GET /health HTTP/1.1 200 OK"
    assert capture.records[1].args == ("127.0.0.1:5", "GET", "/health", "1.1", 200)


_MARKED = [
    "Bearer ",
    "bEaReR\t",
    "eyJhbGci",
    "AccountKey=",
    "SIG=",
    "CoDe=",
    "x-functions-key: ",
    "X-Identity-Header: ",
]
_FRAGMENTS = [*_MARKED, "abc.def", "eyj", ".", "x", " ", "&", ";", "k3y", '"']


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join))
@example("CoDe=k3y")
@example("SIG=k3y")
@example("bEaReR\tk3y")
@example("eyJhbGci.k3y.x")
@example("ACCOUNTKEY=k3y")
@example('X-Functions-Key: "k3y"')
@example("x-IDENTITY-header: k3y")
def test_the_quick_check_before_the_patterns_never_skips_a_secret(text: str):
    expected = text
    for pattern, replacement in _SECRETS:
        expected = pattern.sub(replacement, expected)
    assert redact(text) == expected
