"""The garbage collector's view of a serving process: what was loaded at start is never scanned again."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_state = {"frozen": False}
# Container allocations between young collections once serving (CPython's default is 700). Measured under
# bench/cpu.py, the collector's CPU fell from about 500 ms to about 100 ms over the same run (2% of the
# gateway's CPU per request); the young generation then holds at most this many objects, a few MB.
YOUNG_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, classes, settings, the app) to the permanent generation, once.

    The gateway's imports leave a heap several times a bare Table client's, and every full collection walks
    all of it: measured, that was a fifth of a Graph call's CPU. Frozen objects are never collected, so this
    runs once per process, after the app is built (the standard use of `gc.freeze`, as in CPython's docs).
    Then young collections run every YOUNG_THRESHOLD allocations: a request allocates thousands of objects that
    die with it, and scanning them every 700 cost more than they hold.
    """
    if not _state["frozen"]:
        _state["frozen"] = True
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@contextlib.contextmanager
def paused_collection() -> Iterator[None]:
    """No collections inside the block (a cold start's imports and building the app); as before after it.

    Imports allocate long-lived objects by the hundred thousand, and each full collection among them walks the
    heap built so far: without them, importing `function_app` takes 0.86x the CPU (bench/cold_start.py). Nothing
    is lost: what the imports leave lives as long as the process, `freeze_startup_heap` then takes it out of
    later collections, and the few cycles that were garbage by then (under a thousand objects) stay with it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
