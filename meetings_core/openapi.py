"""The gateway's API description, generated from the pydantic contract (OpenAPI 3).

`GET /openapi.json` serves the OpenAPI 3 document; the Power Platform custom connector's Swagger 2.0
rendering and apiProperties come from `meetings_core.connector` (`python -m meetings_core.connector`).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from typing import Any

from . import __version__
from .auth.hmac_signature import PARTNER_HEADER, SIGNATURE_HEADER
from .contract_schema import DESCRIPTION, TITLE, request_schemas

_ORGANIZER = {
    "name": "userId",
    "in": "path",
    "required": True,
    "description": "The organizer's Microsoft Entra object ID (a GUID).",
    "x-ms-summary": "Organizer object ID",
    "x-ms-url-encoding": "single",
}
_ERROR: dict[str, Any] = {
    "type": "object",
    "description": "Microsoft Graph's error envelope.",
    "properties": {
        "error": {
            "type": "object",
            "description": "The error: code, message and correlation ids.",
            "properties": {
                "code": {"type": "string", "description": "Machine-readable error code."},
                "message": {"type": "string", "description": "What went wrong and what to send instead."},
                "innerError": {
                    "type": "object",
                    "description": "Correlation ids for support.",
                    "additionalProperties": {"type": "string"},
                },
            },
        }
    },
}
_MEETING: dict[str, Any] = {
    "type": "object",
    "description": "The onlineMeeting as Graph returns it (id, joinWebUrl, subject, times, participants, ...).",
    "properties": {
        "id": {"type": "string", "description": "The meeting id.", "x-ms-summary": "Meeting ID"},
        "joinWebUrl": {"type": "string", "description": "The Teams join link.", "x-ms-summary": "Join URL"},
        "externalId": {"type": "string", "description": "The external ID sent.", "x-ms-summary": "External ID"},
        "subject": {"type": "string", "description": "The meeting subject.", "x-ms-summary": "Subject"},
        "startDateTime": {"type": "string", "format": "date-time", "description": "Start (UTC)."},
        "endDateTime": {"type": "string", "format": "date-time", "description": "End (UTC)."},
    },
    "additionalProperties": True,
}


def _meeting_schema(openapi3: bool) -> dict[str, Any]:
    """Graph may send null for any of these; 3.1 says so with a type list, 2.0 with x-nullable."""
    schema = copy.deepcopy(_MEETING)
    for prop in schema["properties"].values():
        if openapi3:
            prop["type"] = [prop["type"], "null"]
        else:
            prop["x-nullable"] = True
    return schema


# How a caller authenticates in each CALLER_AUTH mode (README: Caller authentication), as OpenAPI 3 schemes.
_SCHEMES: dict[str, dict[str, dict[str, Any]]] = {
    "function-key": {
        "functionKey": {
            "type": "apiKey",
            "in": "header",
            "name": "x-functions-key",
            "description": "The function's key (the Functions host also takes it as the `code` query parameter).",
        }
    },
    "entra": {
        "entra": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Microsoft Entra access token for the gateway's application (ENTRA_AUDIENCE).",
        }
    },
    "hmac": {
        "hmacPartner": {"type": "apiKey", "in": "header", "name": PARTNER_HEADER, "description": "The partner's id."},
        "hmacSignature": {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": "t=<unix seconds>,v2=<HMAC-SHA256 in hex> (docs/POWER_AUTOMATE.md, partner webhooks).",
        },
    },
}


def openapi_for(modes: frozenset[str]) -> dict[str, Any]:
    """The description with the security schemes of the enabled CALLER_AUTH `modes` (one of them is needed)."""
    return _openapi_for(tuple(sorted(modes)))


@functools.cache
def _openapi_for(modes: tuple[str, ...]) -> dict[str, Any]:
    document = copy.deepcopy(openapi3())
    schemes = {name: scheme for mode in modes for name, scheme in _SCHEMES[mode].items()}
    needed: list[dict[str, list[str]]] = [{name: [] for name in _SCHEMES[mode]} for mode in modes]
    document["components"]["securitySchemes"] = schemes
    for path, item in document["paths"].items():
        for operation in item.values():
            # A signed status URL carries its own authorization (its query); the caller's credentials also do.
            operation["security"] = [{}, *needed] if path.startswith("/operations/") else needed
    return document


@functools.cache
def openapi3() -> dict[str, Any]:
    """OpenAPI 3.1 description of the gateway, without security schemes (built once; do not mutate the result)."""
    responses = {
        "201": _resp("A new meeting was created.", "#/components/schemas/OnlineMeeting"),
        "200": _resp("The existing meeting for this external ID.", "#/components/schemas/OnlineMeeting"),
        "202": {
            "description": "Still being created (with Prefer: respond-async): poll the signed Location URL.",
            "headers": {
                "Location": {"description": "The signed status URL.", "schema": {"type": "string"}},
                "Retry-After": {"description": "Seconds to wait before polling.", "schema": {"type": "integer"}},
            },
        },
        "503": _resp(
            "RequestInProgress (another call with this externalId is running), a dependency is down, or Graph's "
            "answer was lost: send the same request again after Retry-After.",
            "#/components/schemas/ODataError",
        ),
        "504": _resp(
            "Graph did not answer in time; the meeting may exist: send the same request again after Retry-After.",
            "#/components/schemas/ODataError",
        ),
        "default": _resp("An error, in Graph's envelope.", "#/components/schemas/ODataError"),
    }
    create = {
        "operationId": "CreateOrGetMeeting",
        "summary": "Create or get a Teams meeting by external ID",
        "description": DESCRIPTION,
        "parameters": [
            {k: v for k, v in _ORGANIZER.items() if not k.startswith("x-")} | {"schema": _GUID},
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "RFC 7240 preferences; with respond-async a duplicate still in progress is answered "
                "202 with a status URL (other preferences are ignored).",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateOrGetBody"}}},
        },
        "responses": responses,
    }
    paths = {
        f"/{version}/users/{{userId}}/onlineMeetings/createOrGet": {"post": {**create, "operationId": op}}
        for version, op in (("v1.0", "CreateOrGetMeeting"), ("beta", "CreateOrGetMeetingBeta"))
    }
    paths["/operations/{operationId}"] = {"get": _status_operation3(responses)}
    schemas = request_schemas("#/components/schemas/") | {"OnlineMeeting": _meeting_schema(True), "ODataError": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


_GUID = {"type": "string", "format": "uuid"}


def _resp(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _status_operation3(responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationId": "GetMeetingOperation",
        "summary": "Status of a meeting still being created",
        "description": "202 while in progress; then the meeting, as the original request would have answered.",
        "parameters": [
            {"name": "operationId", "in": "path", "required": True, "schema": {"type": "string"}},
            *(
                {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
                for name, text in (
                    ("caller", "Signed status URL: the caller it was made for."),
                    ("exp", "Signed status URL: when it expires (Unix seconds)."),
                    ("sig", "Signed status URL: the gateway's signature."),
                )
            ),
        ],
        "responses": responses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Print the gateway's OpenAPI 3 document (the connector: python -m meetings_core.connector)."
    )
    parser.add_argument("--auth", default="function-key", help="CALLER_AUTH's modes, comma-separated")
    modes = frozenset(mode.strip() for mode in parser.parse_args().auth.split(",") if mode.strip())
    if not modes or not modes <= _SCHEMES.keys():
        parser.error(f"--auth takes {', '.join(_SCHEMES)} (comma-separated)")
    json.dump(openapi_for(modes), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
