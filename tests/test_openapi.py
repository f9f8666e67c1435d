"""The API descriptions agree with the pydantic contract and validate as OpenAPI 3 and Swagger 2.0."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from meetings_core.contract import CreateOrGetBody
from meetings_core.http.app import create_app
from meetings_core.openapi import openapi3, swagger2
from meetings_core.settings import Settings

CONNECTOR = Path(__file__).parent.parent / "connector"


def test_connector_is_the_generated_swagger2_and_validates():
    committed = json.loads((CONNECTOR / "apiDefinition.swagger.json").read_text())
    assert committed == swagger2(), "regenerate: python -m meetings_core.openapi --swagger2 > connector/..."
    validate(committed)


def test_connector_fields_match_the_contract_and_are_described():
    body = swagger2()["definitions"]["CreateOrGetBody"]
    aliases = {field.alias for field in CreateOrGetBody.model_fields.values()}
    assert set(body["properties"]) == aliases
    assert body["required"] == ["externalId"]
    for definition in swagger2()["definitions"].values():
        for name, prop in definition.get("properties", {}).items():
            assert prop.get("description") or "$ref" in prop, name  # $ref siblings are ignored in 2.0
    for path in swagger2()["paths"].values():
        for operation in path.values():
            assert operation["summary"]
            assert operation["description"]


def test_connector_auth_matches_properties():
    properties = json.loads((CONNECTOR / "apiProperties.json").read_text())["properties"]
    assert set(properties["connectionParameters"]) == set(swagger2()["securityDefinitions"])


async def test_openapi_json_is_served_and_valid():
    app = create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi3()
    validate(response.json())
