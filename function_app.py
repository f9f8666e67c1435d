"""Azure Functions entry point: the gateway's ASGI app over HTTP, and the retention purge on a timer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func
from starlette.types import ASGIApp, Receive, Scope, Send

from meetings_core.http.app import SIGNED_STATUS_ONLY, create_app
from meetings_core.idempotency.purge import purge

asgi = create_app()
# With function keys the host checks x-functions-key/code; the other modes are checked by the gateway itself.
_uses_keys = "function-key" in asgi.state.settings.auth_modes
_level = func.AuthLevel.FUNCTION if _uses_keys else func.AuthLevel.ANONYMOUS
app = func.FunctionApp(http_auth_level=_level)


async def _signed_only(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app with polls that must carry a status URL signature (the host checked no key)."""
    await asgi({**scope, "state": {**scope.get("state", {}), SIGNED_STATUS_ONLY: True}}, receive, send)


def _serve(name: str, route: str, methods: list[str], level: func.AuthLevel, target: ASGIApp) -> None:
    """Register an HTTP function that hands its requests to an ASGI app (what AsgiFunctionApp does once)."""
    middleware = func.AsgiMiddleware(target)  # type: ignore[no-untyped-call]  # untyped upstream

    async def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        response: func.HttpResponse = await middleware.handle_async(req, context)
        return response

    app.function_name(name)(app.http_type("asgi")(app.route(route=route, methods=methods, auth_level=level)(handler)))


_ALL = [method.value for method in func.HttpMethod]
if not _uses_keys:
    _serve("http_app_func", "/{*route}", _ALL, _level, asgi)
else:
    # The host demands a key on every FUNCTION-level route, and the HTTP action's Location poll sends none,
    # so GET /operations/{id} is an anonymous function that the gateway restricts to signed status URLs.
    # The host tries routes in registration order (it does not rank literal over catch-all segments), so
    # no two routes may match one request: the catch-all takes every method but GET, and each GET path
    # has its own function.
    _serve("http_app_func", "/{*route}", [m for m in _ALL if m != "GET"], _level, asgi)
    _serve("http_get_health", "health", ["GET"], _level, asgi)
    _serve("http_get_openapi", "openapi.json", ["GET"], _level, asgi)
    _serve("signed_status_poll", "operations/{operation_id}", ["GET"], func.AuthLevel.ANONYMOUS, _signed_only)


@app.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def purge_reservations(timer: func.TimerRequest) -> None:
    """Delete expired and abandoned reservations, in pages."""
    services = await asgi.state.services.get()
    report = await purge(services.store, datetime.now(UTC))
    logging.getLogger("meetings_core.purge").info(
        "purge finished",
        extra={"expired": report.expired, "abandoned": report.abandoned, "skipped": report.skipped},
    )
