"""The garbage collector's view of a serving process: what was loaded at start is never scanned again."""

from __future__ import annotations

import gc

_state = {"frozen": False}


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, classes, settings, the app) to the permanent generation, once.

    The gateway's imports leave a heap several times a bare Table client's, and every full collection walks
    all of it: measured, that was a fifth of a Graph call's CPU. Frozen objects are never collected, so this
    runs once per process, after the app is built (the standard use of `gc.freeze`, as in CPython's docs).
    """
    if not _state["frozen"]:
        _state["frozen"] = True
        gc.freeze()
