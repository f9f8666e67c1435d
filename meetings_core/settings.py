"""Gateway settings, read once from the environment and validated at start."""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth.policy import CallerRule, unreachable_callers
from .endpoints import (
    INSIGHTS_ENDPOINTS,
    LOOPBACK,
    connection_string_endpoint,
    connection_string_problem,
    insights_connection_pairs,
    insights_connection_problem,
    plain_http,
)
from .idempotency.entities import STORED_BYTES_LIMIT, largest_storable_body
from .schedule import schedule_problem
from .setting_names import unknown_settings

_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_HTTP_URL = re.compile(r"https?://[^/\s]+(/\S*)?")
_PARTNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,119}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Graph's API versions: the gateway adds the caller's to GRAPH_BASE_URL, so the base must not end with one.
_GRAPH_VERSION_SEGMENT = re.compile(r"/(v1\.0|beta)/?$", re.IGNORECASE)
AUTH_MODES = ("function-key", "entra", "hmac")
_WORKER_MODULES = ("azure_functions_worker", "azure_functions_worker_v2", "proxy_worker")
# 32 characters: a guessable or placeholder secret would make HMAC signatures forgeable.
MIN_PARTNER_SECRET_LENGTH = 32
# The least GRAPH_GRACE_SECONDS outside local development (docs/IDEMPOTENCY.md, time limits).
MIN_GRACE_SECONDS = 15
# Power Automate's HTTP action and connectors give up on a request after this long: CALLER_TIMEOUT_SECONDS' default.
CALLER_LIMIT_SECONDS = 120
# The engine's deadline for every answer is the caller's limit less this (checked before each step), leaving
# room for the host and the network.
ANSWER_MARGIN_SECONDS = 10
ANSWER_LIMIT_SECONDS = CALLER_LIMIT_SECONDS - ANSWER_MARGIN_SECONDS
# host.json's functionTimeout (150 s) ends an invocation after that, so an answer must come before it, with the
# same margin; the front end's own limit, 230 s (learn.microsoft.com/azure/azure-functions/functions-scale#timeout),
# is further. tests/test_settings.py reads host.json.
MAX_CALLER_TIMEOUT_SECONDS = 140
# The least GRAPH_DEADLINE_SECONDS outside local development: a token and a createOrGet take seconds.
MIN_DEADLINE_SECONDS = 5
# The longest lease: a crashed owner blocks its key at most this long (a longer one would hold it for days).
MAX_LEASE_SECONDS = 300


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseSettings):
    """Every environment variable the gateway reads (names are the upper-cased field names)."""

    # Empty variables count as unset, so a template can deploy every setting, optional ones blank.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    # The slowest client's limit: Power Automate 120 s; Graph SDKs 100 s (their HTTP client's default timeout).
    caller_timeout_seconds: float = Field(default=CALLER_LIMIT_SECONDS, ge=30, le=MAX_CALLER_TIMEOUT_SECONDS)

    graph_base_url: str = "https://graph.microsoft.com"
    graph_scope: str = "https://graph.microsoft.com/.default"
    # At least 1 s: an owner never calls Graph with less (engine MIN_GRAPH_SECONDS).
    graph_deadline_seconds: float = Field(default=30.0, ge=1, le=110)
    graph_grace_seconds: float = Field(default=15.0, gt=0, le=120)

    tables_connection_string: SecretStr | None = None
    tables_endpoint: str | None = None
    table_name: str = "meetingreservations"
    store_timeout_seconds: float = Field(default=5.0, ge=0.5, le=30)

    azure_client_id: str | None = None

    reservation_lease_seconds: float = Field(default=45.0, gt=0, le=MAX_LEASE_SECONDS)
    duplicate_wait_seconds: float = Field(default=50.0, ge=0, le=110)
    in_progress_answer: Literal["retry", "conflict"] = "retry"
    retention_days: int = Field(default=30, ge=1, le=3650)
    on_payload_mismatch: Literal["reject", "return-existing"] = "reject"
    replay_cache_size: int = Field(default=10_000, ge=0)
    max_body_bytes: int = Field(default=128 * 1024, ge=1024)
    # A body must arrive within this (slowloris): then 408, which Power Automate retries.
    body_timeout_seconds: float = Field(default=10.0, ge=0.5, le=60)
    # Unset: a random key kept in the reservations table (made once, shared by every instance).
    status_url_key: SecretStr | None = Field(default=None, min_length=32)
    status_url_ttl_seconds: float = Field(default=900.0, ge=10, le=86400)

    # Read by the Functions host through the timer binding expression %PURGE_SCHEDULE% (NCRONTAB).
    purge_schedule: str = "0 */30 * * * *"

    caller_auth: str = "function-key"
    entra_tenant_id: str | None = None
    entra_audience: str | None = None
    entra_authority: str = "https://login.microsoftonline.com"
    entra_required_role: str | None = None
    partner_secrets: dict[str, SecretStr] | None = None
    hmac_tolerance_seconds: float = Field(default=300.0, gt=0, le=3600)
    caller_policy: dict[str, CallerRule] | None = None
    # Function keys are checked by the Functions host; elsewhere (uvicorn, a container) nothing checks them.
    local_development: bool = False
    functions_worker_runtime: str | None = None  # set by the Functions host for its language worker

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    applicationinsights_connection_string: SecretStr | None = None
    # Set: metrics and traces also go over OTLP/HTTP; the exporter reads the other OTEL_* variables itself.
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("graph_base_url", "tables_endpoint", "entra_authority", "otel_exporter_otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.fullmatch(value):
            raise ValueError("must be an http(s) URL such as https://graph.microsoft.com")
        if value is not None and ("?" in value or "#" in value):
            raise ValueError("must be a base URL without a query (?) or fragment (#): paths are appended to it")
        return value.rstrip("/") if value else value

    @field_validator("graph_base_url")
    @classmethod
    def _graph_root(cls, value: str) -> str:
        # https://graph.microsoft.com/v1.0 (the SDKs' base URL) would send every call to /v1.0/v1.0/users/...
        if _GRAPH_VERSION_SEGMENT.search(value):
            raise ValueError(
                "must be Graph's root, such as https://graph.microsoft.com, without /v1.0 or /beta: the gateway "
                "adds the API version each request names"
            )
        return value

    @field_validator("entra_authority")
    @classmethod
    def _authority_host(cls, value: str) -> str:
        # MSAL's "authority" includes the tenant; here the gateway appends /<ENTRA_TENANT_ID>/... itself.
        if urlsplit(value).path not in ("", "/"):
            raise ValueError(
                "must be the sign-in host only, such as https://login.microsoftonline.com (no tenant or /v2.0): "
                "the gateway adds /<ENTRA_TENANT_ID>/v2.0 and the signing keys' path itself"
            )
        return value

    @field_validator("entra_tenant_id", "azure_client_id")
    @classmethod
    def _guid(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A domain name or an identity's name would pass until the first token: then every request fails.
        what = {"entra_tenant_id": "the tenant (directory) ID", "azure_client_id": "the managed identity's client ID"}
        if value is not None and not _GUID.fullmatch(value.strip()):
            raise ValueError(
                f"must be {what[str(info.field_name)]}, a GUID such as 72f988bf-0000-4000-8000-000000000001"
            )
        return value.strip() if value else value

    @field_validator("entra_audience")
    @classmethod
    def _audiences(cls, value: str | None) -> str | None:
        if value is not None and not any(part.strip() for part in value.split(",")):
            raise ValueError("must name the gateway's app ID URI or client ID (a comma-separated list is allowed)")
        return value

    @field_validator("purge_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if problem := schedule_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("status_url_key")
    @classmethod
    def _status_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Spaces around a pasted key count for nothing: 32 spaces would be a key anyone can guess.
        if value is not None and len(value.get_secret_value().strip()) < MIN_PARTNER_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_PARTNER_SECRET_LENGTH} characters, not counting spaces")
        return value

    @field_validator("tables_connection_string")
    @classmethod
    def _connection_string(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked now: the SDK reads a bad key only when it signs a request, and then every request fails.
        if value is not None and (problem := connection_string_problem(value.get_secret_value())):
            raise ValueError(problem)
        return value

    @field_validator("applicationinsights_connection_string")
    @classmethod
    def _insights_connection(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked now: the exporter raises a bare ValueError at start that names no setting.
        if value is not None and (problem := insights_connection_problem(value.get_secret_value())):
            raise ValueError(problem)
        return value

    @field_validator("caller_auth")
    @classmethod
    def _auth_modes(cls, value: str) -> str:
        modes = [m.strip() for m in value.split(",") if m.strip()]
        unknown = [m for m in modes if m not in AUTH_MODES]
        if not modes or unknown:
            raise ValueError(f"must be a comma-separated list of {', '.join(AUTH_MODES)}")
        return ",".join(modes)

    @property
    def longest_answer_seconds(self) -> float:
        """How long a duplicate that waited the whole wait needs to take over: the wait, the last poll, and an
        owner's step (its write and re-read, Graph's deadline, the completion and its re-read). The engine
        refuses a step that would end after ANSWER_LIMIT_SECONDS whatever the settings; this makes sure a
        takeover at the end of the wait still fits."""
        return self.duplicate_wait_seconds + self.graph_deadline_seconds + 5 * self.store_timeout_seconds

    @property
    def answer_limit_seconds(self) -> float:
        """Every answer is given by then, counted from the request's arrival: the caller's limit less a margin."""
        return self.caller_timeout_seconds - ANSWER_MARGIN_SECONDS

    @property
    def auth_modes(self) -> frozenset[str]:
        return frozenset(self.caller_auth.split(","))

    @property
    def in_functions_host(self) -> bool:
        """The host sets FUNCTIONS_WORKER_RUNTIME (an app setting on most plans); its Python worker imports
        one of these packages before loading function_app.py (Flex Consumption has no such app setting)."""
        return self.functions_worker_runtime is not None or any(name in sys.modules for name in _WORKER_MODULES)

    @field_validator("max_body_bytes")
    @classmethod
    def _storable_body(cls, value: int) -> int:
        # The reservation keeps the request for recovery; a body that could not be stored could never succeed.
        if value > (largest := largest_storable_body()):
            raise ValueError(
                f"must be at most {largest} bytes: a reservation keeps the request, compressed, in at most "
                f"{STORED_BYTES_LIMIT} bytes of Table Storage (14 properties of 64 KiB)"
            )
        return value

    @field_validator("partner_secrets")
    @classmethod
    def _partner_secrets(cls, value: dict[str, SecretStr] | None) -> dict[str, SecretStr] | None:
        for name, secret in (value or {}).items():
            if not _PARTNER_NAME.fullmatch(name):
                raise ValueError("partner names must be 1-64 letters, digits, '.', '_' or '-'")
            if len(secret.get_secret_value().strip()) < MIN_PARTNER_SECRET_LENGTH:
                # The message names the partner, never the secret.
                raise ValueError(
                    f"the secret of partner '{name}' is shorter than {MIN_PARTNER_SECRET_LENGTH} characters; "
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return value

    @field_validator("entra_required_role")
    @classmethod
    def _role_name(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_NAME.fullmatch(value):
            raise ValueError("must be one app role or scope name, such as MeetingGateway.Create")
        return value

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE_NAME.fullmatch(value):
            raise ValueError("must be 3-63 letters or digits, starting with a letter")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if (self.tables_connection_string is None) == (self.tables_endpoint is None):
            raise ValueError(
                "set exactly one of TABLES_CONNECTION_STRING (Azurite, local) "
                "or TABLES_ENDPOINT (Azure, reached with the managed identity)"
            )
        if self.graph_grace_seconds < MIN_GRACE_SECONDS and not self.local_development:
            raise ValueError(
                f"GRAPH_GRACE_SECONDS below {MIN_GRACE_SECONDS} s is allowed only with LOCAL_DEVELOPMENT=true: it is "
                "the time Graph keeps to finish a call the gateway gave up on before another request may reach it"
            )
        if self.graph_deadline_seconds < MIN_DEADLINE_SECONDS and not self.local_development:
            raise ValueError(
                f"GRAPH_DEADLINE_SECONDS below {MIN_DEADLINE_SECONDS} s is allowed only with LOCAL_DEVELOPMENT=true: "
                "a token and a createOrGet often take seconds, and a call cut short is an unknown outcome"
            )
        if self.reservation_lease_seconds < self.graph_deadline_seconds + self.graph_grace_seconds:
            raise ValueError(
                "RESERVATION_LEASE_SECONDS must be at least GRAPH_DEADLINE_SECONDS + GRAPH_GRACE_SECONDS, "
                "so that Graph has finished any call the gateway gave up on before another may start"
            )
        if self.longest_answer_seconds > self.answer_limit_seconds:
            raise ValueError(
                f"DUPLICATE_WAIT_SECONDS + GRAPH_DEADLINE_SECONDS + 5 x STORE_TIMEOUT_SECONDS is "
                f"{self.longest_answer_seconds:g} s: it must stay under {self.answer_limit_seconds:g} s "
                f"(CALLER_TIMEOUT_SECONDS {self.caller_timeout_seconds:g} s less {ANSWER_MARGIN_SECONDS} s) so a "
                "duplicate that waited can still take over and answer within the caller's limit"
            )
        if "entra" in self.auth_modes and not (self.entra_tenant_id and self.entra_audience):
            raise ValueError("CALLER_AUTH includes entra: set ENTRA_TENANT_ID and ENTRA_AUDIENCE")
        if "hmac" in self.auth_modes and not self.partner_secrets:
            raise ValueError('CALLER_AUTH includes hmac: set PARTNER_SECRETS to {"partner": "secret", ...}')
        self._no_collapsing_modes()
        self._no_plain_http()
        self._reachable_policy()
        return self

    def serving_problem(self) -> str | None:
        """Why these settings must not serve HTTP here, or None (the CLI, which serves nothing, skips this)."""
        if "function-key" in self.auth_modes and not (self.in_functions_host or self.local_development):
            return (
                "CALLER_AUTH is function-key but the gateway is not running in the Azure Functions host "
                "(FUNCTIONS_WORKER_RUNTIME is unset), so nothing would check function keys. Use entra or hmac, "
                "or set LOCAL_DEVELOPMENT=true on a development machine"
            )
        return None

    def _no_plain_http(self) -> None:
        """Tokens, signing keys and meetings cross these connections: plain http only on this machine or locally."""
        if self.local_development:
            return
        for name, url in self._remote_endpoints().items():
            if url is not None and plain_http(url):
                raise ValueError(
                    f"{name} must be an https URL: plain http is allowed only to {LOOPBACK} "
                    "or with LOCAL_DEVELOPMENT=true, because anyone on the network path could read or change "
                    "what crosses it"
                )

    def _remote_endpoints(self) -> dict[str, str | None]:
        tables = self.tables_connection_string
        table_endpoint = connection_string_endpoint(tables.get_secret_value()) if tables else None
        return {
            # The managed identity's token for Graph (OnlineMeetings.ReadWrite.All) goes with every call.
            "GRAPH_BASE_URL": self.graph_base_url,
            # Caller tokens are checked with the signing keys fetched from here: fetched in the clear, forgeable.
            "ENTRA_AUTHORITY": self.entra_authority if "entra" in self.auth_modes else None,
            "TABLES_ENDPOINT": self.tables_endpoint,
            "TABLES_CONNECTION_STRING (its table endpoint)": table_endpoint,
            # Collector API keys ride in OTEL_EXPORTER_OTLP_HEADERS, and spans name callers and organizers.
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otel_exporter_otlp_endpoint,
            # The same telemetry, with the managed identity's token for Azure Monitor.
            **self._insights_endpoints(),
        }

    def _insights_endpoints(self) -> dict[str, str | None]:
        value = self.applicationinsights_connection_string
        pairs = insights_connection_pairs(value.get_secret_value()) if value else None
        return {
            f"APPLICATIONINSIGHTS_CONNECTION_STRING (its {name})": (pairs or {}).get(name)
            for name in INSIGHTS_ENDPOINTS
        }

    def _reachable_policy(self) -> None:
        """Every CALLER_POLICY entry must be a caller some enabled mode can authenticate: a typo denies at run time."""
        partners = (self.partner_secrets or {}).keys()
        unreachable = unreachable_callers(self.caller_policy or {}, self.auth_modes, partners)
        if unreachable:
            raise ValueError(
                "CALLER_POLICY lists callers this gateway can never authenticate: "
                + "; ".join(f"entry '{caller_id}': {reason}" for caller_id, reason in unreachable.items())
            )

    def _no_collapsing_modes(self) -> None:
        """Refuse the combinations in which one caller could pass as another (docs/SECURITY.md)."""
        modes = self.auth_modes
        if "function-key" in modes and modes & {"entra", "hmac"}:
            raise ValueError(
                "CALLER_AUTH cannot combine function-key with entra or hmac: with function keys the Functions "
                "host demands a key from every caller, so any key holder could drop its token or signature "
                "and be the function-key caller, escaping its own policy. Run one gateway per mode"
            )
        if modes & {"entra", "hmac"} and self.caller_policy is None:
            raise ValueError(
                "CALLER_AUTH includes entra or hmac: set CALLER_POLICY to say which callers may use which "
                'organizers, e.g. {"hmac:acme": {"organizers": ["<organizer id>"]}}; without it every '
                "authenticated caller would reach every organizer"
            )


def load_settings() -> Settings:
    """Read and validate the settings, raising `SettingsError` that names the bad variable (a misspelt one too)."""
    problems = unknown_settings(os.environ, Settings.model_fields)
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            problems.append(f"{_setting_name(error['loc'])}: {error['msg']}")
    if problems:
        raise SettingsError("Invalid gateway settings: " + "; ".join(problems))
    return settings


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """`CALLER_POLICY['hmac:acme']['organizers']`: the variable, then where inside its JSON value."""
    if not loc:
        return "settings"
    return str(loc[0]).upper() + "".join(f"[{part!r}]" for part in loc[1:])


@functools.cache
def get_settings() -> Settings:
    """The worker's settings, read once."""
    return load_settings()


if __name__ == "__main__":
    # `make gateway` checks first: uvicorn's workers would print a traceback each for a bad setting, then hang.
    try:
        problem = load_settings().serving_problem()
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None
    if problem:
        raise SystemExit(f"Invalid gateway settings: {problem}")
