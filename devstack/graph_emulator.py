"""Microsoft Graph emulator for `POST /{v1.0|beta}/users/{userId}/onlineMeetings/createOrGet`.

Implements the documented contract (defaults, validation errors, 201 new / 200 existing, bearer-token
check against the identity emulator's JWKS) with switches for latency, 429/503 faults with Retry-After,
dropped connections, organizers without an access policy, and a non-atomic mode that creates duplicates
under concurrent calls, as an unserialized createOrGet can. Like any real backend, a createOrGet that has
started finishes even when its client gives up (a timeout or a dropped connection): with latency, that is
the slow mode in which a client's timeout is an unknown outcome.

    python -m devstack.graph_emulator --port 7073 --jwks-url http://127.0.0.1:7072/<tenant>/discovery/v2.0/keys

Control API: POST /_emulator/config (JSON merged into the switches), POST /_emulator/reset, GET /_emulator/stats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from aiohttp import web

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_ROLE = "OnlineMeetings.ReadWrite.All"
_SWITCHES: dict[str, Any] = {
    "latency_ms": 0,
    # How many createOrGet calls from now get the latency (None: all), as in a short Graph slowdown.
    "slow_calls": None,
    "non_atomic": False,
    "faults": [],
    "drop_connections": 0,
    "deny_organizers": [],
    "unknown_organizers": [],
}


class GraphEmulator:
    """Meetings in memory, keyed by (organizer, externalId); one process holds the truth."""

    def __init__(self, jwks_url: str, switches: dict[str, Any]) -> None:
        self._jwks_url = jwks_url
        self._startup = {**_SWITCHES, **switches}
        self._jwks: jwt.PyJWKSet | None = None
        self._reset()

    def _reset(self) -> None:
        self.switches: dict[str, Any] = json.loads(json.dumps(self._startup))
        self.meetings: dict[tuple[str, str], dict[str, Any]] = {}
        self.locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.calls = 0
        self.creates: Counter[str] = Counter()
        self.calls_by_version: Counter[str] = Counter()
        self.last_request: dict[str, Any] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{version}/users/{user_id}/onlineMeetings/createOrGet", self.create_or_get)
        app.router.add_post("/_emulator/config", self.config)
        app.router.add_post("/_emulator/reset", self.reset)
        app.router.add_get("/_emulator/stats", self.stats)
        app.router.add_get("/_emulator/meetings", self.meeting_ids)
        return app

    async def create_or_get(self, request: web.Request) -> web.StreamResponse:
        version, user_id = request.match_info["version"], request.match_info["user_id"].lower()
        if version not in ("v1.0", "beta"):
            return _graph_error(request, 400, "BadRequest", f"Invalid version: {version}")
        self.calls += 1
        self.calls_by_version[version] += 1
        raw = await request.read()
        self._remember(request, raw)
        if self.switches["drop_connections"] > 0:
            self.switches["drop_connections"] -= 1
            assert request.transport is not None
            request.transport.abort()  # the client sees the connection reset, with no response
            raise ConnectionResetError("dropped on purpose")
        fault = self._next_fault()
        if fault is not None:
            return _fault(request, fault)
        problem = await self._check_token(request.headers.get("Authorization", ""))
        if problem:
            return _graph_error(request, 401, "InvalidAuthenticationToken", problem)
        if (request.content_type or "") != "application/json":
            return _graph_error(request, 415, "UnsupportedMediaType", "Content-Type must be application/json")
        try:
            body = json.loads(raw)
            start, end = _window(body)
        except (ValueError, TypeError) as exc:
            return _graph_error(request, 400, "BadRequest", str(exc))
        if user_id in self.switches["deny_organizers"]:
            return _graph_error(
                request,
                403,
                "Forbidden",
                f"Application is not allowed to perform operations on the user '{user_id}', neither is "
                "allowed access through RSC permission evaluation.",
            )
        if user_id in self.switches["unknown_organizers"]:
            return _graph_error(request, 404, "NotFound", f"User '{user_id}' was not found.")
        # Shielded: a client that disconnects does not stop a create that has started.
        return await asyncio.shield(self._create_or_get(request, version, user_id, body, start, end))

    async def _create_or_get(
        self, request: web.Request, version: str, user_id: str, body: dict[str, Any], start: datetime, end: datetime
    ) -> web.Response:
        key = (user_id, str(body["externalId"]))
        latency = self._latency()
        if self.switches["non_atomic"]:
            # Check, then act, with time in between: concurrent callers all see "absent" and all create.
            existing = self.meetings.get(key)
            await asyncio.sleep(latency)
            if existing is not None:
                return _meeting_response(request, 200, _in_version(existing, version))
            return self._create(request, version, key, body, start, end)
        async with self.locks[key]:
            existing = self.meetings.get(key)
            await asyncio.sleep(latency)
            if existing is not None:
                return _meeting_response(request, 200, _in_version(existing, version))
            return self._create(request, version, key, body, start, end)

    def _create(
        self,
        request: web.Request,
        version: str,
        key: tuple[str, str],
        body: dict[str, Any],
        start: datetime,
        end: datetime,
    ) -> web.Response:
        meeting = _meeting(version, key[0], body, start, end)
        self.meetings[key] = meeting
        self.creates[f"{key[0]}|{key[1]}"] += 1
        return _meeting_response(request, 201, meeting)

    def _latency(self) -> float:
        slow_calls = self.switches["slow_calls"]
        if slow_calls is not None:
            if slow_calls <= 0:
                return 0.0
            self.switches["slow_calls"] = slow_calls - 1
        return float(self.switches["latency_ms"]) / 1000

    def _next_fault(self) -> dict[str, Any] | None:
        for fault in self.switches["faults"]:
            if fault.get("count", 1) > 0:
                fault["count"] = fault.get("count", 1) - 1
                return dict(fault)
        return None

    async def _check_token(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "Access token is empty."
        try:
            header = jwt.get_unverified_header(token)
            key = await self._key(str(header.get("kid")))
            if key is None:
                return "Access token validation failure: unknown signing key."
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=GRAPH_AUDIENCE)
        except jwt.PyJWTError as exc:
            return f"Access token validation failure. {type(exc).__name__}."
        if GRAPH_ROLE not in claims.get("roles", []):
            return f"Access token lacks the {GRAPH_ROLE} role."
        return None

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        if self._jwks is None or not any(k.key_id == kid for k in self._jwks.keys):
            async with httpx.AsyncClient(timeout=5) as client:
                self._jwks = jwt.PyJWKSet.from_dict((await client.get(self._jwks_url)).json())
        return next((k for k in self._jwks.keys if k.key_id == kid), None)

    def _remember(self, request: web.Request, raw: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.last_request = {"path": request.path, "headers": headers, "body": body}

    async def config(self, request: web.Request) -> web.Response:
        update = await request.json()
        unknown = set(update) - set(_SWITCHES)
        if unknown:
            return web.json_response({"error": f"unknown switches: {sorted(unknown)}"}, status=400)
        for name in ("deny_organizers", "unknown_organizers"):
            if name in update:
                update[name] = [o.lower() for o in update[name]]
        self.switches.update(update)
        return web.json_response(self.switches)

    async def reset(self, request: web.Request) -> web.Response:
        self._reset()
        return web.json_response(self.switches)

    async def meeting_ids(self, request: web.Request) -> web.Response:
        """The meeting id Graph holds for each "<organizer>|<externalId>"."""
        return web.json_response({f"{user}|{external}": m["id"] for (user, external), m in self.meetings.items()})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": self.calls,
                "creates": sum(self.creates.values()),
                "creates_by_key": dict(self.creates),
                "calls_by_version": dict(self.calls_by_version),
                "meetings": len(self.meetings),
                "last_request": self.last_request,
            }
        )


def _window(body: Any) -> tuple[datetime, datetime]:
    """Graph's documented rules and defaults for start and end."""
    if not isinstance(body, dict) or not body.get("externalId"):
        raise ValueError("externalId is required.")
    start_raw, end_raw = body.get("startDateTime"), body.get("endDateTime")
    if end_raw and not start_raw:
        raise ValueError("endDateTime cannot be specified without startDateTime.")
    start = _parse(start_raw) if start_raw else datetime.now(UTC)
    end = _parse(end_raw) if end_raw else start + timedelta(hours=1)
    if end < start:
        raise ValueError("endDateTime must be later than startDateTime.")
    return start, end


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _meeting(version: str, organizer: str, body: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    meeting_id = f"MSo{uuid.uuid4().hex}"
    thread = f"19:meeting_{uuid.uuid4().hex}@thread.v2"
    join = f"https://teams.microsoft.com/l/meetup-join/{thread}/0?context=%7b%22Tid%22%3a%22x%22%7d"
    participants = body.get("participants") or {}
    attendees = [
        {
            "upn": a.get("upn"),
            "role": a.get("role", "attendee"),
            "identity": a.get("identity") or {"user": {"id": None}},
        }
        for a in participants.get("attendees") or []
    ]
    return {
        "@odata.context": _context(version, organizer),
        "id": meeting_id,
        "creationDateTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "startDateTime": start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "endDateTime": end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "joinUrl": join,
        "joinWebUrl": join,
        "meetingCode": str(uuid.uuid4().int)[:12],
        "subject": body.get("subject"),
        "isBroadcast": False,
        "autoAdmittedUsers": "everyoneInCompany",
        "isEntryExitAnnounced": True,
        "allowedPresenters": "everyone",
        "videoTeleconferenceId": str(uuid.uuid4().int)[:10],
        "externalId": body["externalId"],
        "participants": {
            "organizer": {"upn": None, "role": "presenter", "identity": {"user": {"id": organizer}}},
            "attendees": attendees,
            "producers": [],
            "contributors": [],
        },
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "audioConferencing": {
            "conferenceId": str(uuid.uuid4().int)[:9],
            "tollNumber": "+1 206-485-3005",
            "tollFreeNumber": None,
            "dialinUrl": f"https://dialin.teams.microsoft.com/{uuid.uuid4()}?id=1",
        },
        "chatInfo": {
            "threadId": (body.get("chatInfo") or {}).get("threadId") or thread,
            "messageId": "0",
            "replyChainMessageId": None,
        },
    }


def _context(version: str, organizer: str) -> str:
    return f"https://graph.microsoft.com/{version}/$metadata#users('{organizer}')/onlineMeetings/$entity"


def _in_version(meeting: dict[str, Any], version: str) -> dict[str, Any]:
    """An existing meeting as the asked-for API version serializes it."""
    organizer = meeting["participants"]["organizer"]["identity"]["user"]["id"]
    return {**meeting, "@odata.context": _context(version, organizer)}


def _headers(request: web.Request) -> dict[str, str]:
    return {
        "request-id": str(uuid.uuid4()),
        "client-request-id": request.headers.get("client-request-id", str(uuid.uuid4())),
    }


def _meeting_response(request: web.Request, status: int, meeting: dict[str, Any]) -> web.Response:
    return web.json_response(meeting, status=status, headers=_headers(request))


def _graph_error(request: web.Request, status: int, code: str, message: str) -> web.Response:
    headers = _headers(request)
    inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), **headers}
    return web.json_response(
        {"error": {"code": code, "message": message, "innerError": inner}}, status=status, headers=headers
    )


def _fault(request: web.Request, fault: dict[str, Any]) -> web.Response:
    status = int(fault["status"])
    if fault.get("body") is not None:
        response = web.json_response(fault["body"], status=status, headers=_headers(request))
    else:
        code = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(status, "Error")
        response = _graph_error(request, status, code, f"Injected fault {status}.")
    if fault.get("retry_after") is not None:
        response.headers["Retry-After"] = str(fault["retry_after"])
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description="Microsoft Graph createOrGet emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7073)
    parser.add_argument("--jwks-url", required=True, help="the identity emulator's JWKS URL")
    parser.add_argument("--non-atomic", action="store_true", help="reproduce duplicate creation under races")
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args()
    emulator = GraphEmulator(args.jwks_url, {"non_atomic": args.non_atomic, "latency_ms": args.latency_ms})
    web.run_app(emulator.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
