"""What one request did, noted where it happens and recorded once, when the HTTP layer answers.

The engine and the Graph client note facts on the current request (`waiting()`, `took_over()`,
`key_held()`, `graph_result()`); a context variable carries them, so an answer raised as an error
is described as well as a returned one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from . import instruments
from . import names as n


@dataclass(slots=True)
class RequestSignals:
    """Facts about one request; each is set at most once by the layer that knows it."""

    caller: str | None = None
    wait_started: float | None = None
    takeover_by: str | None = None
    graph_result: str | None = None
    held: bool = False


_current: ContextVar[RequestSignals | None] = ContextVar("gateway_request_signals", default=None)


@contextlib.contextmanager
def request_signals() -> Iterator[RequestSignals]:
    """The facts of the request running in this context (the HTTP layer opens one per request)."""
    signals = RequestSignals()
    token = _current.set(signals)
    try:
        yield signals
    finally:
        _current.reset(token)


def _here() -> RequestSignals:
    # Outside a request (the CLI, a unit test of the engine) facts go to a throwaway record.
    return _current.get() or RequestSignals()


def note_caller(caller_id: str) -> None:
    """The caller, once the policy has admitted it: the label set is the policy's list of callers."""
    _here().caller = caller_id


def waiting() -> None:
    """A duplicate starts (or keeps) waiting for another request's result."""
    signals = _here()
    if signals.wait_started is None:
        signals.wait_started = time.monotonic()


def took_over(by: str) -> None:
    """An ended lease was taken over, by a waiting duplicate or a status poll (`names.TAKEOVER_BY_VALUES`)."""
    _here().takeover_by = by
    instruments.takeovers.add(1, {n.TAKEOVER_BY: by})


def key_held(api_version: str) -> None:
    """Graph's outcome is unknown: the key stays reserved until its lease ends."""
    _here().held = True
    instruments.keys_held.add(1, {n.API_VERSION: api_version})


def graph_result(result: str) -> None:
    """How this request's Graph call ended (`names.GRAPH_RESULTS`)."""
    _here().graph_result = result


def path_of(signals: RequestSignals, replayed: bool) -> str:
    """Which way the engine answered: owner, replay, waited, takeover_duplicate, takeover_poll, none."""
    if signals.takeover_by is not None:
        return "takeover_poll" if signals.takeover_by == "status_poll" else "takeover_duplicate"
    if signals.wait_started is not None:
        return "waited"
    if replayed:
        return "replay"
    return "owner" if signals.graph_result is not None else "none"


def wait_result(outcome: str) -> str:
    """How a duplicate's wait ended: the meeting, a status URL (202), 'send it again' (503/409), or an error."""
    if outcome in ("created", "existing", "replayed"):
        return "meeting"
    return outcome if outcome in ("accepted", "in_progress") else "failed"
