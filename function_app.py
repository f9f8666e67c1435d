"""Azure Functions entry point: the gateway's ASGI app over HTTP, and the retention purge on a timer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func

from meetings_core.http.app import create_app
from meetings_core.idempotency.purge import purge

asgi = create_app()
# With function keys the host checks x-functions-key/code; the other modes are checked by the gateway itself.
_uses_keys = "function-key" in asgi.state.settings.auth_modes
app = func.AsgiFunctionApp(
    app=asgi, http_auth_level=func.AuthLevel.FUNCTION if _uses_keys else func.AuthLevel.ANONYMOUS
)


@app.timer_trigger(schedule="%PURGE_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def purge_reservations(timer: func.TimerRequest) -> None:
    """Delete expired and abandoned reservations, in pages."""
    services = await asgi.state.services.get()
    report = await purge(services.store, datetime.now(UTC))
    logging.getLogger("meetings_core.purge").info(
        "purge finished",
        extra={"expired": report.expired, "abandoned": report.abandoned, "skipped": report.skipped},
    )
