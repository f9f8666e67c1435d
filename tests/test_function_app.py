"""function_app.py serves the one ASGI app through AsgiFunctionApp and registers the purge timer."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest


@pytest.fixture
def function_app(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")  # the host sets it for its worker
    sys.modules.pop("function_app", None)
    from meetings_core.settings import get_settings

    get_settings.cache_clear()
    module = importlib.import_module("function_app")
    yield module
    sys.modules.pop("function_app", None)
    get_settings.cache_clear()


def test_http_function_serves_every_route_with_function_keys_and_timer_purges(function_app):
    functions = {f.get_function_name(): json.loads(f.get_function_json()) for f in function_app.app.get_functions()}
    http = next(f for f in functions.values() if any(b["type"] == "httpTrigger" for b in f["bindings"]))
    trigger = next(b for b in http["bindings"] if b["type"] == "httpTrigger")
    assert trigger["authLevel"].lower() == "function"
    assert trigger["route"] == "/{*route}"
    timer = functions["purge_reservations"]["bindings"][0]
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == "%PURGE_SCHEDULE%"
    assert function_app.asgi.state.settings.table_name == "meetingreservations"


def test_host_json_mirrors_graph_paths():
    with open(Path(__file__).parent.parent / "host.json") as f:
        host = json.load(f)
    assert host["extensions"]["http"]["routePrefix"] == ""
