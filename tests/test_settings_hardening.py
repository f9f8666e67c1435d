"""Settings set carelessly stop the gateway at start, naming the variable: plain http to another machine, a
connection string the SDK would fail on at every request, CALLER_POLICY entries that can never match."""

from __future__ import annotations

import json

import pytest
from azure.data.tables import TableClient

from devstack.stack import TENANT, tables_connection_string
from meetings_core.endpoints import connection_string_endpoint, is_loopback
from meetings_core.settings import Settings, SettingsError, load_settings

HOSTED = {"TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true", "FUNCTIONS_WORKER_RUNTIME": "python"}
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SECRET = "a-partner-secret-of-32-characters!"
ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"
HMAC = {"CALLER_AUTH": "hmac", "PARTNER_SECRETS": json.dumps({"acme": SECRET})}
ENTRA = {"CALLER_AUTH": "entra", "ENTRA_TENANT_ID": TENANT, "ENTRA_AUDIENCE": "api://x"}


def _load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def _refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        _load(monkeypatch, env)
    return str(raised.value)


# 1. Plain http only to this machine -------------------------------------------------------------------------

REMOTE_HTTP = [
    ({"GRAPH_BASE_URL": "http://graph.microsoft.com"}, "GRAPH_BASE_URL"),
    ({**ENTRA, "CALLER_POLICY": "{}", "ENTRA_AUTHORITY": "http://login.example.com"}, "ENTRA_AUTHORITY"),
    ({"TABLES_CONNECTION_STRING": "", "TABLES_ENDPOINT": "http://acct.table.core.windows.net"}, "TABLES_ENDPOINT"),
    (
        {"TABLES_CONNECTION_STRING": f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey={KEY};EndpointSuffix=x"},
        "TABLES_CONNECTION_STRING",
    ),
    ({"TABLES_CONNECTION_STRING": f"AccountName=a;AccountKey={KEY};TableEndpoint=http://10.0.0.4/a"}, "TABLES_"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example.com:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    # Hosts that only look like loopback.
    ({"GRAPH_BASE_URL": "http://127.0.0.1@graph.example.com"}, "GRAPH_BASE_URL"),
    ({"GRAPH_BASE_URL": "http://localhost.example.com"}, "GRAPH_BASE_URL"),
    ({"GRAPH_BASE_URL": "http://127.0.0.1.nip.io"}, "GRAPH_BASE_URL"),
]


@pytest.mark.parametrize(("env", "name"), REMOTE_HTTP)
def test_plain_http_to_another_machine_is_refused_outside_local_development(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str
):
    message = _refused(monkeypatch, {**HOSTED, **env})
    assert name in message
    assert "must be an https URL" in message
    assert KEY not in message


@pytest.mark.parametrize(("env", "name"), REMOTE_HTTP[:6])
def test_local_development_may_use_plain_http_anywhere(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str):
    _load(monkeypatch, {**HOSTED, **env, "LOCAL_DEVELOPMENT": "true"})


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:7073", "http://127.8.9.10", "http://[::1]:7073/", "http://localhost:4318", "http://LOCALHOST"],
)
def test_plain_http_to_a_loopback_host_is_accepted_outside_local_development(monkeypatch: pytest.MonkeyPatch, url: str):
    settings = _load(monkeypatch, {**HOSTED, **ENTRA, "CALLER_POLICY": "{}"} | _every_url(url))
    assert settings.graph_base_url == url.rstrip("/")
    assert not settings.local_development


def _every_url(url: str) -> dict[str, str]:
    return {"GRAPH_BASE_URL": url, "ENTRA_AUTHORITY": url, "OTEL_EXPORTER_OTLP_ENDPOINT": url}


def test_the_stacks_that_tests_and_make_run_start_are_on_loopback(monkeypatch: pytest.MonkeyPatch):
    """devstack's emulators listen on 127.0.0.1, so even a gateway without LOCAL_DEVELOPMENT reaches them."""
    env = {
        **HOSTED,
        "GRAPH_BASE_URL": "http://127.0.0.1:7073",
        "TABLES_CONNECTION_STRING": tables_connection_string(10002),
    }
    assert _load(monkeypatch, env).tables_connection_string is not None
    assert is_loopback("http://[::1]:1")
    assert is_loopback("http://127.255.0.1")
    assert not is_loopback("http://[::2]")


# 2. The connection string -----------------------------------------------------------------------------------

BAD_CONNECTION_STRINGS = [
    # The reviewer's case: the SDK starts, then fails every request in its signing error path.
    (f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=not-base64{KEY[:20]};", "not base64"),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=;", "not a connection string"),
    ("AccountName=acct;TableEndpoint=https://acct.table.core.windows.net", "AccountKey, or SharedAccessSignature"),
    (f"AccountKey={KEY};TableEndpoint=https://acct.table.core.windows.net", "no AccountName"),
    ("SharedAccessSignature=sv=2019&sig=abc", "TableEndpoint, or AccountName"),
    (f"AccountName=a;AccountKey={KEY};TableSecondaryEndpoint=https://a-secondary.table.core.windows.net", "Endpoint"),
    (f"AccountName=a;AccountKey={KEY};AccountName=b", "not a connection string"),
    ("just some text", "not a connection string"),
    ("UseDevelopmentStorage=true ", "AccountKey, or SharedAccessSignature"),  # the SDK matches the exact string
]


@pytest.mark.parametrize(("value", "problem"), BAD_CONNECTION_STRINGS)
def test_a_connection_string_the_sdk_would_fail_on_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
):
    message = _refused(monkeypatch, {**HOSTED, "TABLES_CONNECTION_STRING": value})
    assert "TABLES_CONNECTION_STRING" in message
    assert problem in message
    assert KEY[:20] not in message
    assert "sig=abc" not in message


@pytest.mark.parametrize(
    "value",
    [
        "UseDevelopmentStorage=true",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net",
        f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY}",  # no suffix: the SDK uses https
        f"AccountName=acct;AccountKey={KEY}",
        f"AccountName=a;AccountKey={KEY};TableEndpoint=https://a.table.core.windows.net/;",
        "TableEndpoint=https://acct.table.core.windows.net;SharedAccessSignature=sv=2019&sig=abc",
        tables_connection_string(10002),
    ],
)
def test_good_connection_strings_start_and_the_endpoint_is_the_sdks(monkeypatch: pytest.MonkeyPatch, value: str):
    _load(monkeypatch, {**HOSTED, "TABLES_CONNECTION_STRING": value})
    sdk = TableClient.from_connection_string(value, "t")
    ours = connection_string_endpoint(value)
    assert sdk.scheme == ours.split(":")[0]
    assert sdk._primary_hostname.split(":")[0] in ours  # type: ignore[attr-defined]


# 5. CALLER_POLICY entries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "policy", "expected"),
    [
        # The reviewer's case: accepted, then every call was 403.
        (
            HMAC,
            {"hmac:acme": {"organizers": ["alice@contoso.com"], "versions": ["v1"]}},
            ["CALLER_POLICY['hmac:acme']['organizers']", "'alice@contoso.com'", "['versions']", "'v1'"],
        ),
        (HMAC, {"hmac:acme": {"organizers": [f"{ORGANIZER}\n"]}}, ["CALLER_POLICY['hmac:acme']['organizers']"]),
        (HMAC, {"hmac:acme": {"organizers": ["*"], "versions": ["V1.0"]}}, ["['versions']", "'v1.0', 'beta'"]),
        (HMAC, {"hmac:acme-corp": {"organizers": ["*"]}}, ["entry 'hmac:acme-corp'", "PARTNER_SECRETS has no partner"]),
        (HMAC, {"hmac:acme": {}, "entra:app": {}}, ["entry 'entra:app'", "CALLER_AUTH does not include entra"]),
        (HMAC, {"hmac:acme": {}, "acme": {}}, ["entry 'acme'", "caller ids are"]),
        (HMAC, {"hmac:": {}}, ["entry 'hmac:'"]),
        (ENTRA, {"function-key": {"organizers": ["*"]}}, ["entry 'function-key'", "does not include function-key"]),
        ({}, {"hmac:acme": {"organizers": ["*"]}}, ["entry 'hmac:acme'", "does not include hmac"]),
    ],
)
def test_caller_policy_entries_that_can_never_match_are_refused_naming_the_entry(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], policy: dict[str, object], expected: list[str]
):
    message = _refused(monkeypatch, {**HOSTED, **env, "CALLER_POLICY": json.dumps(policy)})
    assert "CALLER_POLICY" in message
    for part in expected:
        assert part in message
    assert SECRET not in message


def test_caller_policy_entries_every_mode_can_produce_are_accepted(monkeypatch: pytest.MonkeyPatch):
    policy = {
        "hmac:acme": {"organizers": [ORGANIZER.upper(), "*"], "versions": ["v1.0", "beta"]},
        "entra:00000000-0000-0000-0000-000000000001": {"organizers": [ORGANIZER], "versions": ["beta"]},
    }
    env = {**HOSTED, **HMAC, **ENTRA, "CALLER_AUTH": "hmac,entra", "CALLER_POLICY": json.dumps(policy)}
    settings = _load(monkeypatch, env)
    assert settings.caller_policy is not None
    assert settings.caller_policy["hmac:acme"].organizers == [ORGANIZER.upper(), "*"]
    fk = _load(monkeypatch, {**HOSTED, "CALLER_AUTH": "function-key", "CALLER_POLICY": '{"function-key": {}}'})
    assert fk.caller_policy is not None
