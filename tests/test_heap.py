"""The serving process freezes its startup heap once: full collections then skip modules and the app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

_PROBE = """
import gc
from meetings_core.http.app import create_app
from meetings_core.settings import Settings
before = gc.get_freeze_count()
create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
after_first = gc.get_freeze_count()
create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
print(before, after_first, gc.get_freeze_count())
"""


def test_building_the_app_freezes_the_heap_once():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout.split()
    before, first, second = map(int, out[-3:])
    assert before == 0
    assert first > 10_000  # the imported modules and the app: the bulk of the heap
    assert second == first  # a second app (tests, a second host) freezes nothing more, so nothing leaks


# Counts the collections of each generation that run while `function_app` is imported, as a cold start does.
_COLD_START = """
import gc, os, sys
runs = [0, 0, 0]
def count(phase, info):
    if phase == "start":
        runs[info["generation"]] += 1
gc.callbacks.append(count)
{before}
import function_app
print(runs[2], gc.isenabled(), gc.get_freeze_count() > 10_000, flush=True)
os._exit(0)
"""


def _cold_start(before: str = "") -> list[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env |= {"FUNCTIONS_WORKER_RUNTIME": "python", "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    script = _COLD_START.format(before=before)
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout.split()


def test_a_cold_start_runs_no_full_collection_and_leaves_the_collector_on_with_the_heap_frozen():
    full, enabled, frozen = _cold_start()
    assert full == "0"  # without the pause, the imports run several, each walking the heap built so far
    assert enabled == "True"
    assert frozen == "True"


def test_a_collector_the_host_turned_off_stays_off():
    _, enabled, _ = _cold_start("gc.disable()")
    assert enabled == "False"


def test_without_the_pause_the_same_probe_sees_full_collections():
    """Control: the same probe sees full collections when the pause is taken away, so the first test can fail."""
    full, _, _ = _cold_start("import meetings_core.heap as h, contextlib; h.paused_collection = contextlib.nullcontext")
    assert int(full) > 0


_BUILD = 'create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))'
_YOUNG = """
import gc
from meetings_core.http.app import create_app
from meetings_core.settings import Settings
{build}
runs = [0]
def count(phase, info):
    if phase == "start" and info["generation"] == 0:
        runs[0] += 1
gc.callbacks.append(count)
kept = [[] for _ in range(5_000)]  # a request's worth of containers that outlive a young collection
print(runs[0], flush=True)
"""


@pytest.mark.parametrize(("build", "most"), [("", 100), (_BUILD, 0)])
def test_once_serving_young_collections_wait_for_thousands_of_allocations(build: str, most: int):
    """5,000 new lists: CPython's default runs a young collection every 700; a built app, none."""
    out = subprocess.run([sys.executable, "-c", _YOUNG.format(build=build)], capture_output=True, text=True, check=True)
    runs = int(out.stdout.split()[-1])
    assert runs <= most
    if not build:
        assert runs >= 5  # the control: the probe does see young collections under the default threshold
