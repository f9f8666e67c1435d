"""The local stack for benchmarks: the same processes as `make run`, on free ports, stopped at exit."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devstack.stack import LocalStack

ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"


@contextlib.contextmanager
def running_stack() -> Iterator[LocalStack]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stack = LocalStack.up(Path(tmp) / "logs", Path(tmp) / "azurite")
        try:
            yield stack
        finally:
            stack.down()


def create_path(version: str = "v1.0", organizer: str = ORGANIZER) -> str:
    return f"/{version}/users/{organizer}/onlineMeetings/createOrGet"


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
