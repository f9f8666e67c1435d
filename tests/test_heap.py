"""The serving process freezes its startup heap once: full collections then skip modules and the app."""

from __future__ import annotations

import subprocess
import sys

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
