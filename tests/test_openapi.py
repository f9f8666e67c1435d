"""The OpenAPI 3 description is served and valid (the connector's Swagger 2.0: tests/test_connector.py)."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate

from meetings_core.http.app import create_app
from meetings_core.openapi import openapi3
from meetings_core.settings import Settings


async def test_openapi_json_is_served_and_valid():
    app = create_app(Settings(tables_connection_string="UseDevelopmentStorage=true", local_development=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi3()
    validate(response.json())
