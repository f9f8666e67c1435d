"""Settings are validated at start, with a message naming the bad variable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import TENANT
from meetings_core.services import engine_config
from meetings_core.settings import (
    ANSWER_MARGIN_SECONDS,
    MAX_CALLER_TIMEOUT_SECONDS,
    SettingsError,
    load_settings,
)

BASE = {"TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true", "LOCAL_DEVELOPMENT": "true"}
SECRET = "a-partner-secret-of-32-characters!"
POLICY = '{"hmac:acme": {"organizers": ["*"]}}'
ENTRA = {"ENTRA_TENANT_ID": TENANT, "ENTRA_AUDIENCE": "api://x"}
HOSTED = {"LOCAL_DEVELOPMENT": "false", "FUNCTIONS_WORKER_RUNTIME": "python"}


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"GRAPH_BASE_URL": "graph.microsoft.com"}, "GRAPH_BASE_URL"),
        ({"TABLE_NAME": "bad-name"}, "TABLE_NAME"),
        ({"TABLES_ENDPOINT": "https://acct.table.core.windows.net"}, "TABLES_CONNECTION_STRING"),
        ({"GRAPH_DEADLINE_SECONDS": "41"}, "RESERVATION_LEASE_SECONDS"),
        ({"CALLER_AUTH": "function-key,magic"}, "CALLER_AUTH"),
        ({"CALLER_AUTH": "entra"}, "ENTRA_TENANT_ID"),
        ({"CALLER_POLICY": '{"x": {"organisers": []}}'}, "CALLER_POLICY"),
        ({"CALLER_AUTH": "hmac", "PARTNER_SECRETS": f'{{"acme": "{SECRET}"}}'}, "set CALLER_POLICY"),
        ({"CALLER_AUTH": "entra", **ENTRA}, "set CALLER_POLICY"),
        ({"CALLER_AUTH": "function-key,entra", **ENTRA, "CALLER_POLICY": POLICY}, "cannot combine"),
        ({"CALLER_AUTH": "hmac", "PARTNER_SECRETS": '{"acme": ""}', "CALLER_POLICY": POLICY}, "shorter than 32"),
        ({"CALLER_AUTH": "hmac", "PARTNER_SECRETS": '{"acme": "   "}', "CALLER_POLICY": POLICY}, "shorter than 32"),
        ({"CALLER_AUTH": "hmac", "PARTNER_SECRETS": f'{{"": "{SECRET}"}}', "CALLER_POLICY": POLICY}, "partner names"),
        ({"CALLER_AUTH": "hmac", "PARTNER_SECRETS": "{}", "CALLER_POLICY": POLICY}, "PARTNER_SECRETS"),
        ({"ENTRA_REQUIRED_ROLE": "two roles"}, "ENTRA_REQUIRED_ROLE"),
        ({"GRAPH_BASE_URL": "https://graph.microsoft.com\nx"}, "GRAPH_BASE_URL"),
        ({"TABLE_NAME": "table\n"}, "TABLE_NAME"),
        ({"LOCAL_DEVELOPMENT": "false", "FUNCTIONS_WORKER_RUNTIME": "python", "GRAPH_GRACE_SECONDS": "3"}, "below 15"),
        ({"GRAPH_GRACE_SECONDS": "20"}, "RESERVATION_LEASE_SECONDS"),
        ({"DUPLICATE_WAIT_SECONDS": "60"}, "DUPLICATE_WAIT_SECONDS + GRAPH_DEADLINE_SECONDS + 5 x"),
        ({"STORE_TIMEOUT_SECONDS": "7"}, "CALLER_TIMEOUT_SECONDS 120 s less 10 s"),
        # Above what a reservation can hold, compressed: such a request could never be stored (issue 19 item 4).
        ({"MAX_BODY_BYTES": str(4 * 1024 * 1024)}, "MAX_BODY_BYTES: Value error, must be at most 917187 bytes"),
        ({"MAX_BODY_BYTES": "917188"}, "MAX_BODY_BYTES"),
        ({"BODY_TIMEOUT_SECONDS": "0"}, "BODY_TIMEOUT_SECONDS"),
        # Issue 19 item 2: bounds that keep the lease and the answer-time rules meaningful.
        ({"RESERVATION_LEASE_SECONDS": "1e12"}, "RESERVATION_LEASE_SECONDS"),
        ({"RESERVATION_LEASE_SECONDS": "1e9"}, "RESERVATION_LEASE_SECONDS"),
        ({"RESERVATION_LEASE_SECONDS": "301"}, "RESERVATION_LEASE_SECONDS"),
        ({"GRAPH_DEADLINE_SECONDS": "0.5"}, "GRAPH_DEADLINE_SECONDS"),
        ({**HOSTED, "GRAPH_DEADLINE_SECONDS": "2"}, "GRAPH_DEADLINE_SECONDS below 5"),
        ({"GRAPH_GRACE_SECONDS": "1e6", "RESERVATION_LEASE_SECONDS": "300"}, "GRAPH_GRACE_SECONDS"),
    ],
)
def test_bad_settings_are_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str):
    for name, value in {**BASE, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert names in str(raised.value)


def test_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true")
    monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    settings = load_settings()
    assert settings.graph_base_url == "https://graph.microsoft.com"
    assert settings.table_name == "meetingreservations"
    assert settings.auth_modes == {"function-key"}
    assert settings.caller_policy is None
    assert not settings.local_development
    # The defaults fit the caller's limit with room: docs/IDEMPOTENCY.md, time limits.
    assert settings.longest_answer_seconds == 105
    assert settings.reservation_lease_seconds >= settings.graph_deadline_seconds + settings.graph_grace_seconds >= 45


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"LOCAL_DEVELOPMENT": "false"}, True),
        ({"LOCAL_DEVELOPMENT": "false", "FUNCTIONS_WORKER_RUNTIME": "python"}, False),
        ({"LOCAL_DEVELOPMENT": "true"}, False),
    ],
)
def test_function_keys_are_served_only_by_the_functions_host_or_locally(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: bool
):
    for name, value in {**BASE, **env}.items():
        monkeypatch.setenv(name, value)
    found = load_settings().serving_problem()
    assert (found is not None) == problem
    assert found is None or "LOCAL_DEVELOPMENT=true" in found


def test_one_mode_with_an_explicit_policy_is_accepted(monkeypatch: pytest.MonkeyPatch):
    for name, value in {**BASE, "CALLER_AUTH": "hmac", "PARTNER_SECRETS": f'{{"acme": "{SECRET}"}}'}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CALLER_POLICY", POLICY)
    settings = load_settings()
    assert settings.caller_policy is not None
    assert not settings.caller_policy["hmac:acme"].read_others


BAD = {"PATH": "/usr/bin:/bin", "GRAPH_BASE_URL": "nope"}


def _run(code: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *code], env=env, capture_output=True, text=True, timeout=60)


def test_create_app_raises_settings_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch):
    # An exception (not SystemExit): the Functions host reports its message when indexing fails.
    from meetings_core.http.app import create_app
    from meetings_core.settings import get_settings

    monkeypatch.setenv("GRAPH_BASE_URL", "nope")
    monkeypatch.setenv("TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="GRAPH_BASE_URL"):
            create_app()
    finally:
        get_settings.cache_clear()


def test_function_app_fails_indexing_with_the_setting_in_a_short_traceback():
    result = _run(["-c", "import function_app"], BAD)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("meetings_core.settings.SettingsError: Invalid gateway settings: GRAPH_BASE_URL")
    # from None: no pydantic internals chained, only the few frames from function_app.py to load_settings.
    assert "pydantic" not in result.stderr
    assert result.stderr.count('File "') <= 5


def test_settings_check_that_make_gateway_runs_first():
    bad = _run(["-m", "meetings_core.settings"], BAD)
    assert bad.returncode != 0
    assert "GRAPH_BASE_URL" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = _run(["-m", "meetings_core.settings"], {"PATH": "/usr/bin:/bin", **BASE})
    assert (good.returncode, good.stderr) == (0, "")
    recipe = re.search(r"^gateway:.*\n((?:\t.*\n)+)", (Path(__file__).parent.parent / "Makefile").read_text(), re.M)
    assert recipe
    lines = recipe.group(1).splitlines()
    assert "-m meetings_core.settings" in lines[0]
    assert "uvicorn" in lines[1]


@pytest.mark.parametrize(
    ("env", "answer_limit"),
    [
        ({}, 110),  # Power Automate's 120 s, the default
        ({"CALLER_TIMEOUT_SECONDS": "100", "DUPLICATE_WAIT_SECONDS": "35"}, 90),  # Graph SDKs' HTTP client: 100 s
        ({"CALLER_TIMEOUT_SECONDS": "140"}, 130),  # the most: host.json's functionTimeout is 150 s
    ],
)
def test_the_callers_limit_sets_the_engines_answer_deadline(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], answer_limit: float
):
    for name, value in {**BASE, **env}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.answer_limit_seconds == answer_limit
    assert engine_config(settings).answer_seconds == answer_limit
    assert settings.longest_answer_seconds <= answer_limit


@pytest.mark.parametrize(
    ("env", "names"),
    [
        # The defaults' longest path (wait 50 + deadline 30 + 5 x store 5 = 105 s) does not fit a 100 s client.
        ({"CALLER_TIMEOUT_SECONDS": "100"}, "CALLER_TIMEOUT_SECONDS"),
        ({"CALLER_TIMEOUT_SECONDS": "29"}, "CALLER_TIMEOUT_SECONDS"),
        ({"CALLER_TIMEOUT_SECONDS": "141"}, "CALLER_TIMEOUT_SECONDS"),
    ],
)
def test_a_callers_limit_the_other_settings_cannot_keep_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str
):
    for name, value in {**BASE, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert names in str(raised.value)


def test_the_longest_callers_limit_ends_before_the_functions_host_ends_the_invocation():
    timeout = json.loads((Path(__file__).parent.parent / "host.json").read_text())["functionTimeout"]
    hours, minutes, seconds = map(int, timeout.split(":"))
    assert hours * 3600 + minutes * 60 + seconds >= MAX_CALLER_TIMEOUT_SECONDS + ANSWER_MARGIN_SECONDS
