"""The OpenAPI 3 description is served and valid (the connector's Swagger 2.0: tests/test_connector.py)."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate

from meetings_core.auth.hmac_signature import PARTNER_HEADER, SIGNATURE_HEADER
from meetings_core.http.app import create_app
from meetings_core.openapi import openapi3, openapi_for
from meetings_core.settings import Settings


async def test_openapi_json_is_served_and_valid():
    app = create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi_for(frozenset({"function-key"}))
    validate(response.json())


@pytest.mark.parametrize(
    ("auth", "needed"),
    [
        ("function-key", [{"functionKey": []}]),
        ("entra", [{"entra": []}]),
        ("hmac", [{"hmacPartner": [], "hmacSignature": []}]),
        ("entra,hmac", [{"entra": []}, {"hmacPartner": [], "hmacSignature": []}]),
    ],
)
async def test_the_document_says_how_the_deployment_authenticates_callers(
    monkeypatch: pytest.MonkeyPatch, auth: str, needed: list[dict[str, list[str]]]
):
    """A client generator or an API gateway importing the document learns the credentials CALLER_AUTH asks for;
    a signed status URL needs none (its query is its authorization)."""
    app = create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
    # The modes as the settings give them once validated (each mode's own settings are tested elsewhere).
    monkeypatch.setattr(Settings, "auth_modes", property(lambda self: frozenset(auth.split(","))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        document = (await client.get("/openapi.json")).json()
    validate(document)
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {name for requirement in needed for name in requirement}
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["security"] == ([{}, *needed] if path.startswith("/operations/") else needed), path
    if "hmac" in auth:
        assert schemes["hmacSignature"] == schemes["hmacSignature"] | {"in": "header", "name": SIGNATURE_HEADER}
        assert schemes["hmacPartner"]["name"] == PARTNER_HEADER
    assert "securitySchemes" not in openapi3()["components"]  # the shared base is never mutated
