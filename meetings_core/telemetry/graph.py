"""The Graph client's signals: each HTTP attempt (semantic conventions) and each call's result class."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from . import instruments
from . import names as n
from .signals import graph_result


@dataclass(slots=True)
class Attempt:
    status: int | None = None


@contextlib.contextmanager
def attempt_timer(host: str) -> Iterator[Attempt]:
    """Time one POST to Graph; set `status` once it answers. An exception is recorded by its type name."""
    attempt = Attempt()
    started = time.monotonic()
    attributes: dict[str, str | int] = {n.METHOD: "POST", n.SERVER_ADDRESS: host}
    try:
        yield attempt
    except BaseException as exc:
        attributes[n.ERROR_TYPE] = type(exc).__qualname__
        raise
    finally:
        if attempt.status is not None:
            attributes[n.STATUS] = attempt.status
            if attempt.status >= 400:
                attributes[n.ERROR_TYPE] = str(attempt.status)
        instruments.http_client_duration.record(time.monotonic() - started, attributes)


def record_graph_call(result: str, api_version: str, started: float) -> None:
    """One createOrGet call at Graph ended as `result` (`names.GRAPH_RESULTS`)."""
    graph_result(result)
    instruments.graph_call_duration.record(
        time.monotonic() - started, {n.GRAPH_RESULT: result, n.API_VERSION: api_version}
    )
