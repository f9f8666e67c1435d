"""A fake clock for the in-process engine tests: time moves only when the engine sleeps or a test advances it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """Time that moves only when the engine sleeps or a test (or a fake Graph) advances it; `on_sleep` lets a
    test act while the engine waits. A sleep also yields to other tasks, as a real one does."""

    def __init__(self) -> None:
        self.now = T0
        self.on_sleep: Callable[[], None] | None = None

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep()
        await asyncio.sleep(0)

    def elapsed(self) -> float:
        return (self.now - T0).total_seconds()
