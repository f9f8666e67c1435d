"""Values that used to start the gateway and then fail every request (or the purge, silently) stop it at start,
naming the variable: a tenant's domain name, MSAL's authority with the tenant in it, the Graph SDKs' base URL
with /v1.0, an identity's name for its client id, a schedule the Functions host cannot read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devstack.stack import TENANT
from meetings_core.endpoints import insights_connection_problem
from meetings_core.http.app import create_app
from meetings_core.schedule import schedule_problem
from meetings_core.setting_names import unknown_settings
from meetings_core.settings import Settings, SettingsError, load_settings

BASE = {"TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true", "FUNCTIONS_WORKER_RUNTIME": "python"}
ENTRA = {
    "CALLER_AUTH": "entra",
    "ENTRA_TENANT_ID": TENANT,
    "ENTRA_AUDIENCE": "api://meeting-gateway",
    "CALLER_POLICY": json.dumps({"entra:00000000-0000-0000-0000-000000000001": {"organizers": ["*"]}}),
}


def _load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


REFUSED = [
    # Microsoft's docs name tenants by domain too; tokens carry the GUID (tid, iss): every token would be 401.
    ({**ENTRA, "ENTRA_TENANT_ID": "contoso.onmicrosoft.com"}, "ENTRA_TENANT_ID", "GUID"),
    ({**ENTRA, "ENTRA_TENANT_ID": "common"}, "ENTRA_TENANT_ID", "GUID"),
    # MSAL's authority includes the tenant: the signing keys' URL would carry it twice, and every request be 503.
    ({**ENTRA, "ENTRA_AUTHORITY": f"https://login.microsoftonline.com/{TENANT}"}, "ENTRA_AUTHORITY", "host only"),
    ({**ENTRA, "ENTRA_AUTHORITY": f"https://login.microsoftonline.com/{TENANT}/v2.0"}, "ENTRA_AUTHORITY", "host only"),
    ({**ENTRA, "ENTRA_AUDIENCE": " , "}, "ENTRA_AUDIENCE", "app ID URI"),
    # The Graph SDKs' base URL: every call would go to /v1.0/v1.0/users/...
    ({"GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0"}, "GRAPH_BASE_URL", "without /v1.0 or /beta"),
    ({"GRAPH_BASE_URL": "https://graph.microsoft.com/beta/"}, "GRAPH_BASE_URL", "without /v1.0 or /beta"),
    ({"GRAPH_BASE_URL": "https://graph.microsoft.com?api-version=1"}, "GRAPH_BASE_URL", "without a query"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example.com#x"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "fragment"),
    # The identity's name or resource id instead of its client id: every token request would fail.
    ({"AZURE_CLIENT_ID": "id-meeting-gateway"}, "AZURE_CLIENT_ID", "GUID"),
    # A schedule the host cannot read leaves the purge timer in error while HTTP serves: nothing is purged.
    ({"PURGE_SCHEDULE": "every 30 minutes"}, "PURGE_SCHEDULE", "NCRONTAB"),
    ({"PURGE_SCHEDULE": "0 60 * * * *"}, "PURGE_SCHEDULE", "60 is outside 0-59"),
    ({"PURGE_SCHEDULE": "00:30:00"}, "PURGE_SCHEDULE", "TimeSpan"),
    # 32 spaces are 32 characters, and a key anyone can guess: signed status URLs could be forged.
    ({"STATUS_URL_KEY": " " * 40}, "STATUS_URL_KEY", "not counting spaces"),
]


@pytest.mark.parametrize(("env", "name", "says"), REFUSED, ids=[f"{n}-{i}" for i, (_, n, _) in enumerate(REFUSED)])
def test_a_value_that_would_fail_every_request_stops_the_gateway_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str, says: str
):
    with pytest.raises(SettingsError) as raised:
        _load(monkeypatch, {**BASE, **env})
    message = str(raised.value)
    assert message.startswith(f"Invalid gateway settings: {name}:")
    assert says in message


ACCEPTED = [
    ENTRA,
    {**ENTRA, "ENTRA_TENANT_ID": TENANT.upper(), "ENTRA_AUDIENCE": "api://meeting-gateway, 5b1c0a2e-0000-4000-8000-0"},
    {**ENTRA, "ENTRA_AUTHORITY": "https://login.microsoftonline.us/"},  # a national cloud
    {"GRAPH_BASE_URL": "https://graph.microsoft.us"},
    {"GRAPH_BASE_URL": "https://apim.contoso.com/graph"},  # a proxy under a path: the version still follows
    {"AZURE_CLIENT_ID": "5b1c0a2e-0000-4000-8000-00000000c11e"},
    {"PURGE_SCHEDULE": "0 */30 * * * *"},
    {"STATUS_URL_KEY": "k" * 32},
]


@pytest.mark.parametrize("env", ACCEPTED)
def test_the_controls_good_values_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    settings = _load(monkeypatch, {**BASE, **env})
    assert settings.graph_base_url.startswith("https://")


# Microsoft's NCRONTAB examples (learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-
# examples) and NCrontab's own rules (atifaziz/NCrontab CrontabFieldImpl: names by prefix, ranges either way).
@pytest.mark.parametrize(
    "schedule",
    [
        "0 */5 * * * *",
        "0 0 * * * *",
        "0 0 */2 * * *",
        "0 0 9-17 * * *",
        "0 30 9 * * *",
        "0 30 9 * * 1-5",
        "0 30 9 * Jan Mon",
        "5,8,10 * * * * *",
        "*/5 * * * *",  # five fields: the host reads them without seconds (CronSchedule.HasSeconds)
        "0 0 12 1 january-march sat",
        "0 0 17-9 * * *",
        "0  */30  *  *  *  *",
    ],
)
def test_schedules_the_host_reads_are_accepted(schedule: str):
    assert schedule_problem(schedule) is None


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("", "it has 0"),
        ("0 */30 * * * * *", "it has 7"),
        ("0 0 24 * * *", "hour field"),
        ("0 0 0 0 * *", "day field"),
        ("0 0 0 * 13 *", "month field"),
        ("0 0 0 * * 7", "day of week field"),
        ("0 0 0 * Jon *", "'Jon'"),
        ("0 */x * * * *", "step 'x'"),
        ("0 /5 * * * *", "minute field"),
        ("0 5- * * * *", "minute field"),
        ("0 1,,2 * * * *", "minute field"),
        ("0 \uff15 * * * *", "minute field"),  # a full-width digit
    ],
)
def test_schedules_the_host_refuses_are_named(schedule: str, says: str):
    problem = schedule_problem(schedule)
    assert problem is not None
    assert says in problem


# Misspelt settings: pydantic-settings ignores names it does not know, so these were silently dropped.
@pytest.mark.parametrize(
    ("variable", "says"),
    [
        ("ENTRA_REQUIRED_ROLES", "did you mean ENTRA_REQUIRED_ROLE?"),  # the role would go unchecked
        ("CALER_POLICY", "did you mean CALLER_POLICY?"),
        ("GRAPH_DEADLINE_SECOND", "did you mean GRAPH_DEADLINE_SECONDS?"),
        ("TABLE_ENDPOINT", "did you mean TABLES_ENDPOINT?"),
        ("loglevel", "did you mean LOG_LEVEL?"),
        ("GRAPH_API_VERSION", "README.md, Settings"),  # the version is each request's path
        ("STATUS_URL_SIGNING_KEY", "README.md, Settings"),
    ],
)
def test_a_misspelt_setting_stops_the_gateway_naming_it(monkeypatch: pytest.MonkeyPatch, variable: str, says: str):
    with pytest.raises(SettingsError) as raised:
        _load(monkeypatch, {**BASE, variable: "MeetingGateway.Create"})
    assert f"{variable}: is not a gateway setting" in str(raised.value)
    assert says in str(raised.value)
    assert "MeetingGateway.Create" not in str(raised.value)  # values are never quoted: they may be secrets


@pytest.mark.parametrize(
    "variable",
    [
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # the template sets it beside the connection string
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "AZURE_TENANT_ID",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "IDENTITY_ENDPOINT",
        "WEBSITE_SITE_NAME",
        "graph_base_url",  # settings are read case-insensitively
    ],
)
def test_the_platforms_own_variables_are_no_misspelt_settings(monkeypatch: pytest.MonkeyPatch, variable: str):
    _load(monkeypatch, {**BASE, variable: "https://graph.microsoft.com"})


def test_the_local_settings_example_names_only_settings_and_starts(monkeypatch: pytest.MonkeyPatch):
    values = json.loads((Path(__file__).parent.parent / "local.settings.json.example").read_text())["Values"]
    host_only = {"AzureWebJobsStorage", "AzureWebJobsFeatureFlags", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"}
    for name in set(values) - host_only:
        assert name.lower() in Settings.model_fields, name
    settings = _load(monkeypatch, values)
    assert settings.serving_problem() is None  # FUNCTIONS_WORKER_RUNTIME is set, as under `func start`


def test_the_operators_azd_environment_holds_no_misspelt_setting():
    """The CLI runs where `azd env get-values` may be exported: every azd parameter and output must pass."""
    infra = Path(__file__).parent.parent / "infra"
    outputs = re.findall(r"^output (\w+) ", (infra / "main.bicep").read_text(), re.M)
    parameters = re.findall(r"\$\{(\w+)", (infra / "main.parameters.json").read_text())
    assert "ENTRA_APP_AUDIENCE" in outputs  # the controls: both files were read
    assert "GATEWAY_SETTINGS" in parameters
    assert unknown_settings(dict.fromkeys([*outputs, *parameters], "x"), Settings.model_fields) == []


def test_opentelemetrys_own_variables_are_no_misspelt_settings(monkeypatch: pytest.MonkeyPatch):
    names = ["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"]
    _load(monkeypatch, {**BASE, **dict.fromkeys(names, "https://collector.example.com")})


IKEY = "0a0b0c0d-0000-4000-8000-00000000000a"
PORTAL = (  # as the Azure portal shows it
    f"InstrumentationKey={IKEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
    "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=11111111-0000-4000-8000-0"
)
INSIGHTS = [
    PORTAL,
    f"InstrumentationKey={IKEY}",
    f"instrumentationkey={IKEY};Authorization=ikey",
    "garbage",
    f"{PORTAL};",  # a trailing ';' makes an empty pair, which the exporter cannot split
    f"InstrumentationKey={IKEY.upper()}",
    "InstrumentationKey=",
    f"IngestionEndpoint=https://x.in.applicationinsights.azure.com/;InstrumentationKey={IKEY};Authorization=aad",
    f"InstrumentationKey={IKEY};IngestionEndpoint=https://x/?a=b=c",
]


@pytest.mark.parametrize("value", INSIGHTS)
def test_the_insights_connection_string_is_judged_as_the_azure_monitor_exporter_judges_it(
    monkeypatch: pytest.MonkeyPatch, value: str
):
    from azure.monitor.opentelemetry.exporter._connection_string_parser import ConnectionStringParser

    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)  # the parser reads it too
    try:
        ConnectionStringParser(value)
        exporter_accepts = True
    except ValueError:
        exporter_accepts = False
    assert (insights_connection_problem(value) is None) == exporter_accepts


@pytest.mark.parametrize("value", [v for v in INSIGHTS if insights_connection_problem(v)])
def test_a_bad_insights_connection_string_stops_the_app_naming_it(monkeypatch: pytest.MonkeyPatch, value: str):
    """Before, create_app failed in the exporter with a bare ValueError ("Invalid connection string")."""
    for name, setting in {**BASE, "LOCAL_DEVELOPMENT": "true", "APPLICATIONINSIGHTS_CONNECTION_STRING": value}.items():
        monkeypatch.setenv(name, setting)
    with pytest.raises(SettingsError, match=r"^Invalid gateway settings: APPLICATIONINSIGHTS_CONNECTION_STRING: "):
        create_app(load_settings())


def test_telemetry_to_azure_monitor_is_https_unless_loopback(monkeypatch: pytest.MonkeyPatch):
    plain = f"InstrumentationKey={IKEY};IngestionEndpoint=http://10.0.0.4/"
    with pytest.raises(SettingsError, match=r"APPLICATIONINSIGHTS_CONNECTION_STRING \(its ingestionendpoint\)"):
        _load(monkeypatch, {**BASE, "APPLICATIONINSIGHTS_CONNECTION_STRING": plain})
    _load(monkeypatch, {**BASE, "APPLICATIONINSIGHTS_CONNECTION_STRING": plain.replace("10.0.0.4", "127.0.0.1")})
