"""OpenTelemetry: spans and outcome counters, exported to Application Insights when configured.

Without `APPLICATIONINSIGHTS_CONNECTION_STRING` the OpenTelemetry API is a no-op and costs nothing.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace

from .settings import Settings

tracer = trace.get_tracer("meetings_core")
_meter = metrics.get_meter("meetings_core")
_requests = _meter.create_counter(
    "gateway.requests", description="createOrGet requests by outcome: created, existing, replayed, ..."
)


def configure_telemetry(settings: Settings) -> None:
    """Export traces, metrics and logs to Application Insights, authenticating with the managed identity."""
    if settings.applicationinsights_connection_string is None:
        return
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=settings.applicationinsights_connection_string.get_secret_value(),
        credential=ManagedIdentityCredential(client_id=settings.azure_client_id),
        logger_name="meetings_core",
    )
    logging.getLogger("meetings_core").info("telemetry exported to Application Insights")


def outcome_of(status: int, replayed: bool) -> str:
    """The counter label for an answer."""
    if status == 201:
        return "created"
    if status == 200:
        return "replayed" if replayed else "existing"
    if status in (202, 409, 422):
        return "conflicted"
    if status in (429, 503, 504):
        return "throttled"
    return "rejected" if status < 500 else "failed"


def count_request(status: int, replayed: bool, api_version: str) -> None:
    _requests.add(1, {"outcome": outcome_of(status, replayed), "api_version": api_version})
