"""Azure Functions entry point: the gateway's ASGI app over HTTP, and the retention purge on a timer."""

from __future__ import annotations

from datetime import UTC, datetime

from meetings_core.heap import paused_collection

with paused_collection():  # the cold start: imports and the app, no full collections among them
    import azure.functions as func
    from starlette.types import ASGIApp, Receive, Scope, Send

    from meetings_core.http.app import FUNCTIONS_HOST, SIGNED_STATUS_ONLY, create_app

    asgi = create_app()
_ALL = [method.value for method in func.HttpMethod]


def _marked(*markers: str) -> ASGIApp:
    """The ASGI app with `markers` set in each request's scope state: only this adapter sets them, never a client."""

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "state": {**(scope.get("state") or {}), **dict.fromkeys(markers, True)}}
        await asgi(scope, receive, send)

    return marked


# Every request reaches the app through the host (which checked the function key on FUNCTION-level routes).
_from_host = _marked(FUNCTIONS_HOST)
# The anonymous status route: the host checked no key, so polls must carry a status URL signature.
_signed_only = _marked(FUNCTIONS_HOST, SIGNED_STATUS_ONLY)


class GatewayFunctionApp(func.AsgiFunctionApp):
    """`AsgiFunctionApp` over the gateway's one ASGI app, with HTTP functions that never overlap.

    With function keys the host demands a key on every FUNCTION-level route, but a Power Automate
    Location poll sends none, so GET /operations/{id} is an anonymous function that serves signed status
    URLs only. The host tries routes in registration order, not by specificity (azure-functions-host
    #9876, #3153), so the catch-all takes every method but GET and each GET path has its own function.
    """

    def _add_http_app(
        self, http_middleware: func.AsgiMiddleware | func.WsgiMiddleware, function_name: str = "http_app_func"
    ) -> None:
        if self.auth_level != func.AuthLevel.FUNCTION:
            super()._add_http_app(http_middleware, function_name)
            return
        assert isinstance(http_middleware, func.AsgiMiddleware)
        self._serve(function_name, "/{*route}", [m for m in _ALL if m != "GET"], self.auth_level, http_middleware)
        self._serve("http_get_health", "health", ["GET"], self.auth_level, http_middleware)
        self._serve("http_get_openapi", "openapi.json", ["GET"], self.auth_level, http_middleware)
        signed = func.AsgiMiddleware(_signed_only)  # type: ignore[no-untyped-call]  # untyped upstream
        self._serve("signed_status_poll", "operations/{operation_id}", ["GET"], func.AuthLevel.ANONYMOUS, signed)

    def _serve(
        self, name: str, route: str, methods: list[str], level: func.AuthLevel, middleware: func.AsgiMiddleware
    ) -> None:
        async def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
            response: func.HttpResponse = await middleware.handle_async(req, context)
            return response

        self.function_name(name)(
            self.http_type("asgi")(self.route(route=route, methods=methods, auth_level=level)(handler))
        )


# With function keys the host checks x-functions-key/code; the other modes are checked by the gateway itself.
_level = func.AuthLevel.FUNCTION if "function-key" in asgi.state.settings.auth_modes else func.AuthLevel.ANONYMOUS
app = GatewayFunctionApp(app=_from_host, http_auth_level=_level)


@app.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def purge_reservations(timer: func.TimerRequest) -> None:
    """Count stuck reservations (metrics), then delete expired and abandoned ones, in pages."""
    from meetings_core.maintenance import purge_and_measure  # the timer's own work: not on a request's cold start

    services = await asgi.state.services.get()
    await purge_and_measure(services.store, datetime.now(UTC))
