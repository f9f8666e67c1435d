"""The custom connector: generated files committed, valid against paconn's schemas, usable in the designer."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from meetings_core.connector import (
    ENTRA_CLIENT_ID_UNSET,
    ENTRA_TENANT_UNSET,
    UNSET_HOST,
    api_properties,
    swagger2,
    title_case,
    write,
)
from meetings_core.contract import CreateOrGetBody
from tests.clients.custom_connector import Connection, ConnectorAction

CONNECTOR = Path(__file__).parent.parent / "connector"
SCHEMAS = CONNECTOR / "schemas"
TITLE_WORD = re.compile(r"(?:[A-Z][A-Za-z0-9-]*|ID|UPN|URL|\(Beta\)|a|an|and|as|of|or|the|to|with|by|from|in)")


def load_json_with_comments(path: Path) -> Any:
    """paconn's schema files carry `//` comments; drop them outside strings."""
    text = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*', lambda m: m.group(1) or "", path.read_text())
    return json.loads(text)


# paconn-apiProperties.schema.json is the published schema plus upstream's multi-auth additions
# (connectionParameterSets, GlobalPerConnector): not the file paconn ships. schemas/README.md lists each addition.
def swagger_validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(load_json_with_comments(SCHEMAS / "apiDefinition.swagger.schema.json"))


def properties_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load_json_with_comments(SCHEMAS / "paconn-apiProperties.schema.json"))


def test_committed_files_are_the_generated_ones(tmp_path: Path):
    write(tmp_path)
    for name in ("apiDefinition.swagger.json", "apiProperties.json"):
        assert (CONNECTOR / name).read_text() == (tmp_path / name).read_text(), (
            "regenerate: python -m meetings_core.connector --out connector"
        )


@pytest.mark.parametrize("auth", ["both", "function-key", "entra-id"])
@pytest.mark.parametrize("host", [None, "contoso-meetings.azurewebsites.net"])
def test_both_files_validate_against_paconns_schemas_and_as_swagger(host: str | None, auth: str):
    swagger_validator().validate(swagger2(host, auth))
    properties_validator().validate(api_properties(host, auth=auth))
    validate(swagger2(host, auth))


def test_the_schemas_reject_what_paconn_rejects():
    # Controls: the vendored schemas are strict enough to catch these.
    bad_swagger = swagger2() | {"host": "https://{host}"}
    assert not swagger_validator().is_valid(bad_swagger)
    broken = swagger2()
    broken["paths"]["/operations/{operationId}"]["get"]["x-ms-visibility"] = "hidden"
    assert not swagger_validator().is_valid(broken)
    assert not properties_validator().is_valid({"properties": {"iconBrandColor": "#000", "hostUrl": "x"}})
    oauth = api_properties()
    oauth["properties"]["connectionParameterSets"]["values"][1]["parameters"]["token"]["oAuthSettings"][
        "identityProvider"
    ] = "github"
    assert not properties_validator().is_valid(oauth)


def walk_fields(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every property under a schema, nested objects and array items included."""
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append((f"{path}{name}", prop))
        found += walk_fields(prop, f"{path}{name}.")
        if "items" in prop:
            found += walk_fields(prop["items"], f"{path}{name}[].")
    return found


def all_fields() -> list[tuple[str, dict[str, Any]]]:
    document = swagger2()
    fields = []
    for name, definition in document["definitions"].items():
        fields += walk_fields(definition, f"{name}.")
    for methods in document["paths"].values():
        for operation in methods.values():
            fields += [(f"{operation['operationId']}.{p['name']}", p) for p in operation["parameters"]]
            for status, response in operation["responses"].items():
                fields += [
                    (f"{operation['operationId']}.{status}.{h}", v) for h, v in response.get("headers", {}).items()
                ]
    return fields


def test_every_input_and_output_field_has_a_title_case_summary_and_a_description():
    fields = all_fields()
    assert len(fields) > 100
    for where, field in fields:
        assert field.get("description"), where
        summary = field.get("x-ms-summary", "")
        assert summary, where
        assert all(TITLE_WORD.fullmatch(word) for word in summary.split()), (where, summary)
        assert "$ref" not in field or where.endswith(".body"), where  # x-ms-* beside $ref would be dropped
    assert title_case("joinMeetingIdSettings") == "Join Meeting ID Settings"
    assert title_case("dialinUrl") == "Dial-In URL"


def test_visibility_puts_the_everyday_fields_first_and_identities_under_advanced():
    body = swagger2()["definitions"]["CreateOrGetBody"]["properties"]
    for name in ("externalId", "startDateTime", "endDateTime", "subject"):
        assert body[name]["x-ms-visibility"] == "important", name
    assert body["chatInfo"]["x-ms-visibility"] == "advanced"
    attendee = body["participants"]["properties"]["attendees"]["items"]["properties"]
    assert attendee["identity"]["x-ms-visibility"] == "advanced"
    assert "x-ms-visibility" not in attendee["upn"]
    identities = [p for w, p in walk_fields(attendee["identity"])]
    assert identities
    assert all(p.get("x-ms-visibility") == "advanced" for p in identities if p.get("type") == "object")


def test_v1_and_beta_have_their_own_operations_and_bodies():
    document = swagger2()
    v1 = document["paths"]["/v1.0/users/{userId}/onlineMeetings/createOrGet"]["post"]
    beta = document["paths"]["/beta/users/{userId}/onlineMeetings/createOrGet"]["post"]
    assert v1["x-ms-visibility"] == "important"
    assert "x-ms-api-annotation" not in v1
    assert beta["x-ms-visibility"] == "advanced"
    assert beta["x-ms-api-annotation"] == {"status": "Preview"}
    v1_participants = document["definitions"]["CreateOrGetBody"]["properties"]["participants"]["properties"]
    beta_participants = document["definitions"]["CreateOrGetBodyBeta"]["properties"]["participants"]["properties"]
    assert {"contributors", "producers"} & set(v1_participants) == set()
    assert {"contributors", "producers"} <= set(beta_participants)
    aliases = {field.alias for field in CreateOrGetBody.model_fields.values()}
    assert set(document["definitions"]["CreateOrGetBodyBeta"]["properties"]) == aliases
    assert document["definitions"]["CreateOrGetBody"]["required"] == ["externalId"]


def test_create_operations_send_prefer_respond_async_hidden_and_declare_202():
    for path in ("/v1.0/users/{userId}/onlineMeetings/createOrGet", "/beta/users/{userId}/onlineMeetings/createOrGet"):
        operation = swagger2()["paths"][path]["post"]
        prefer = next(p for p in operation["parameters"] if p["name"] == "Prefer")
        assert prefer["in"] == "header"
        assert prefer["x-ms-visibility"] == "internal"
        assert prefer["required"] is True
        assert prefer["default"] == "respond-async"
        assert set(operation["responses"]["202"]["headers"]) == {"Location", "Retry-After"}
    status = swagger2()["paths"]["/operations/{operationId}"]["get"]
    assert {"200", "202"} <= set(status["responses"])
    assert set(status["responses"]["202"]["headers"]) == {"Location", "Retry-After"}


def test_the_connector_model_sends_prefer_and_refuses_undeclared_fields():
    action = ConnectorAction(None, Connection("https://gw.example"))  # type: ignore[arg-type]
    request = action.build("CreateOrGetMeeting", {"userId": "u", "body": {"externalId": "x"}})
    assert request.headers["Prefer"] == "respond-async"
    assert request.headers["x-functions-key"] == "local-development-key"
    with pytest.raises(ValueError, match="contributors"):
        action.build(
            "CreateOrGetMeeting", {"userId": "u", "body": {"externalId": "x", "participants": {"contributors": []}}}
        )
    beta = action.build(
        "CreateOrGetMeetingBeta", {"userId": "u", "body": {"externalId": "x", "participants": {"contributors": []}}}
    )
    assert beta.url == "https://gw.example/beta/users/u/onlineMeetings/createOrGet"


def test_outputs_type_what_flows_use():
    meeting = swagger2()["definitions"]["OnlineMeeting"]["properties"]
    assert {"id", "joinWebUrl", "creationDateTime", "startDateTime", "endDateTime"} <= set(meeting)
    assert set(meeting["joinMeetingIdSettings"]["properties"]) >= {"joinMeetingId", "passcode"}
    assert "threadId" in meeting["chatInfo"]["properties"]
    assert {"conferenceId", "tollNumber", "dialinUrl"} <= set(meeting["audioConferencing"]["properties"])


def test_the_host_comes_from_the_connection_or_the_host_flag_never_a_working_placeholder():
    assert swagger2()["host"] == UNSET_HOST
    assert UNSET_HOST.endswith(".invalid")
    policies = api_properties()["properties"]["policyTemplateInstances"]
    assert [p["templateId"] for p in policies] == ["dynamichosturl", "setheader"]
    assert "@connectionParameters('hostName')" in policies[0]["parameters"]["x-ms-apimTemplateParameter.urlTemplate"]
    for option in api_properties()["properties"]["connectionParameterSets"]["values"]:
        assert option["parameters"]["hostName"]["uiDefinition"]["constraints"]["required"] == "true"
    fixed = "contoso-meetings.azurewebsites.net"
    assert swagger2(fixed)["host"] == fixed
    assert [p["templateId"] for p in api_properties(fixed)["properties"]["policyTemplateInstances"]] == ["setheader"]


def test_connections_are_function_key_or_entra_id():
    options = {o["name"]: o["parameters"] for o in api_properties()["properties"]["connectionParameterSets"]["values"]}
    assert options["function-key"]["api_key"]["type"] == "securestring"
    # Multi-auth: no securityDefinitions; the key travels in a setheader policy, as in Microsoft's certified
    # key-or-Entra connectors (certified-connectors/CognitiveServicesQuestionAnswering/apiProperties.json).
    assert "securityDefinitions" not in swagger2()
    assert swagger2()["security"] == []
    key_policy = api_properties()["properties"]["policyTemplateInstances"][1]["parameters"]
    assert key_policy["x-ms-apimTemplateParameter.name"] == "x-functions-key"
    assert key_policy["x-ms-apimTemplateParameter.value"] == "@connectionParameters('api_key','')"
    assert key_policy["x-ms-apimTemplate-policySection"] == "Request"
    token = options["entra-id"]["token"]
    assert token["type"] == "oauthSetting"
    assert token["oAuthSettings"]["identityProvider"] == "aad"
    assert token["oAuthSettings"]["clientId"] == ENTRA_CLIENT_ID_UNSET
    assert token["oAuthSettings"]["customParameters"]["tenantId"]["value"] == ENTRA_TENANT_UNSET != "common"
    chosen = api_properties(entra_tenant_id="contoso.onmicrosoft.com")["properties"]["connectionParameterSets"]
    assert chosen["values"][1]["parameters"]["token"]["oAuthSettings"]["customParameters"]["tenantId"] == {
        "value": "contoso.onmicrosoft.com"
    }
    assert (
        api_properties(entra_client_id="c1")["properties"]["connectionParameterSets"]["values"][1]["parameters"][
            "token"
        ]["oAuthSettings"]["clientId"]
        == "c1"
    )
    for parameters in options.values():  # multi-auth: every auth parameter must be required
        assert all(p["uiDefinition"]["constraints"]["required"] == "true" for p in parameters.values())


def test_icon_is_a_valid_230_pixel_png_and_the_readme_exists():
    data = (CONNECTOR / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, payload = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + payload) & 0xFFFFFFFF == crc
        chunks[kind] = chunks.get(kind, b"") + payload
        offset += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height) == (230, 230)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + width * 3)
    assert (depth, color) == (8, 2)
    readme = (CONNECTOR / "README.md").read_text()
    assert "paconn create" in readme
    assert "pac connector create" in readme


def test_single_auth_connectors_for_the_wizard_and_pac():
    key = api_properties(auth="function-key")["properties"]
    assert "connectionParameterSets" not in key
    assert set(key["connectionParameters"]) == {"hostName", "api_key"}
    assert [p["templateId"] for p in key["policyTemplateInstances"]] == ["dynamichosturl"]
    assert swagger2(auth="function-key")["securityDefinitions"] == {
        "api_key": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
    }
    entra = api_properties(auth="entra-id")["properties"]
    assert set(entra["connectionParameters"]) == {"hostName", "token"}
    assert swagger2(auth="entra-id")["security"] == [{"oauth2_auth": []}]


def test_out_may_name_a_folder_that_does_not_exist(tmp_path: Path):
    out = tmp_path / "build" / "connector"
    result = subprocess.run(
        [sys.executable, "-m", "meetings_core.connector", "--out", str(out), "--auth", "function-key"],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "apiProperties.json").read_text())["properties"]["connectionParameters"]["api_key"]


def test_entra_options_go_together(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "meetings_core.connector", "--out", str(tmp_path), "--entra-client-id", CLIENT_ID],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--entra-tenant-id go together" in result.stderr


CLIENT_ID = "5b1c0a2e-0000-4000-8000-00000000c11e"


def _generate(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meetings_core.connector", "--out", str(out), *args],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("given", ["meeting-gateway-connector", "api://meeting-gateway", "5b1c0a2e"])
def test_the_entra_client_id_must_be_the_apps_client_id(tmp_path: Path, given: str):
    """The app's name or its identifier URI was written as the OAuth client id: every sign-in failed (AADSTS700016)."""
    entra = ["--entra-tenant-id", "contoso.onmicrosoft.com", "--entra-resource", "api://meeting-gateway"]
    refused = _generate(tmp_path, "--entra-client-id", given, *entra)
    assert refused.returncode == 2
    assert "is not a client ID" in refused.stderr
    assert not (tmp_path / "apiProperties.json").exists()
    assert _generate(tmp_path, "--entra-client-id", CLIENT_ID, *entra).returncode == 0  # the control
    assert CLIENT_ID in (tmp_path / "apiProperties.json").read_text()


@pytest.mark.parametrize(
    "given",
    [
        "https://func-abc123.azurewebsites.net",
        "https://Func-abc123.azurewebsites.net/",
        " func-abc123.azurewebsites.net ",
    ],
)
def test_the_host_flag_takes_the_gateway_url_as_azd_prints_it(tmp_path: Path, given: str):
    """GATEWAY_URL (azd's output) is an https URL; written as the Swagger host it failed paconn's schema."""
    assert not swagger_validator().is_valid(swagger2("https://func-abc123.azurewebsites.net"))  # a URL is no host
    result = subprocess.run(
        [sys.executable, "-m", "meetings_core.connector", "--out", str(tmp_path), "--host", given],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    definition = json.loads((tmp_path / "apiDefinition.swagger.json").read_text())
    assert definition["host"] == "func-abc123.azurewebsites.net"
    swagger_validator().validate(definition)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("http://func-abc123.azurewebsites.net", "is not the gateway's https URL"),  # the connector sends https
        ("https://func-abc123.azurewebsites.net/api", "is not the gateway's https URL"),
        ("func-abc123.azurewebsites.net/api", "no path"),
        ("https://key@func-abc123.azurewebsites.net", "is not the gateway's https URL"),
    ],
)
def test_the_host_flag_refuses_what_is_no_host(tmp_path: Path, given: str, says: str):
    result = subprocess.run(
        [sys.executable, "-m", "meetings_core.connector", "--out", str(tmp_path), "--host", given],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert says in result.stderr
    assert not (tmp_path / "apiDefinition.swagger.json").exists()
