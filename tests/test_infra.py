"""infra/: rules that the Bicep compiler, azd and the Functions host enforce, checked here by rule (no Bicep compiler
installs on these machines), each with a bad snippet that it rejects; and checkov."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from meetings_core.settings import Settings
from tests import bicep_rules as rules

ROOT = Path(__file__).parent.parent
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
RESOURCES = INFRA / "modules" / "resources.bicep"
PARAMETERS = INFRA / "main.parameters.json"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Read by the code, intentionally not set by the template: the code's default is the deployed value. Change one per
# deployment with the gatewaySettings parameter (azd env set GATEWAY_SETTINGS '{"NAME": "value"}'), not by hand.
# infra/README.md shows this table; a test keeps the two equal.
LEFT_TO_DEFAULTS = {
    "GRAPH_BASE_URL": "Graph's global endpoint; national clouds change it",
    "GRAPH_SCOPE": "follows GRAPH_BASE_URL",
    "GRAPH_DEADLINE_SECONDS": "tuning; the lease and answer-time rules are checked against it at start",
    "GRAPH_GRACE_SECONDS": "15 s, the margin docs/IDEMPOTENCY.md argues for; lower only in tests",
    "TABLES_CONNECTION_STRING": "Azurite only: Azure uses TABLES_ENDPOINT with the managed identity; set both fails",
    "STORE_TIMEOUT_SECONDS": "tuning; part of the answer-time rule",
    "RESERVATION_LEASE_SECONDS": "tuning; at least GRAPH_DEADLINE_SECONDS + GRAPH_GRACE_SECONDS",
    "DUPLICATE_WAIT_SECONDS": "tuning; part of the answer-time rule",
    "CALLER_TIMEOUT_SECONDS": "120 s, Power Automate's limit; 100 for Graph SDK callers (part of the answer-time rule)",
    "IN_PROGRESS_ANSWER": "retry (503), which every client retries",
    "RETENTION_DAYS": "tuning",
    "ON_PAYLOAD_MISMATCH": "reject by default, the safe answer",
    "REPLAY_CACHE_SIZE": "tuning",
    "MAX_BODY_BYTES": "tuning; at most what a reservation can hold (checked at start)",
    "BODY_TIMEOUT_SECONDS": "10 s for the whole body, then 408",
    "ENTRA_AUTHORITY": "the global Entra endpoint; national clouds change it",
    "HMAC_TOLERANCE_SECONDS": "tuning",
    "LOG_LEVEL": "INFO",
    "STATUS_URL_KEY": "optional secret: unset, the gateway makes and shares a random key in its table",
    "STATUS_URL_TTL_SECONDS": "tuning",
    "ENTRA_REQUIRED_ROLE": "no role checked; set one for entra callers (docs/SECURITY.md)",
    "LOCAL_DEVELOPMENT": "false: in Azure the Functions host checks function keys",
    "FUNCTIONS_WORKER_RUNTIME": "set by the Functions host itself, never by the template",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "Application Insights in Azure; set it to also export OTLP to a collector",
}
# The Functions host's own settings, following the anchor template (Azure-Samples functions-quickstart-python-http-azd).
HOST_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# The constructs of issue 14, as they stood: each rule below must reject its snippet.
BAD_HASH_COMMENT = """resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  #checkov:skip=CKV_AZURE_35:reason
  #disable-next-line no-hardcoded-env-urls
  name: 'x'
}
"""
BAD_LOOP = """resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st'
}
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id'
}
var gatewaySettings = {
  TABLES_ENDPOINT: storage.properties.primaryEndpoints.table // 'a comment with for x in y:'
  TABLE_NAME: 'reservations'
}
var hostSettings = {
  AzureWebJobsStorage__clientId: identity.properties.clientId
}
var allSettings = union(gatewaySettings, hostSettings)
resource app 'Microsoft.Web/sites@2024-04-01' = {
#checkov:skip=CKV_AZURE_56:Authentication is the gateway's own (an apostrophe must not open a string).
  name: 'app'
  properties: {
    siteConfig: {
      appSettings: [for setting in items(allSettings): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}
"""
BAD_PARAMETERS = """{
  "parameters": {
    "callerPolicy": { "value": "${CALLER_POLICY=}" },
    "extraPolicy": { "value": "${EXTRA_POLICY}" },
    "tags": { "value": "${TAGS={}}" }
  }
}"""
BAD_PARAMETERS_BICEP = """@description('Per-caller policy as JSON; empty allows every authenticated caller.')
param callerPolicy string = ''
@description('More policy, as JSON.')
param extraPolicy string = ''
@description('Tags.')
param tags object = {}
"""
BAD_DOC = """Store the secret, then:

```sh
az functionapp config appsettings set -n "$app" -g "$rg" --settings "PARTNER_SECRETS=@Microsoft.KeyVault(...)"
az functionapp update -n "$app" -g "$rg" --set keyVaultReferenceIdentity=<identity resource id>
```
"""


def text(path: Path) -> str:
    return path.read_text()


def json_env_names() -> set[str]:
    """Settings read as JSON by pydantic-settings (dicts, lists, models): their variables hold JSON."""

    def complex_type(annotation: object) -> bool:
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            return any(complex_type(arg) for arg in typing.get_args(annotation) if arg is not type(None))
        origin = typing.get_origin(annotation) or annotation
        return origin in (dict, list, set, tuple) or (isinstance(origin, type) and issubclass(origin, BaseModel))

    return {name.upper() for name, field in Settings.model_fields.items() if complex_type(field.annotation)}


# --- 1. `#` lines -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.name)
def test_no_hash_line_but_the_three_pragmas(path: Path):
    assert rules.hash_lines(text(path)) == []


def test_hash_rule_rejects_a_hash_comment_and_keeps_pragmas():
    assert [v.line for v in rules.hash_lines(BAD_HASH_COMMENT)] == [2]


def test_checkov_skips_are_comments_with_a_reason():
    skips = [line for path in BICEP_FILES for line in text(path).splitlines() if "checkov:skip" in line]
    assert len(skips) > 10
    for line in skips:
        assert re.fullmatch(r"\s*//checkov:skip=CKV\w+:\S.{20,}", line), line


# --- 2. no `for` over deployment-time values (BCP178) --------------------------------------------------------------


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.name)
def test_no_loop_over_deployment_time_values(path: Path):
    assert rules.deployment_time_loops(text(path)) == []


def test_loop_rule_rejects_a_loop_over_a_variable_built_from_resource_properties():
    found = rules.deployment_time_loops(BAD_LOOP)
    assert [v.text for v in found] == ["appSettings: [for setting in items(allSettings): {"]


@pytest.mark.parametrize(
    "iterable",
    [
        "storage.properties.primaryEndpoints",
        "storage::blobs.id",
        "listKeys(storage.id, '2023-05-01').keys",
        "reference(storage.id).primaryEndpoints",
        "roles.outputs.names",
        "hosts",
        "union(hosts, [])",
    ],
)
def test_loop_rule_rejects_each_kind_of_deployment_time_value(iterable: str):
    snippet = BAD_LOOP.split("var allSettings")[0] + "var hosts = [identity.properties.principalId]\n"
    snippet += "module roles 'roles.bicep' = {\n  name: 'roles'\n}\n"
    snippet += f"var copies = [for x in {iterable}: x]\n"
    assert len(rules.deployment_time_loops(snippet)) == 1


def test_loop_rule_allows_loops_over_parameters_and_start_time_properties():
    snippet = "param names array\nresource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'st'\n}\n"
    snippet += "var names2 = [for n in names: '${n}-${st.name}']\nvar ids = [for n in [st.name, 'x']: n]\n"
    assert rules.deployment_time_loops(snippet) == []


def test_app_settings_are_one_appsettings_config_resource():
    for path in BICEP_FILES:
        assert not re.search(r"^\s*appSettings\s*:", text(path), re.M), path
    config = rules.resource_body(text(RESOURCES), "appSettings")
    assert "'Microsoft.Web/sites/config@" in config
    assert "name: 'appsettings'" in config
    assert "parent: app" in config


# --- 3. parameters azd passes ---------------------------------------------------------------------------------------


def test_parameters_that_hold_json_are_object_or_array_parameters():
    assert {"CALLER_POLICY", "PARTNER_SECRETS"} <= json_env_names()
    assert rules.json_parameter_problems(text(PARAMETERS), text(MAIN), json_env_names()) == []
    types = rules.bicep_params(text(MAIN))
    assert (types["callerPolicy"], types["gatewaySettings"]) == ("object", "object")
    assert re.search(r"^param callerPolicy object = \{\}$", text(MAIN), re.M)


def test_parameter_rule_rejects_json_in_string_parameters_and_defaults_in_object_ones():
    problems = rules.json_parameter_problems(BAD_PARAMETERS, BAD_PARAMETERS_BICEP, {"CALLER_POLICY"})
    assert [p.split(":")[0] for p in problems] == ["callerPolicy", "extraPolicy", "tags"]


def test_every_parameter_in_the_file_is_declared():
    declared = rules.bicep_params(text(MAIN))
    assert set(json.loads(text(PARAMETERS))["parameters"]) <= set(declared)


# --- 4. settings the code reads, and settings a provision would wipe ----------------------------------------------


def coverage_problems(settings: type[Settings], resources: str) -> list[str]:
    """Each setting the code reads must be set by the template or listed in LEFT_TO_DEFAULTS, and no more."""
    read = {name.upper() for name in settings.model_fields}
    owned = set(rules.object_keys(resources, "ownedGatewaySettings"))
    set_by_template = owned | set(rules.object_keys(resources, "hostVisibleDefaults"))
    required = {name.upper() for name, field in settings.model_fields.items() if field.is_required()}
    problems = [
        f"{name}: read by the code but neither set by the template nor left to its default: add it to "
        "ownedGatewaySettings in infra/modules/resources.bicep, or to LEFT_TO_DEFAULTS here and in "
        "infra/README.md, with the reason"
        for name in sorted(read - set_by_template - set(LEFT_TO_DEFAULTS))
    ]
    problems += [f"{name}: set by the template but never read" for name in sorted(set_by_template - read)]
    problems += [f"{name}: listed as defaulted but not read" for name in sorted(set(LEFT_TO_DEFAULTS) - read)]
    problems += [f"{name}: both set and defaulted" for name in sorted(set_by_template & set(LEFT_TO_DEFAULTS))]
    problems += [f"{name}: required, so it has no default" for name in sorted(required & set(LEFT_TO_DEFAULTS))]
    return problems


def test_every_setting_the_code_reads_is_set_by_the_template_or_left_to_its_default():
    assert coverage_problems(Settings, text(RESOURCES)) == []


def test_coverage_rule_fails_for_a_new_setting_nobody_sets_and_for_a_stale_one():
    class Extended(Settings):
        status_url_signing_key: str | None = None

    assert [p.split(":")[0] for p in coverage_problems(Extended, text(RESOURCES))] == ["STATUS_URL_SIGNING_KEY"]
    stale = text(RESOURCES).replace("  TABLE_NAME: tableName\n", "  TABLE_NAME: tableName\n  OLD_SETTING: 'x'\n")
    assert [p.split(":")[0] for p in coverage_problems(Settings, stale)] == ["OLD_SETTING"]


def test_host_visible_defaults_equal_the_code_defaults():
    for name, value in rules.object_keys(text(RESOURCES), "hostVisibleDefaults").items():
        assert value == f"'{Settings.model_fields[name.lower()].default}'"


def test_host_settings_follow_the_anchor_template():
    assert set(rules.object_keys(text(RESOURCES), "hostSettings")) == HOST_SETTINGS


def test_readme_lists_the_settings_left_to_defaults():
    readme = text(INFRA / "README.md")
    table = readme.split("## Settings left to the code's defaults", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", table, re.M)) == set(LEFT_TO_DEFAULTS)


def test_partner_secrets_are_a_key_vault_reference_resolved_with_the_identity():
    owned = rules.object_keys(text(RESOURCES), "ownedGatewaySettings")
    assert "@Microsoft.KeyVault(VaultName=${vault.name};SecretName=" in owned["PARTNER_SECRETS"]
    assert owned["PARTNER_SECRETS"].startswith("usesHmac ?")  # no reference to a secret that need not exist
    app = rules.resource_body(text(RESOURCES), "app")
    assert "keyVaultReferenceIdentity: identity.id" in app
    vault = rules.resource_body(text(RESOURCES), "vault")
    assert "enableRbacAuthorization: true" in vault
    reader = rules.resource_body(text(RESOURCES), "secretsUser")
    assert "scope: vault" in reader
    assert "principalId: identity.properties.principalId" in reader
    assert "roles.keyVaultSecretsUser" in reader
    config = rules.resource_body(text(RESOURCES), "appSettings")
    assert "secretsUser" in config.split("dependsOn", 1)[1]


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), INFRA / "README.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_doc_sets_what_a_provision_would_wipe(path: Path):
    assert rules.hand_set_settings(text(path)) == []


def test_doc_rule_rejects_hand_set_settings():
    assert [v.line for v in rules.hand_set_settings(BAD_DOC)] == [4, 5]


# --- 5. host.json ---------------------------------------------------------------------------------------------------


def test_host_records_successful_requests():
    assert rules.records_successful_requests(json.loads(text(ROOT / "host.json")))


def test_host_rule_rejects_error_level_request_records():
    assert not rules.records_successful_requests({"logging": {"logLevel": {"Host.Results": "Error"}}})
    assert not rules.records_successful_requests({"logging": {"logLevel": {"default": "Warning"}}})


# --- 6. Graph extension ---------------------------------------------------------------------------------------------

RELEASED_GRAPH = re.compile(r"br:mcr\.microsoft\.com/bicep/extensions/microsoftgraph/v1\.0:1\.0\.\d+")


def test_graph_extension_is_a_released_version():
    extensions = json.loads(text(INFRA / "bicepconfig.json"))["extensions"]
    assert RELEASED_GRAPH.fullmatch(extensions["microsoftGraphV1"])
    assert not RELEASED_GRAPH.fullmatch("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:0.2.0-preview")


def test_graph_permission_is_off_by_default():
    assert re.search(r"^param grantGraphPermission bool = false$", text(MAIN), re.M)
    parameters = json.loads(text(PARAMETERS))["parameters"]
    assert parameters["grantGraphPermission"]["value"] == "${GRANT_GRAPH_PERMISSION=false}"
    assert "module graphPermission 'graph-permission.bicep' = if (grantGraphPermission)" in text(RESOURCES)


# --- 7. host storage and the deployment container ------------------------------------------------------------------


def test_app_depends_on_the_deployment_container():
    app = rules.resource_body(text(RESOURCES), "app")
    assert "storage::blobs::deployments" in app.split("dependsOn:", 1)[1].split("]", 1)[0]
    assert "${storage.properties.primaryEndpoints.blob}${deploymentContainer}" in app


def test_host_storage_is_blob_only_so_the_host_never_tries_tables_it_cannot_reach():
    # The diagnostic-events writer derives a table endpoint from accountName; with the table role on one table
    # it gets 403s (azure-functions-host #10995). Blob endpoint only, as in the anchor: it disables itself once.
    host = rules.object_keys(text(RESOURCES), "hostSettings")
    assert not {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri"} & set(host)
    table_roles = [
        rules.resource_body(text(RESOURCES), name) for name in ("tableContributor", "deployerTableContributor")
    ]
    assert all("scope: storage::tables::reservations" in body for body in table_roles)


# --- code and checkov -----------------------------------------------------------------------------------------------


def test_the_code_reads_no_environment_variable_outside_settings():
    """Only the settings module reads the environment: pydantic-settings, and the names it would ignore."""
    settings = ROOT / "meetings_core" / "settings.py"
    sources = [p for p in (ROOT / "meetings_core").rglob("*.py") if p != settings]
    offenders = [str(p) for p in sources if re.search(r"os\.environ|getenv\(", p.read_text())]
    assert offenders == []
    assert len(sources) > 50  # the control: the package's modules were read


def test_checkov_passes():
    checkov = Path(sys.executable).with_name("checkov")
    result = subprocess.run(
        [str(checkov), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "--compact", "--quiet",
         # checkov's Bicep parser does not know the `extension` keyword; these files hold only Graph resources.
         "--skip-path", "graph-permission.bicep", "--skip-path", "entra-app.bicep"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert int(re.search(r"Passed checks: (\d+)", result.stdout).group(1)) > 10  # type: ignore[union-attr]
    assert "Failed checks: 0" in result.stdout
    assert "Parsing errors: " not in result.stdout or "Parsing errors: 0" in result.stdout


# --- 8. regions, the Entra app registration, the deployer's roles ------------------------------------------------

# Azure-Samples/functions-quickstart-python-http-azd infra/main.bicep at 7ed4638bc03858a3b2657f0dbbdd1db0af103ebb:
# the anchor template's list of regions offering Flex Consumption (eastus2euap, an early-access region, left out).
FLEX_REGIONS_OF_THE_ANCHOR = [
    "australiaeast", "australiasoutheast", "brazilsouth", "canadacentral", "centralindia", "centralus", "eastasia",
    "eastus", "eastus2", "eastus2euap", "francecentral", "germanywestcentral", "italynorth", "japaneast",
    "koreacentral", "northcentralus", "northeurope", "norwayeast", "southafricanorth", "southcentralus",
    "southeastasia", "southindia", "spaincentral", "swedencentral", "uaenorth", "uksouth", "ukwest", "westcentralus",
    "westeurope", "westus", "westus2", "westus3",
]  # fmt: skip


def allowed_values(source: str, param: str) -> list[str]:
    block = re.search(rf"@allowed\(\[(.*?)\]\)(?:(?!\nparam ).)*\nparam {param} ", source, re.S)
    assert block, param
    return re.findall(r"'([^']+)'", block.group(1))


def test_locations_are_the_flex_consumption_regions_and_azd_asks_for_one():
    allowed = allowed_values(text(MAIN), "location")
    assert allowed == sorted(set(FLEX_REGIONS_OF_THE_ANCHOR) - {"eastus2euap"})
    location = text(MAIN).split("\nparam location string", 1)[0].rsplit("\nparam ", 1)[1]
    assert re.search(r"@metadata\(\{\s*azd: \{\s*type: 'location'", location)


def test_the_deployer_holds_no_blob_role():
    # azd deploy posts the zip to https://<scm host>/api/publish with the deployer's ARM token (azure-dev
    # cli/azd/pkg/azsdk/funcapp_host_client.go); the platform writes the blob with the app's identity.
    source = text(RESOURCES)
    conditional = r"^resource (\w+) 'Microsoft.Authorization/roleAssignments@[^']+' = if \(!empty\(principalId\)"
    deployer_roles = [rules.resource_body(source, name) for name in re.findall(conditional, source, re.M)]
    assert len(deployer_roles) == 2
    assert not [body for body in deployer_roles if "storageBlobDataOwner" in body]
    assert (
        "= if (!empty(principalId) && usesHmac)" in source.split("resource deployerSecretsOfficer", 1)[1].split("\n")[0]
    )


def test_entra_app_registration_is_optional_and_feeds_the_audience():
    main = text(MAIN)
    assert re.search(r"^param createEntraApp bool = false$", main, re.M)
    assert "module entraApp 'modules/entra-app.bicep' = if (createEntraApp)" in main
    assert json.loads(text(PARAMETERS))["parameters"]["createEntraApp"]["value"] == "${CREATE_ENTRA_APP=false}"
    app = text(INFRA / "modules" / "entra-app.bicep")
    assert "appRoleAssignmentRequired: true" in app
    assert "identifierUris: [audience]" in app
    # A custom connector's client app asks for a delegated permission: the API must expose a scope.
    assert re.search(r"oauth2PermissionScopes: \[\s*\{[^]]*value: 'user_impersonation'", app)


async def test_the_template_created_app_accepts_its_own_v2_tokens():
    # requestedAccessTokenVersion 2: aud is the client id, never the identifier URI (Microsoft's access token
    # claims reference, aud). The ENTRA_AUDIENCE main.bicep passes must accept it.
    from devstack.identity_emulator import _Signer
    from meetings_core.auth.entra import EntraVerifier, JwksCache

    assert re.search(r"requestedAccessTokenVersion: 2\b", text(INFRA / "modules" / "entra-app.bicep"))
    found = re.search(r"entraAudience: createEntraApp \? '([^']+)' : entraAudience", text(MAIN))
    assert found, "entraAudience for createEntraApp is not an interpolated string"
    tenant, client_id, authority = "t-1", "0f0e0d0c-0000-4000-8000-000000000001", "https://login.example"
    audience = found.group(1).replace("${entraApp!.outputs.clientId}", client_id)
    audience = audience.replace("${entraApp!.outputs.audience}", f"api://{tenant}/meeting-gateway-x")
    signer = _Signer()
    keys = httpx.MockTransport(lambda _: httpx.Response(200, json={"keys": [signer.jwk()]}))
    claims = {"aud": client_id, "iss": f"{authority}/{tenant}/v2.0", "tid": tenant, "azp": "caller-app",
              # An app-only token: its oid and sub are both the caller's service principal (SECURITY.md).
              "oid": "caller-sp", "sub": "caller-sp",
              "exp": int(time.time()) + 600, "roles": ["MeetingGateway.Create"]}  # fmt: skip
    async with httpx.AsyncClient(transport=keys) as http:
        verifier = EntraVerifier(
            JwksCache(http, f"{authority}/keys"),
            tenant_id=tenant,
            audiences=[a.strip() for a in audience.split(",")],  # as services.build_authenticator splits it
            authority=authority,
        )
        caller = await verifier.verify(f"Bearer {signer.sign(claims)}")
    assert caller.id == "entra:caller-app"


@pytest.mark.parametrize("name", ["graph-permission.bicep", "entra-app.bicep"])
def test_files_checkov_skips_hold_only_graph_resources(name: str):
    source = text(INFRA / "modules" / name)
    types_ = re.findall(r"^resource \w+ '([^']+)'", source, re.M)
    assert types_
    assert all(t.startswith("Microsoft.Graph/") for t in types_)
