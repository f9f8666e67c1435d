"""The custom connector in a flow, driven by connector/apiDefinition.swagger.json and apiProperties.json.

What it sends is exactly what the definition declares (https://learn.microsoft.com/connectors/custom-connectors/define-openapi-definition):
path parameters substituted, each declared header and query parameter the flow author filled in, and every
`x-ms-visibility: internal` parameter with its `default` (the designer hides it and always sends the
default); a body field the schema does not declare cannot be entered in the designer, so it is refused
here. The connection adds its security: a multi-auth connector's `setheader` policy sends the function-key
set's `api_key` (https://learn.microsoft.com/connectors/custom-connectors/policy-templates/setheader/setheader),
a single-auth one the header its `securityDefinitions` names. The `dynamichosturl` policy sends the request to
the connection's host (https://learn.microsoft.com/connectors/custom-connectors/policy-templates/dynamichosturl/dynamichosturl).

Around the call the flow runtime applies the same Default retry policy and asynchronous pattern as the
HTTP action (see `power_automate_http`). That a connector's Location poll goes through the connection and so
carries its security (`poll_headers`) is this model's assumption: no Microsoft page says either way (the
gateway's signed status URL needs no credential, so the flow finishes either way).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .power_automate_http import DEFAULT_PROFILE, FlowRuntime, RetryProfile
from .result import RunResult

CONNECTOR = Path(__file__).resolve().parents[2] / "connector"


def load() -> tuple[dict[str, Any], dict[str, Any]]:
    definition = json.loads((CONNECTOR / "apiDefinition.swagger.json").read_text())
    properties = json.loads((CONNECTOR / "apiProperties.json").read_text())
    return definition, properties


@dataclass
class Prepared:
    method: str
    url: str
    headers: dict[str, str]
    body: Any


@dataclass
class Connection:
    """One connection: its host (the dynamichosturl parameter) and the function-key parameter set."""

    base_url: str  # the scheme and host the policy's urlTemplate makes of the host parameter
    function_key: str = "local-development-key"


class ConnectorAction:
    """One connector operation as a flow step."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        connection: Connection,
        *,
        time_scale: float = 1.0,
        profile: RetryProfile = DEFAULT_PROFILE,
    ) -> None:
        self._client = client
        self._connection = connection
        self._time_scale = time_scale
        self._profile = profile
        self.definition, self.properties = load()

    def operation(self, operation_id: str) -> tuple[str, str, dict[str, Any]]:
        for path, methods in self.definition["paths"].items():
            for method, operation in methods.items():
                if operation["operationId"] == operation_id:
                    return method.upper(), path, operation
        raise KeyError(operation_id)

    def security_headers(self) -> dict[str, str]:
        """The function key, where the definition puts it: a setheader policy or the apiKey scheme."""
        for policy in self.properties["properties"].get("policyTemplateInstances", []):
            parameters = policy["parameters"]
            if policy["templateId"] == "setheader" and "@connectionParameters('api_key'" in str(
                parameters["x-ms-apimTemplateParameter.value"]
            ):
                return {parameters["x-ms-apimTemplateParameter.name"]: self._connection.function_key}
        scheme = self.definition["securityDefinitions"]["api_key"]
        assert scheme["in"] == "header"
        return {scheme["name"]: self._connection.function_key}

    def build(self, operation_id: str, inputs: dict[str, Any]) -> Prepared:
        """The request the connector sends for these designer inputs (parameter name -> value)."""
        method, path, operation = self.operation(operation_id)
        headers, query, body = dict(self.security_headers()), {}, None
        for parameter in operation["parameters"]:
            name, where = parameter["name"], parameter["in"]
            if parameter.get("x-ms-visibility") == "internal" and "default" in parameter:
                value = parameter["default"]
            elif name in inputs:
                value = inputs[name]
            elif parameter.get("required"):
                raise ValueError(f"{operation_id} needs {name}")
            else:
                continue
            if where == "path":
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            elif where == "header":
                headers[name] = str(value)
            elif where == "query":
                query[name] = str(value)
            elif where == "body":
                _check_declared(value, self._schema(parameter["schema"]), name)
                body = value
        url = httpx.URL(self._connection.base_url + self.definition["basePath"].rstrip("/") + path, params=query)
        return Prepared(method, str(url), headers, body)

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return dict(self.definition["definitions"][schema["$ref"].rsplit("/", 1)[1]])
        return schema

    async def run(self, operation_id: str, inputs: dict[str, Any]) -> RunResult:
        runtime = FlowRuntime(self._client, self._time_scale, self._profile)
        request = self.build(operation_id, inputs)
        try:
            response = await runtime.send(request.method, request.url, headers=request.headers, json=request.body)
            response = await runtime.follow(response, poll_headers=self.security_headers())
        except httpx.HTTPError:
            return RunResult(False, None, None, runtime.seen)
        ok = 200 <= response.status_code < 300 and response.status_code != 202
        return RunResult(ok, response.status_code, response.json(), runtime.seen)


def _check_declared(value: Any, schema: dict[str, Any], where: str) -> None:
    """The designer offers only declared fields: anything else cannot be sent."""
    if isinstance(value, dict):
        declared = schema.get("properties", {})
        for key, item in value.items():
            if key not in declared:
                raise ValueError(f"{where}.{key} is not in the connector definition")
            _check_declared(item, declared[key], f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _check_declared(item, schema.get("items", {}), where)
