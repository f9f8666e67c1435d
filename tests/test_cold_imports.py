"""A cold start loads only what the configured features need (bench/cold_start.py measures what that saves).

Each case imports `function_app` in a fresh interpreter with the Functions host's environment and nothing else,
and looks at `sys.modules`: a module imported at the top of any module on the way would show up here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HOST = {"FUNCTIONS_WORKER_RUNTIME": "python", "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true"}
AI = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-4000-8000-000000000000;"
    "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
}
OTLP = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
ENTRA = {
    "CALLER_AUTH": "entra",
    "ENTRA_TENANT_ID": "00000000-0000-0000-0000-00000000000a",
    "ENTRA_AUDIENCE": "api://gateway",
    "CALLER_POLICY": '{"entra:app": {"organizers": ["*"]}}',
}
# The authenticator as the first request builds it (services.build_authenticator), without a Table to reach.
AUTHENTICATOR = """
import httpx
from meetings_core.services import build_authenticator
build_authenticator(function_app.asgi.state.settings, httpx.AsyncClient())
"""
NEVER_AT_IMPORT = ["aiohttp", "meetings_core.maintenance", "meetings_core.stats", "meetings_core.openapi"]
NEVER_AT_IMPORT += ["meetings_core.cli"]
EXPORTERS = ["opentelemetry.sdk", "opentelemetry.exporter", "azure.monitor"]


def loaded(env: dict[str, str], then: str = "") -> set[str]:
    """The top-level names and packages in `sys.modules` after `import function_app` (and `then`)."""
    script = f"import os, sys\nimport function_app\n{then}\nprint(*sys.modules, sep='\\n', flush=True)\nos._exit(0)"
    shell = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**shell, **HOST, **env}, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    names = set(completed.stdout.split())
    return names | {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}


@pytest.fixture(scope="module")
def plain() -> set[str]:
    """Function keys, no exporter: the default deployment without Application Insights."""
    return loaded({}, AUTHENTICATOR)


@pytest.mark.parametrize("module", [*EXPORTERS, "jwt", *NEVER_AT_IMPORT])
def test_a_cold_start_without_exporters_or_entra_loads_none_of_them(plain: set[str], module: str):
    assert "meetings_core.services" in plain  # the probe did import the gateway and build the authenticator
    assert module not in plain


def test_otlp_loads_the_sdk_and_its_exporter_but_not_azure_monitor():
    modules = loaded(OTLP)
    assert {"opentelemetry.sdk", "opentelemetry.exporter.otlp"} <= modules
    assert "azure.monitor" not in modules


def test_application_insights_loads_the_distro():
    assert {"azure.monitor.opentelemetry", "opentelemetry.sdk"} <= loaded(AI)


def test_entra_mode_loads_pyjwt_when_the_authenticator_is_built_not_at_import():
    assert "jwt" not in loaded(ENTRA)
    assert "jwt" in loaded(ENTRA, AUTHENTICATOR)
