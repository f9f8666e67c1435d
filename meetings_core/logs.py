"""Structured logging with secrets masked, whatever a library puts in a message."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_SECRETS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/=]+"), r"\1***"),
    (re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), "***jwt***"),
    (
        re.compile(r"(?i)(accountkey=|sig=|code=|x-functions-key[\"':\s]+|x-identity-header[\"':\s]+)[^;&\s\"']+"),
        r"\1***",
    ),
]
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# Every pattern above needs one of these (lowercased) or "eyJ": text with none is returned as it is,
# without running the expressions; most log lines (the access log's among them) have none.
_MARKERS = ("bearer", "accountkey=", "sig=", "code=", "x-functions-key", "x-identity-header")


def redact(text: str) -> str:
    """Mask bearer tokens, JWTs, account keys, SAS signatures and function keys."""
    lowered = text.lower()
    if "eyJ" not in text and not any(marker in lowered for marker in _MARKERS):
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the record's `extra` fields (correlation ids) kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class RedactedError(Exception):
    """Stands in for a logged exception whose message held a secret: type name and masked message, same traceback."""


def redact_record(record: logging.LogRecord) -> None:
    """Mask secrets in a record's message, exception and stack, in place, before any handler sees it."""
    try:
        text = record.getMessage()
    except (TypeError, ValueError):  # a bad format string: keep the template, drop the arguments
        record.msg, record.args = redact(str(record.msg)), None
    else:
        if (masked := redact(text)) != text:
            _mask_message(record, masked)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        if _holds_secret(exc, set()):
            clean = _sanitized(exc, set())
            record.exc_info = (type(clean), clean, clean.__traceback__)
            record.exc_text = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _mask_message(record: logging.LogRecord, masked: str) -> None:
    """Mask the arguments when that masks the message, else replace the message with its masked text.

    Formatters that read `record.args` themselves (uvicorn's access log unpacks its five) keep working
    when the secret sits in one argument, such as a `?code=` in the logged path.
    """
    if isinstance(record.args, tuple) and record.args:
        args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        with contextlib.suppress(TypeError, ValueError):
            if str(record.msg) % args == masked:
                record.args = args
                return
    record.msg, record.args = masked, None


def _chain(exc: BaseException) -> BaseException | None:
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _holds_secret(exc: BaseException, seen: set[int]) -> bool:
    seen.add(id(exc))
    if redact(str(exc)) != str(exc):
        return True
    inner = _chain(exc)
    return inner is not None and id(inner) not in seen and _holds_secret(inner, seen)


def _sanitized(exc: BaseException, seen: set[int]) -> BaseException:
    seen.add(id(exc))
    clean = RedactedError(f"{type(exc).__module__}.{type(exc).__qualname__}: {redact(str(exc))}")
    clean = clean.with_traceback(exc.__traceback__)
    inner = _chain(exc)
    if inner is not None and id(inner) not in seen:
        clean.__cause__ = _sanitized(inner, seen)
    clean.__suppress_context__ = True
    return clean


def install_redaction() -> None:
    """Redact every record when it is created, so every handler (Application Insights' too) gets it masked.

    A filter on a logger runs only for records logged on that very logger, not for those of its children
    that propagate to its handlers, and a filter on handlers misses handlers added later; the record
    factory is the one place every record passes.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(level: str) -> None:
    """JSON lines on stderr unless a host already handles logs; secrets masked in every record."""
    install_redaction()
    root = logging.getLogger()
    if not root.handlers:  # the Functions worker brings its own handler; uvicorn leaves root bare
        stream = logging.StreamHandler()
        stream.setFormatter(JsonFormatter())
        root.addHandler(stream)
    logging.getLogger("meetings_core").setLevel(level)
    # azure-core logs request headers at INFO; they are redacted, but are noise on every call.
    logging.getLogger("azure").setLevel(logging.WARNING)
