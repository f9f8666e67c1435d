"""The contract as JSON Schema, and the API's title and description: what both renderings share.

The OpenAPI 3 document (`openapi.py`) and the custom connector's Swagger 2.0 (`connector.py`) each build on this
module and the contract, neither on the other.
"""

from __future__ import annotations

from typing import Any

from .contract import CreateOrGetBody

TITLE = "Teams meeting gateway"
DESCRIPTION = (
    "Creates a Microsoft Teams online meeting exactly once per external ID: the same request sent again, "
    "at the same time or later, returns the same meeting."
)


def request_schemas(ref_prefix: str) -> dict[str, Any]:
    """The contract's JSON schemas (camelCase, as Graph spells them), one per model, with refs under `ref_prefix`."""
    schema = CreateOrGetBody.model_json_schema(by_alias=True, ref_template=ref_prefix + "{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    definitions["CreateOrGetBody"] = schema
    for definition in definitions.values():
        for name, prop in definition.get("properties", {}).items():
            prop.setdefault("description", _describe_field(name))
    return definitions


def _describe_field(name: str) -> str:
    return {
        "externalId": "Your own unique ID for this meeting; the same ID always gives the same meeting. Required.",
        "startDateTime": "Start, ISO 8601 with an offset or Z (e.g. 2026-03-01T09:00:00Z). Default: now.",
        "endDateTime": "End, ISO 8601 with an offset or Z; needs startDateTime. Default: start + 1 hour.",
        "subject": "The meeting subject.",
        "participants": "The organizer and attendees.",
        "chatInfo": "The chat thread the meeting belongs to (for channel meetings).",
    }.get(name, f"The {name} property, as in Microsoft Graph.")
