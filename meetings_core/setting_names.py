"""Environment variables named like gateway settings that are none: a misspelt setting would be ignored silently.

`ENTRA_REQUIRED_ROLES` (plural) would leave the role unchecked, `GRAPH_DEADLINE_SECOND` the deadline at its
default; pydantic-settings ignores names it does not know, so the gateway names them itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

# Prefixes only the gateway's settings use (Azure, the Functions host and OpenTelemetry set none of them).
GATEWAY_PREFIXES = (
    "GRAPH_", "TABLE_", "TABLES_", "STORE_", "RESERVATION_", "DUPLICATE_", "CALLER_", "IN_PROGRESS_",
    "STATUS_URL_", "RETENTION_", "ON_PAYLOAD_", "REPLAY_", "MAX_BODY_", "BODY_", "PURGE_", "ENTRA_",
    "PARTNER_", "HMAC_", "LOCAL_DEV",
)  # fmt: skip
# Variables of the same prefixes that are no settings: the deployment's azd outputs (infra/main.bicep), present
# where an operator runs the CLI after `eval "$(azd env get-values)"`.
NOT_SETTINGS = frozenset({"ENTRA_APP_CLIENT_ID", "ENTRA_APP_AUDIENCE"})
# OpenTelemetry's own variables (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT...) are read by the exporter, and resemble ours.
_STANDARD_PREFIXES = ("OTEL_",)
# A one- or two-letter slip (LOGLEVEL, CALER_POLICY) scores 0.94 or more; the platform's own variables score at
# most 0.85 against any setting (APPLICATIONINSIGHTS_AUTHENTICATION_STRING against ..._CONNECTION_STRING).
_TYPO_CUTOFF = 0.9


def unknown_settings(environ: Mapping[str, str], known: Collection[str]) -> list[str]:
    """One problem per variable that looks like a setting (its prefix, or a near miss of a name) but is none."""
    names = sorted({name.upper() for name in known})
    starts = {name[:3] for name in names}  # a slip in the first three letters is not looked for: it is cheap
    problems = []
    for variable in sorted(environ):
        upper = variable.upper()
        if upper in names or upper in NOT_SETTINGS or upper.startswith(_STANDARD_PREFIXES):
            continue
        near = _near_miss(upper, names) if upper[:3] in starts else None
        if near or upper.startswith(GATEWAY_PREFIXES):
            hint = f"did you mean {near}?" if near else "the settings are listed in README.md, Settings"
            problems.append(f"{variable}: is not a gateway setting, so it would be ignored; {hint}")
    return problems


def _near_miss(name: str, names: list[str]) -> str | None:
    # A ratio of 0.9 needs lengths within 1.23x of each other: the rest cannot match, so difflib never sees them.
    close = [n for n in names if min(len(n), len(name)) * 1.23 >= max(len(n), len(name))]
    if not close:
        return None
    import difflib  # only at start, and only for a candidate: not on every cold start's import path

    found = difflib.get_close_matches(name, close, n=1, cutoff=_TYPO_CUTOFF)
    return found[0] if found else None
