"""Structured logging with secrets masked, whatever a library puts in a message."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_SECRETS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/=]+"), r"\1***"),
    (re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), "***jwt***"),
    (
        re.compile(r"(?i)(accountkey=|sig=|code=|x-functions-key[\"':\s]+|x-identity-header[\"':\s]+)[^;&\s\"']+"),
        r"\1***",
    ),
]
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    """Mask bearer tokens, JWTs, account keys, SAS signatures and function keys."""
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


class RedactingFilter(logging.Filter):
    """For handlers we do not format (the Functions host's): mask secrets in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure_logging(level: str) -> None:
    """JSON lines on stderr unless a host already handles logs; secrets masked on every root handler."""
    root = logging.getLogger()
    if not root.handlers:  # the Functions worker brings its own handler; uvicorn leaves root bare
        stream = logging.StreamHandler()
        stream.setFormatter(JsonFormatter())
        root.addHandler(stream)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    logging.getLogger("meetings_core").setLevel(level)
    # azure-core logs request headers at INFO; they are redacted, but are noise on every call.
    logging.getLogger("azure").setLevel(logging.WARNING)
