"""Where signals go: Application Insights (the distro), OTLP (standard OTEL_* variables), both, or nowhere.

Without either, the OpenTelemetry API is a no-op and costs nothing: the SDK and the exporters are imported only
when one is configured (a cold start without them does not pay for them, tests/test_cold_imports.py).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from azure.core.settings import settings as azure_settings
from opentelemetry import metrics, trace

from ..settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor

SERVICE = "meeting-gateway"
_state = {"configured": False}


def configure_telemetry(settings: Settings) -> None:
    """Install exporters once per process; a second app in the same process shares them."""
    if _state["configured"]:
        return
    otlp = settings.otel_exporter_otlp_endpoint is not None
    if settings.applicationinsights_connection_string is None and not otlp:
        _pin_azure_tracing()
        return
    _state["configured"] = True
    azure_settings.tracing_enabled.unset_value()  # the Azure Monitor distro may turn Azure SDK spans on
    spans, readers = _otlp() if otlp else ([], [])
    if settings.applicationinsights_connection_string is not None:
        _azure_monitor(settings, spans, readers)
    else:
        _sdk(spans, readers)
    logging.getLogger("meetings_core").info(
        "telemetry exported",
        extra={"application_insights": settings.applicationinsights_connection_string is not None, "otlp": otlp},
    )


def sdk_installed() -> bool:
    """True when this process has an OpenTelemetry SDK provider for traces or metrics; without one, every
    span and instrument of the API is a no-op (that still costs a few microseconds each). About 1 µs."""
    # The getters first: they load a provider named by OTEL_PYTHON_*_PROVIDER. Whoever installed an SDK provider
    # imported its module, so asking sys.modules keeps a start without an exporter from importing the SDK.
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    tracing, metering = sys.modules.get("opentelemetry.sdk.trace"), sys.modules.get("opentelemetry.sdk.metrics")
    return (tracing is not None and isinstance(tracer_provider, tracing.TracerProvider)) or (
        metering is not None and isinstance(meter_provider, metering.MeterProvider)
    )


def _pin_azure_tracing() -> None:
    """Fix azure-core's tracing switch at the value the environment gives it now (off, unless set).

    Unpinned, every Table operation looks it (and the tracing implementation) up in the environment three
    times, in the client's decorator and its tracing policy, for spans that nothing would export.
    """
    azure_settings.tracing_enabled = azure_settings.tracing_enabled()


def _otlp() -> tuple[list[SpanProcessor], list[MetricReader]]:
    # Each exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) and OTEL_METRIC_EXPORT_INTERVAL itself.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return [BatchSpanProcessor(OTLPSpanExporter())], [PeriodicExportingMetricReader(OTLPMetricExporter())]


def _azure_monitor(settings: Settings, spans: list[SpanProcessor], readers: list[MetricReader]) -> None:
    """Traces, metrics and logs to Application Insights, authenticating with the managed identity."""
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry import configure_azure_monitor

    assert settings.applicationinsights_connection_string is not None
    configure_azure_monitor(
        connection_string=settings.applicationinsights_connection_string.get_secret_value(),
        credential=ManagedIdentityCredential(client_id=settings.azure_client_id),
        logger_name="meetings_core",
        span_processors=spans,
        metric_readers=readers,
    )


def _sdk(spans: list[SpanProcessor], readers: list[MetricReader]) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: SERVICE}))
    tracing = TracerProvider(resource=resource)
    for processor in spans:
        tracing.add_span_processor(processor)
    trace.set_tracer_provider(tracing)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def flush(timeout_millis: int = 5000) -> None:
    """Export what is pending now (a timer run may be the worker's last act before it is recycled)."""
    for provider in (metrics.get_meter_provider(), trace.get_tracer_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)
