"""The gateway's ASGI app: Graph's createOrGet paths, the status URL, health."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from ..auth.authenticator import FUNCTION_KEY_CALLER
from ..auth.caller import Caller, unauthorized
from ..auth.policy import CallerPolicy
from ..errors import GatewayError
from ..heap import freeze_startup_heap
from ..idempotency.engine import Outcome, RequestContext, operation_not_found, storage_unavailable
from ..idempotency.keys import unscoped_body
from ..idempotency.replays import RequestBytes
from ..idempotency.store import RecordTooLarge, StoreUnavailable
from ..logs import configure_logging
from ..services import ServiceHolder, Services
from ..settings import Settings, SettingsError, get_settings
from ..telemetry import configure_telemetry, observe, sdk_installed, tracer
from ..telemetry.signals import note_caller
from ..validation import API_VERSIONS, validate_call, validate_organizer_id
from .body import parse_json, read_body
from .health import HealthChecks
from .middleware import CorrelationMiddleware
from .responses import SECURITY_HEADERS, error_response, json_response
from .status_url import has_signature
from .target import request_target

log = logging.getLogger("meetings_core.http")
Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")
# Set in the ASGI scope state by function_app.py's adapter, never by a client or the environment: the request
# came through the Functions host (which checked the function key), and on its anonymous status route.
FUNCTIONS_HOST = "functions_host"
SIGNED_STATUS_ONLY = "signed_status_only"
CREATE_ROUTE = "/{version}/users/{user_id}/onlineMeetings/createOrGet"
STATUS_ROUTE = "/operations/{operation_id}"
# Each served path as a caller writes it, for answers that name the path to send.
SERVED = {
    CREATE_ROUTE: "POST /{v1.0|beta}/users/{userId}/onlineMeetings/createOrGet",
    STATUS_ROUTE: "GET /operations/{operationId} (the status URL exactly as Location gave it)",
    "/health": "GET /health",
    "/openapi.json": "GET /openapi.json",
}


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; settings default to the environment's, validated now: a bad one raises `SettingsError`."""
    # An exception, not SystemExit: the Functions host reports it, with the setting's name, when indexing fails.
    settings = settings or get_settings()
    if problem := settings.serving_problem():
        raise SettingsError(f"Invalid gateway settings: {problem}")
    configure_logging(settings.log_level)
    configure_telemetry(settings)
    holder = ServiceHolder(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await holder.close()

    app = Starlette(
        routes=[
            Route(CREATE_ROUTE, _guard(create_or_get, CREATE_ROUTE), methods=["POST"]),
            Route(STATUS_ROUTE, _guard(operation_status, STATUS_ROUTE), methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=[Middleware(CorrelationMiddleware)],
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
        lifespan=lifespan,
    )
    # Graph does not redirect a trailing slash. Starlette's 307 carries no error envelope, names a host the
    # Functions host may have rewritten, and makes a client that follows it send the body again (RFC 9110
    # 15.4.8). Such a path gets a 404 naming the path to send (`_no_such_endpoint`).
    app.router.redirect_slashes = False
    app.state.services = holder
    app.state.settings = settings
    app.state.policy = CallerPolicy(settings.caller_policy)
    app.state.health = HealthChecks()
    freeze_startup_heap()
    return app


def _guard(endpoint: Endpoint, route: str) -> Endpoint:
    """Answer a `GatewayError` raised anywhere below in Graph's envelope; trace and measure every answer when
    an OpenTelemetry SDK records them (without one, spans and instruments are no-ops that still cost CPU)."""

    async def answered(request: Request) -> tuple[Response, str | None]:
        try:
            return await endpoint(request), None
        except GatewayError as error:
            return error_response(request, error), error.code

    async def guarded(request: Request) -> Response:
        if not sdk_installed():  # asked per request: a host may install its provider after the app is built
            return (await answered(request))[0]
        # A label from the path only when it is one we serve: labels must not be chosen by strangers.
        version = request.path_params.get("version", "status")
        version = version if version in (*API_VERSIONS, "status") else "other"
        observed = observe(route, version, request.method)
        with tracer.start_as_current_span(f"gateway {endpoint.__name__}") as span, observed as answer:
            response, answer.error_code = await answered(request)
            answer.of(response.status_code, replayed="idempotent-replayed" in response.headers)
            span.set_attribute("http.response.status_code", response.status_code)
        return response

    guarded.__name__ = endpoint.__name__
    return guarded


async def create_or_get(request: Request) -> Response:
    version = request.path_params["version"]
    if version not in API_VERSIONS:
        raise GatewayError(404, "NotFound", f"Unknown API version '{version}': use v1.0 or beta.")
    settings: Settings = request.app.state.settings
    raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_seconds)
    services: Services = await request.app.state.services.get()
    caller = await authenticate(request, services, raw)
    organizer_id = validate_organizer_id(request.path_params["user_id"])
    request.app.state.policy.authorize(caller, organizer_id, version)
    note_caller(caller.id)  # admitted by the policy: a metric label from its bounded list
    scope = caller_scope(caller)
    sent = RequestBytes(caller.id, scope, version, organizer_id, raw)
    replays = services.engine.replays
    if (known := replays.answer(sent)) is not None:  # these bytes were validated and replayed from this record
        return await _answer(request, services, known, caller, known.body)
    call = validate_call(version, organizer_id, parse_json(raw), scope=scope)
    ctx = _context(request, caller)
    try:
        outcome = await services.engine.create_or_get(call, ctx)
    except RecordTooLarge as exc:
        raise too_large_to_store(exc) from exc
    body = call.caller_body(outcome.body)
    if outcome.replay_of is not None:
        replays.remember(sent, outcome.replay_of, Outcome(outcome.status, body, outcome.headers))
    return await _answer(request, services, outcome, caller, body)


async def operation_status(request: Request) -> Response:
    """A signed status URL authorizes as the caller it was made for; otherwise the caller authenticates."""
    services: Services = await request.app.state.services.get()
    operation_id = request.path_params["operation_id"]
    if has_signature(request.query_params):
        caller_id = await _with_status_key(services.status_urls.verify(operation_id, request.query_params))
        if caller_id is None:  # forged, expired or for another operation: the same answer as an unknown id
            raise operation_not_found()
        caller = Caller(caller_id, "status-url")
    elif getattr(request.state, SIGNED_STATUS_ONLY, False):
        raise unauthorized("Poll the status URL exactly as the gateway returned it in Location, with its signature.")
    else:
        caller = await authenticate(request, services, b"")
    outcome = await services.engine.status(operation_id, _context(request, caller))
    note_caller(caller.id)  # the record was visible to it, so the policy admits it
    owner = Caller(outcome.caller, "") if outcome.caller else caller  # the record's caller tagged its externalId
    return await _answer(request, services, outcome, caller, unscoped_body(outcome.body, caller_scope(owner)))


async def _answer(request: Request, services: Services, outcome: Outcome, caller: Caller, body: bytes) -> Response:
    """The outcome with `body`; a status Location becomes a signed URL for this caller."""
    headers = dict(outcome.headers)
    location = headers.get("Location", "")
    if location.startswith("/operations/"):
        operation_id = location.removeprefix("/operations/").partition("?")[0]
        headers["Location"] = await _with_status_key(services.status_urls.path(operation_id, caller.id))
    return json_response(request, outcome.status, body, headers)


def too_large_to_store(exc: RecordTooLarge) -> GatewayError:
    """A 413, not a 503: a request the reservation cannot hold never fits, however often it is sent."""
    return GatewayError(
        413,
        "RequestEntityTooLarge",
        f"The request is too large for the gateway to keep while it calls Graph: compressed, it takes {exc.size} "
        f"bytes, and a reservation holds at most {exc.limit} bytes. Send a smaller body (numbers written with an "
        "exponent, such as 1e15, grow when stored).",
    )


async def _with_status_key(pending: Awaitable[T]) -> T:
    """Signing needs the server key, read once from the table: an unreachable table is a 503."""
    try:
        return await pending
    except StoreUnavailable as exc:
        raise storage_unavailable(exc) from exc


async def authenticate(request: Request, services: Services, body: bytes) -> Caller:
    """The caller of this request; HMAC signatures cover the method and the path with query as received."""
    # A function key counts as checked only when the Functions host passed the request on (its adapter's marker),
    # or on a development machine: FUNCTIONS_WORKER_RUNTIME is an environment variable anyone can set.
    key_checked = services.settings.local_development or getattr(request.state, FUNCTIONS_HOST, False) is True
    return await services.authenticator.authenticate(
        request.headers, body, method=request.method, target=request_target(request.scope), key_checked=key_checked
    )


def caller_scope(caller: Caller) -> str | None:
    """Whose externalIds these are: each entra/hmac caller its own; function keys are one shared caller."""
    return None if FUNCTION_KEY_CALLER.id in (caller.mode, caller.id) else caller.id


def _context(request: Request, caller: Caller) -> RequestContext:
    policy: CallerPolicy = request.app.state.policy
    return RequestContext(
        caller=caller.id,
        client_request_id=request.state.client_request_id,
        respond_async="respond-async" in request.headers.get("prefer", "").lower(),
        read_others=policy.may_read_others(caller),
        allows=lambda organizer_id, api_version: policy.allows(caller, organizer_id, api_version),
        spent_seconds=time.monotonic() - request.state.arrived,
    )


async def health(request: Request) -> Response:
    """200 or 503; which part failed (`tableStorage`, `tokenEndpoint`) only for an authenticated caller."""
    services: Services = await request.app.state.services.get()
    try:
        await authenticate(request, services, b"")
        detailed = True
    except GatewayError:
        detailed = False
    report = await request.app.state.health.report(services)
    healthy = all(value == "ok" for value in report.values())
    status = {"status": "healthy" if healthy else "unhealthy"}
    return JSONResponse({**status, "checks": report} if detailed else status, 200 if healthy else 503)


async def openapi(request: Request) -> Response:
    """The OpenAPI 3 description, generated from the same pydantic contract that validates requests."""
    from ..openapi import openapi_for  # rendered on the first GET only: no request of the API needs it

    settings: Settings = request.app.state.settings
    return JSONResponse(openapi_for(settings.auth_modes))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = _no_such_endpoint(request)
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        error = GatewayError(
            405, "MethodNotAllowed", f"This endpoint accepts {allowed or 'other methods'}.", headers=exc.headers
        )
    else:
        error = GatewayError(exc.status_code, "BadRequest", str(exc.detail), headers=exc.headers)
    return error_response(request, error)


def _no_such_endpoint(request: Request) -> GatewayError:
    """A 404 that names the served path the caller meant when only trailing slashes set them apart."""
    path = request.scope["path"]
    trimmed = {**request.scope, "path": path.rstrip("/")}
    for route in request.app.routes if path.endswith("/") else ():
        if isinstance(route, Route) and route.matches(trimmed)[0] is not Match.NONE:
            served = SERVED.get(route.path, route.path)  # a route added without a spelling still gets its path
            return GatewayError(404, "NotFound", f"No such endpoint: remove the trailing '/'. Send {served}.")
    return GatewayError(404, "NotFound", f"No such endpoint. The gateway serves {SERVED[CREATE_ROUTE]}.")


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Starlette's outermost middleware answers with this, outside CorrelationMiddleware: it sets the ids (when
    the failure came before them) and the security headers itself."""
    state = request.state
    if not hasattr(state, "request_id"):
        state.request_id = str(uuid.uuid4())
    if not hasattr(state, "client_request_id"):
        state.client_request_id = state.request_id
    log.exception("unexpected error", extra={"request_id": state.request_id})
    error = GatewayError(500, "InternalServerError", "The gateway failed unexpectedly; the error is logged.")
    response = error_response(request, error)
    response.headers.update(SECURITY_HEADERS)
    return response
