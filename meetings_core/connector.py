"""The Power Platform custom connector: its Swagger 2.0 definition and apiProperties, generated from the contract.

    python -m meetings_core.connector --out connector            # host from each connection (dynamichosturl)
    python -m meetings_core.connector --out connector --host gw.azurewebsites.net   # one fixed host
    python -m meetings_core.connector --out build/key --auth function-key            # one connection option

`--auth both` (the default) is a multi-auth connector (connectionParameterSets): the function key travels in a
`setheader` policy, as in Microsoft's certified key-or-Entra connectors; one option gives a classic single-auth
connector that the portal wizard can edit and `pac connector create` can finish (connector/README.md).

tests/test_connector.py keeps the committed files in connector/ equal to this output.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .contract_schema import DESCRIPTION, TITLE, request_schemas

# No such host can exist (RFC 6761), so a connector imported without a host setting fails instead of
# sending its key elsewhere; the dynamichosturl policy or --host supplies the real one.
UNSET_HOST = "gateway-host.invalid"
FUNCTION_KEY_HEADER = "x-functions-key"
HOST_PARAMETER = "hostName"
# Entra ID connections need your app registrations: the connector's client and the gateway's audience.
ENTRA_CLIENT_ID_UNSET = "00000000-0000-0000-0000-000000000000"
ENTRA_RESOURCE_UNSET = "api://set-entra-audience-with---entra-resource"
# Not `common`: a single-tenant app registration (the usual one) refuses it (AADSTS50194). Sign-in fails until set.
ENTRA_TENANT_UNSET = "set-tenant-with---entra-tenant-id"
AUTH_OPTIONS = ("both", "function-key", "entra-id")

_IMPORTANT = {"externalId", "startDateTime", "endDateTime", "subject"}
# Graph's identity objects: rarely typed by hand in a flow, so out of the way.
_ADVANCED_OBJECTS = {"IdentitySet", "Identity", "ChatInfo"}
_ADVANCED_FIELDS = {"identity", "chatInfo", "contributors", "producers"}
_BETA_ONLY = {"contributors", "producers"}
_WORDS = {"id": "ID", "upn": "UPN", "url": "URL", "utc": "UTC", "dialin": "Dial-In"}
_DESCRIPTIONS = {
    "participants": "The organizer and attendees.",
    "attendees": "The people invited, each by UPN or identity.",
    "organizer": "The organizer, if not only the user in the path.",
    "contributors": "Deprecated beta property: contributors.",
    "producers": "Deprecated beta property: producers (live events).",
    "identity": "Who this participant is, as a Graph identity set.",
    "role": "attendee, presenter, producer or coorganizer.",
    "upn": "The participant's user principal name (sign-in name).",
    "threadId": "The Teams chat thread ID.",
    "messageId": "The chat message ID the meeting belongs to.",
    "replyChainMessageId": "The ID of the reply chain's first message.",
    "displayName": "The display name.",
    "tenantId": "The Entra tenant ID.",
    "userIdentityType": "The kind of user (aadUser, guest, ...).",
    "endpointType": "The kind of endpoint the identity uses.",
}


def title_case(name: str) -> str:
    """`joinMeetingIdSettings` -> `Join Meeting ID Settings`: the designer's field labels."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)
    return " ".join(_WORDS.get(word.lower(), word[:1].upper() + word[1:]) for word in words)


def swagger2(host: str | None = None, auth: str = "both") -> dict[str, Any]:
    """Swagger 2.0 for the custom connector (Power Platform requires OpenAPI 2.0)."""
    schemas = request_schemas("#/definitions/")
    v1 = _input(schemas["CreateOrGetBody"], schemas, beta=False)
    beta = _input(schemas["CreateOrGetBody"], schemas, beta=True)
    return {
        "swagger": "2.0",
        "info": {"title": TITLE, "version": __version__, "description": DESCRIPTION},
        "host": host or UNSET_HOST,
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {
            "/v1.0/users/{userId}/onlineMeetings/createOrGet": {"post": _create("v1.0")},
            "/beta/users/{userId}/onlineMeetings/createOrGet": {"post": _create("beta")},
            "/operations/{operationId}": {"get": _status()},
        },
        "definitions": {
            "CreateOrGetBody": v1,
            "CreateOrGetBodyBeta": beta,
            "OnlineMeeting": _annotate(copy.deepcopy(_MEETING)),
            "OperationInProgress": _annotate(copy.deepcopy(_IN_PROGRESS)),
            "ODataError": _annotate(copy.deepcopy(_ERROR)),
        },
        **_security(auth),
    }


def _security(auth: str) -> dict[str, Any]:
    """Single-auth connectors declare their one scheme; a multi-auth one declares none (its parameter sets and
    the key's setheader policy say it all), like certified-connectors/CognitiveServicesQuestionAnswering."""
    schemes: dict[str, dict[str, Any]] = {
        "function-key": {"api_key": {"type": "apiKey", "in": "header", "name": FUNCTION_KEY_HEADER}},
        "entra-id": {
            "oauth2_auth": {
                "type": "oauth2",
                "flow": "accessCode",
                "authorizationUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
                "tokenUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
                "scopes": {},
            }
        },
    }
    if auth == "both":
        return {"security": []}
    return {"securityDefinitions": schemes[auth], "security": [{name: []} for name in schemes[auth]]}


def api_properties(
    host: str | None = None,
    entra_client_id: str | None = None,
    entra_resource: str | None = None,
    entra_tenant_id: str | None = None,
    auth: str = "both",
) -> dict[str, Any]:
    """apiProperties.json: a function-key and/or an Entra ID connection option; the host from the connection."""
    host_parameter = {
        HOST_PARAMETER: {
            "type": "string",
            "uiDefinition": {
                "displayName": "Gateway Host",
                "description": "The gateway's host name, e.g. contoso-meetings.azurewebsites.net (no https://).",
                "tooltip": "Requests and the function key go to this host only.",
                "constraints": {"required": "true", "clearText": True, "tabIndex": 1},
            },
        }
    }
    hosts = {} if host else host_parameter
    key_set = {
        "name": "function-key",
        "uiDefinition": {"displayName": "Function Key", "description": "One of the gateway's function keys."},
        "parameters": {
            **hosts,
            "api_key": {
                "type": "securestring",
                "uiDefinition": {
                    "displayName": "Function Key",
                    "description": "A function key of the gateway (Azure portal: Function App > App keys).",
                    "tooltip": "Sent as the x-functions-key header; give each flow owner its own key.",
                    "constraints": {"required": "true", "clearText": False, "tabIndex": 2},
                },
            },
        },
    }
    entra_set = {
        "name": "entra-id",
        "uiDefinition": {
            "displayName": "Microsoft Entra ID",
            "description": "Sign in; the gateway sees the signed-in user, so CALLER_POLICY can tell flows apart.",
        },
        "parameters": {
            **hosts,
            "token": {
                "type": "oauthSetting",
                "oAuthSettings": {
                    "identityProvider": "aad",
                    "clientId": entra_client_id or ENTRA_CLIENT_ID_UNSET,
                    "scopes": [],
                    "redirectMode": "GlobalPerConnector",
                    "customParameters": {
                        "loginUri": {"value": "https://login.microsoftonline.com"},
                        "tenantId": {"value": entra_tenant_id or ENTRA_TENANT_UNSET},
                        "resourceUri": {"value": entra_resource or ENTRA_RESOURCE_UNSET},
                    },
                },
                "uiDefinition": {
                    "displayName": "Sign In With Microsoft Entra ID",
                    "description": "An access token for the gateway's ENTRA_AUDIENCE.",
                    "tooltip": "Generate with --entra-tenant-id, --entra-client-id and --entra-resource first.",
                    "constraints": {"required": "true"},
                },
            },
        },
    }
    policies = [] if host else [_HOST_POLICY]
    if auth == "both":
        connections: dict[str, Any] = {
            "connectionParameterSets": {
                "uiDefinition": {
                    "displayName": "Authentication Type",
                    "description": "How this connection signs in to the gateway.",
                },
                "values": [key_set, entra_set],
            }
        }
        policies = [*policies, _KEY_POLICY]
    else:
        connections = {"connectionParameters": (key_set if auth == "function-key" else entra_set)["parameters"]}
    return {
        "properties": {
            **connections,
            "iconBrandColor": "#4B53BC",
            "capabilities": ["actions"],
            "publisher": "meeting-gateway",
            "stackOwner": "meeting-gateway",
            "policyTemplateInstances": policies,
        }
    }


_HOST_POLICY = {
    "templateId": "dynamichosturl",
    "title": "Gateway host from the connection",
    "parameters": {"x-ms-apimTemplateParameter.urlTemplate": f"https://@connectionParameters('{HOST_PARAMETER}')"},
}
# A multi-auth connector sends the key from the function-key set with a policy (empty for Entra connections), as
# certified-connectors/CognitiveServicesQuestionAnswering does with its key (microsoft/PowerPlatformConnectors).
_KEY_POLICY = {
    "templateId": "setheader",
    "title": "Function key from the connection",
    "parameters": {
        "x-ms-apimTemplateParameter.name": FUNCTION_KEY_HEADER,
        "x-ms-apimTemplateParameter.value": "@connectionParameters('api_key','')",
        "x-ms-apimTemplateParameter.existsAction": "override",
        "x-ms-apimTemplate-policySection": "Request",
    },
}


def _create(version: str) -> dict[str, Any]:
    beta = version == "beta"
    operation: dict[str, Any] = {
        "operationId": "CreateOrGetMeetingBeta" if beta else "CreateOrGetMeeting",
        "summary": "Create or Get a Teams Meeting (Beta)" if beta else "Create or Get a Teams Meeting",
        "description": DESCRIPTION
        + (" Uses Graph's beta API, which may change; prefer the v1.0 action." if beta else ""),
        "x-ms-visibility": "advanced" if beta else "important",
        "parameters": [
            {
                "name": "userId",
                "in": "path",
                "required": True,
                "type": "string",
                "format": "uuid",
                "description": "The organizer's Microsoft Entra object ID (a GUID).",
                "x-ms-summary": "Organizer Object ID",
                "x-ms-url-encoding": "single",
                "x-ms-visibility": "important",
            },
            _PREFER,
            {
                "name": "body",
                "in": "body",
                "required": True,
                "description": "The meeting to create or get.",
                "x-ms-summary": "Meeting",
                "schema": {"$ref": "#/definitions/CreateOrGetBodyBeta" if beta else "#/definitions/CreateOrGetBody"},
            },
        ],
        "responses": _responses(),
    }
    if beta:
        operation["x-ms-api-annotation"] = {"status": "Preview"}
    return operation


# Sent on every call, hidden: with it the gateway answers 202 + Location instead of waiting, and the
# platform's asynchronous pattern polls Location until the meeting is there.
_PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": True,
    "type": "string",
    "default": "respond-async",
    "enum": ["respond-async"],
    "description": "Ask for 202 Accepted and a status URL while another call with this external ID is running.",
    "x-ms-summary": "Prefer",
    "x-ms-visibility": "internal",
}


def _responses() -> dict[str, Any]:
    return {
        "200": {"description": "The existing meeting for this external ID.", "schema": _ref("OnlineMeeting")},
        "201": {"description": "A new meeting was created.", "schema": _ref("OnlineMeeting")},
        "202": {
            "description": "Another call with this external ID is still creating the meeting: poll Location.",
            "schema": _ref("OperationInProgress"),
            "headers": {
                "Location": {
                    "type": "string",
                    "description": "The signed status URL; valid for this operation and caller for a short time.",
                    "x-ms-summary": "Status URL",
                },
                "Retry-After": {
                    "type": "integer",
                    "description": "Seconds to wait before polling Location.",
                    "x-ms-summary": "Retry After",
                },
            },
        },
        "default": {"description": "An error, in Graph's envelope.", "schema": _ref("ODataError")},
    }


def _status() -> dict[str, Any]:
    signed = [
        ("caller", "The caller the status URL was made for (from Location).", "Caller"),
        ("exp", "When the status URL expires, in Unix seconds (from Location).", "Expires"),
        ("sig", "The status URL's signature (from Location).", "Signature"),
    ]
    return {
        "operationId": "GetMeetingOperation",
        "summary": "Get the Status of a Meeting Being Created",
        "description": "Polled by the flow after a 202: 202 while in progress, then the meeting. "
        "Call it with the Location URL's query as the gateway returned it.",
        "x-ms-visibility": "internal",
        "parameters": [
            {
                "name": "operationId",
                "in": "path",
                "required": True,
                "type": "string",
                "description": "The operation ID from the Location header.",
                "x-ms-summary": "Operation ID",
            },
            *(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "type": "string",
                    "description": description,
                    "x-ms-summary": summary,
                    "x-ms-visibility": "advanced",
                }
                for name, description, summary in signed
            ),
        ],
        "responses": {
            "200": {"description": "The meeting.", "schema": _ref("OnlineMeeting")},
            "201": {"description": "The meeting (created by this operation).", "schema": _ref("OnlineMeeting")},
            "202": _responses()["202"],
            "default": {"description": "An error, in Graph's envelope.", "schema": _ref("ODataError")},
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _input(schema: dict[str, Any], schemas: dict[str, Any], *, beta: bool, name: str = "") -> dict[str, Any]:
    """The request schema inlined (Swagger 2.0 drops x-ms-* beside $ref), each field labelled and placed."""
    schema = copy.deepcopy(schema)
    options = schema.pop("anyOf", None)
    if options is not None:
        concrete = [o for o in options if o.get("type") != "null"]
        schema = {**(concrete[0] if len(concrete) == 1 else {"type": "object"}), **schema, "x-nullable": True}
    if "$ref" in schema:
        target = schema.pop("$ref").rsplit("/", 1)[1]
        advanced = target in _ADVANCED_OBJECTS
        inner = _input(schemas[target], schemas, beta=beta, name=name)
        schema = {**inner, **{k: v for k, v in schema.items() if k == "x-nullable"}}
        if advanced:
            schema["x-ms-visibility"] = "advanced"
    for drop in ("title", "default", "const"):
        schema.pop(drop, None)
    if "items" in schema:
        schema["items"] = _input(schema["items"], schemas, beta=beta, name=name)
    properties = schema.get("properties")
    if properties is not None:
        schema["properties"] = {
            key: _field(key, value, schemas, beta=beta)
            for key, value in properties.items()
            if beta or key not in _BETA_ONLY
        }
    return schema


def _field(name: str, schema: dict[str, Any], schemas: dict[str, Any], *, beta: bool) -> dict[str, Any]:
    field = _input(schema, schemas, beta=beta, name=name)
    field["x-ms-summary"] = title_case(name)
    described = schema.get("description", "")
    if not described or described.startswith(f"The {name} property"):
        described = _DESCRIPTIONS.get(name, f"{title_case(name)}, as in Microsoft Graph.")
    field["description"] = described
    if name in _IMPORTANT:
        field["x-ms-visibility"] = "important"
    elif name in _ADVANCED_FIELDS:
        field["x-ms-visibility"] = "advanced"
    return field


def _annotate(schema: dict[str, Any]) -> dict[str, Any]:
    """Output schemas: a Title Case label on every property, nested ones included."""
    for name, prop in schema.get("properties", {}).items():
        prop.setdefault("x-ms-summary", title_case(name))
        _annotate(prop)
        if "items" in prop:
            _annotate(prop["items"])
    return schema


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


_AUDIO = {
    "type": "object",
    "description": "Dial-in details, when the organizer has audio conferencing.",
    "properties": {
        "conferenceId": _text("The conference ID to enter after dialling in."),
        "tollNumber": _text("The toll number to dial in."),
        "tollFreeNumber": _text("The toll-free number to dial in."),
        "dialinUrl": _text("A page listing the dial-in numbers."),
        "tollNumbers": {"type": "array", "description": "All toll numbers.", "items": {"type": "string"}},
        "tollFreeNumbers": {"type": "array", "description": "All toll-free numbers.", "items": {"type": "string"}},
    },
}
_MEETING: dict[str, Any] = {
    "type": "object",
    "description": "The onlineMeeting as Graph returns it; the fields flows use most are typed here.",
    "properties": {
        "id": _text("The meeting ID."),
        "joinWebUrl": _text("The Teams join link."),
        "externalId": _text("The external ID sent."),
        "subject": _text("The meeting subject."),
        "startDateTime": {"type": "string", "format": "date-time", "description": "Start (UTC)."},
        "endDateTime": {"type": "string", "format": "date-time", "description": "End (UTC)."},
        "creationDateTime": {"type": "string", "format": "date-time", "description": "When Graph created it (UTC)."},
        "joinMeetingIdSettings": {
            "type": "object",
            "description": "The meeting ID and passcode people can join with.",
            "properties": {
                "joinMeetingId": _text("The numeric meeting ID to join with."),
                "passcode": _text("The passcode to join with."),
                "isPasscodeRequired": {"type": "boolean", "description": "Whether the passcode is required."},
            },
        },
        "chatInfo": {
            "type": "object",
            "description": "The meeting's chat.",
            "properties": {
                "threadId": _text("The Teams chat thread ID."),
                "messageId": _text("The chat message ID."),
                "replyChainMessageId": _text("The ID of the reply chain's first message."),
            },
        },
        "audioConferencing": _AUDIO,
        "videoTeleconferenceId": _text("The ID for video teleconferencing devices."),
    },
}
_IN_PROGRESS: dict[str, Any] = {
    "type": "object",
    "description": "The operation is still running.",
    "properties": {"status": _text("Always inProgress.")},
}
_ERROR: dict[str, Any] = {
    "type": "object",
    "description": "Microsoft Graph's error envelope.",
    "properties": {
        "error": {
            "type": "object",
            "description": "The error: code, message and correlation IDs.",
            "properties": {
                "code": _text("Machine-readable error code, e.g. RequestInProgress or ExternalIdReused."),
                "message": _text("What went wrong and what to send instead."),
                "innerError": {
                    "type": "object",
                    "description": "Correlation IDs for support.",
                    "properties": {
                        "request-id": _text("The gateway's request ID."),
                        "client-request-id": _text("Your client-request-id, or the request ID."),
                        "date": _text("When the error happened (UTC)."),
                    },
                },
            },
        }
    },
}


def write(
    out: Path,
    host: str | None = None,
    entra_client_id: str | None = None,
    entra_resource: str | None = None,
    entra_tenant_id: str | None = None,
    auth: str = "both",
) -> None:
    """Write apiDefinition.swagger.json and apiProperties.json into `out` (created if missing)."""
    files = {
        "apiDefinition.swagger.json": swagger2(host, auth),
        "apiProperties.json": api_properties(host, entra_client_id, entra_resource, entra_tenant_id, auth),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, document in files.items():
        (out / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


# Swagger 2.0's `host`: a name and an optional port, no scheme or path (paconn's schema refuses anything else).
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


def gateway_host(value: str) -> str:
    """`--host`: a host name, or the gateway's https URL as azd prints it (GATEWAY_URL), reduced to its host."""
    text = value.strip()
    if "://" in text:
        url = urlsplit(text)
        if url.scheme.lower() != "https" or url.path not in ("", "/") or url.query or url.fragment or "@" in url.netloc:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not the gateway's https URL: give its host, e.g. contoso-meetings.azurewebsites.net"
            )
        text = url.netloc
    if not _HOST.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a host name: give the gateway's host, e.g. contoso-meetings.azurewebsites.net "
            "(no path: the gateway serves its routes at the root)"
        )
    return text.lower()


def client_id(value: str) -> str:
    """`--entra-client-id`: the app registration's Application (client) ID, a GUID (its name signs nobody in)."""
    if not re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", value.strip()):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a client ID: give the connector app's Application (client) ID, a GUID "
            "(Entra admin center > App registrations > the app > Overview)"
        )
    return value.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the custom connector's definition files.")
    parser.add_argument("--out", type=Path, default=Path("connector"), help="directory (default: connector)")
    parser.add_argument(
        "--host", type=gateway_host, help="a fixed gateway host (or its https URL); without it each connection names it"
    )
    parser.add_argument(
        "--entra-client-id", type=client_id, help="the app registration the Entra ID connection signs in with"
    )
    parser.add_argument("--entra-resource", help="the gateway's application ID URI (azd output ENTRA_APP_AUDIENCE)")
    parser.add_argument("--entra-tenant-id", help="the tenant of the connector's app registration (its id or domain)")
    parser.add_argument("--auth", choices=AUTH_OPTIONS, default="both", help="connection options (default: both)")
    args = parser.parse_args()
    entra = (args.entra_client_id, args.entra_resource, args.entra_tenant_id)
    if any(entra) and not all(entra):
        parser.error("--entra-client-id, --entra-resource and --entra-tenant-id go together")
    if args.auth == "function-key" and any(entra):
        parser.error("--auth function-key has no Entra ID connection to configure")
    write(args.out, args.host, args.entra_client_id, args.entra_resource, args.entra_tenant_id, args.auth)


if __name__ == "__main__":
    main()
