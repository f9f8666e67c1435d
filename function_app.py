"""Azure Functions entry point: the gateway's ASGI app over HTTP, and the retention purge on a timer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func
from starlette.types import Receive, Scope, Send

from meetings_core.http.app import SIGNED_STATUS_ONLY, create_app
from meetings_core.idempotency.purge import purge

asgi = create_app()
# With function keys the host checks x-functions-key/code; the other modes are checked by the gateway itself.
_uses_keys = "function-key" in asgi.state.settings.auth_modes
app = func.AsgiFunctionApp(
    app=asgi, http_auth_level=func.AuthLevel.FUNCTION if _uses_keys else func.AuthLevel.ANONYMOUS
)


async def _signed_only(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app with polls that must carry a status URL signature (the host checked no key)."""
    await asgi({**scope, "state": {**scope.get("state", {}), SIGNED_STATUS_ONLY: True}}, receive, send)


if _uses_keys:
    # The host demands a key on every FUNCTION-level route, and the HTTP action's Location poll sends none.
    # The literal `operations/{id}` route outranks the catch-all `{*route}` in the host's routing, so status
    # polls land here, anonymous to the host; the gateway then accepts only a valid signed status URL.
    _signed_polls = func.AsgiMiddleware(_signed_only)  # type: ignore[no-untyped-call]  # untyped upstream

    @app.function_name("signed_status_poll")
    @app.route(route="operations/{operation_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def signed_status_poll(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        """GET /operations/{id}: a signed status URL poll, without a function key."""
        response: func.HttpResponse = await _signed_polls.handle_async(req, context)
        return response


@app.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def purge_reservations(timer: func.TimerRequest) -> None:
    """Delete expired and abandoned reservations, in pages."""
    services = await asgi.state.services.get()
    report = await purge(services.store, datetime.now(UTC))
    logging.getLogger("meetings_core.purge").info(
        "purge finished",
        extra={"expired": report.expired, "abandoned": report.abandoned, "skipped": report.skipped},
    )
