"""The HTTP layer's signals: one per answer, described by the facts the request noted on its way."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import instruments
from . import names as n
from .signals import RequestSignals, path_of, request_signals, wait_result


def outcome_of(status: int, replayed: bool, error_code: str | None = None, graph_result: str | None = None) -> str:
    """The answer's outcome label (`names.OUTCOMES`)."""
    if status == 201:
        return "created"
    if status == 200:
        return "replayed" if replayed else "existing"
    if status == 202:
        return "accepted"
    if error_code == "RequestInProgress":
        return "in_progress"
    if status >= 500 and graph_result in ("unknown_outcome", "throttled"):
        return graph_result
    if status in (409, 422):
        return "conflicted"
    if status == 429:
        return "throttled"
    if status in (503, 504):
        return "unavailable"
    return "rejected" if status < 500 else "failed"


@dataclass(slots=True)
class Answer:
    """The answer as the HTTP layer sends it; an exception that escapes counts as a 500."""

    method: str
    route: str
    api_version: str
    signals: RequestSignals
    status: int = 500
    replayed: bool = False
    error_code: str | None = None
    started: float = field(default_factory=time.monotonic)

    def of(self, status: int, *, replayed: bool) -> None:
        self.status, self.replayed = status, replayed


@contextlib.contextmanager
def observe(route: str, api_version: str, method: str = "POST") -> Iterator[Answer]:
    """Collect one request's facts, then record its answer: duration, outcome and path, a duplicate's wait."""
    with request_signals() as signals:
        answer = Answer(method, route, api_version, signals)
        try:
            yield answer
        finally:
            record(answer)


def record(answer: Answer) -> None:
    seconds = time.monotonic() - answer.started
    signals, status = answer.signals, answer.status
    outcome = outcome_of(status, answer.replayed, answer.error_code, signals.graph_result)
    duration_attributes: dict[str, str | int] = {n.METHOD: answer.method, n.ROUTE: answer.route, n.STATUS: status}
    if status >= 500:
        duration_attributes[n.ERROR_TYPE] = str(status)  # semantic conventions: the status code as error.type
    instruments.http_server_duration.record(seconds, duration_attributes)
    instruments.requests.add(
        1,
        {
            n.OUTCOME: outcome,
            n.PATH: path_of(signals, answer.replayed),
            n.CALLER: signals.caller or "none",
            n.API_VERSION: answer.api_version,
            n.STATUS: status,
        },
    )
    if signals.wait_started is not None:
        waited = time.monotonic() - signals.wait_started
        instruments.duplicate_wait.record(waited, {n.WAIT_RESULT: wait_result(outcome)})
