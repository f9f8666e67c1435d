"""function_app.py serves the one ASGI app through AsgiFunctionApp and registers the purge timer."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import httpx
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
    import azure.functions as func

    assert isinstance(function_app.app, func.AsgiFunctionApp)
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


def http_routes(module) -> dict[str, dict]:
    routes = {}
    for function in module.app.get_functions():
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"] == "httpTrigger"), None)
        if trigger is not None:
            routes[function.get_function_name()] = trigger
    return routes


def matches(template: str, path: str) -> bool:
    """The host's route template matching, for literal, {name} and {*catchall} segments."""
    pattern = "".join(
        "/.*" if part.startswith("{*") else "/[^/]+" if part.startswith("{") else "/" + re.escape(part)
        for part in template.strip("/").split("/")
    )
    return re.fullmatch(pattern, path) is not None


@pytest.mark.parametrize(
    ("method", "path", "function", "level"),
    [
        ("GET", "/operations/" + "a" * 64, "signed_status_poll", "anonymous"),
        ("GET", "/health", "http_get_health", "function"),
        ("GET", "/openapi.json", "http_get_openapi", "function"),
        ("POST", "/v1.0/users/u/onlineMeetings/createOrGet", "http_app_func", "function"),
        ("POST", "/operations/x", "http_app_func", "function"),
    ],
)
def test_each_request_matches_exactly_one_function(function_app, method, path, function, level):
    # The host tries routes in registration order, so an overlap would make the winner arbitrary.
    routes = http_routes(function_app)
    matching = [
        name
        for name, trigger in routes.items()
        if method in [m.upper() for m in trigger["methods"]] and matches(trigger["route"], path)
    ]
    assert matching == [function]
    assert routes[function]["authLevel"].lower() == level


def test_without_function_keys_no_second_route_is_needed(monkeypatch):
    monkeypatch.setenv("TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("CALLER_AUTH", "hmac")
    monkeypatch.setenv("PARTNER_SECRETS", '{"acme": "a-long-enough-partner-secret-0001"}')
    monkeypatch.setenv("CALLER_POLICY", '{"hmac:acme": {"organizers": ["*"]}}')
    sys.modules.pop("function_app", None)
    from meetings_core.settings import get_settings

    get_settings.cache_clear()
    try:
        module = importlib.import_module("function_app")
        names = {f.get_function_name() for f in module.app.get_functions()}
    finally:
        sys.modules.pop("function_app", None)
        get_settings.cache_clear()
    assert "signed_status_poll" not in names


@pytest.mark.integration
async def test_the_anonymous_route_serves_signed_polls_only(local_stack, monkeypatch):
    for name, value in local_stack.gateway_env().items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("function_app", None)
    from meetings_core.idempotency.keys import ReservationKey
    from meetings_core.settings import get_settings
    from tests.stackutil import ORGANIZER, body_for, create_url

    get_settings.cache_clear()
    module = importlib.import_module("function_app")
    try:
        body = body_for()
        keyed = httpx.ASGITransport(app=module.asgi)  # behind the host's key check
        anonymous = httpx.ASGITransport(app=module._signed_only)  # no key checked by the host
        async with httpx.AsyncClient(transport=keyed, base_url="http://gw") as client:
            created = await client.post(create_url(""), json=body)
        assert created.status_code == 201
        services = await module.asgi.state.services.get()
        digest = ReservationKey(ORGANIZER.lower(), body["externalId"]).digest
        signed = await services.status_urls.path(digest, "function-key")
        async with httpx.AsyncClient(transport=anonymous, base_url="http://gw") as client:
            polled = await client.get(signed)
            unsigned = await client.get(f"/operations/{digest}")
            forged = await client.get(signed[:-2] + ("AA" if not signed.endswith("AA") else "BB"))
        assert polled.status_code == 201
        assert polled.json()["id"] == created.json()["id"]
        assert unsigned.status_code == 401
        assert forged.status_code == 404
    finally:
        await module.asgi.state.services.close()
        sys.modules.pop("function_app", None)
        get_settings.cache_clear()
