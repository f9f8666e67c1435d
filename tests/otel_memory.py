"""One in-memory OpenTelemetry SDK for the whole test process (the global providers can be set only once)."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()
_tracing = TracerProvider()
_tracing.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_tracing)
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


def collect() -> dict[str, list[tuple[dict[str, Any], float]]]:
    """One collection: each metric's data points, their attributes and values (a histogram's count).

    Read several metrics from one collection: SDKs before 1.45 report a gauge's value to one collection only."""
    data = READER.get_metrics_data()
    found: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "count", None)
                    value = float(value if value is not None else point.value)
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def points(name: str) -> list[tuple[dict[str, Any], float]]:
    """Each data point of metric `name` now: its attributes and its value (a histogram's count)."""
    return collect().get(name, [])


def totals(name: str, attribute: str) -> dict[str, float]:
    """Metric `name` summed by one attribute."""
    sums: dict[str, float] = {}
    for attributes, value in points(name):
        key = str(attributes.get(attribute))
        sums[key] = sums.get(key, 0) + value
    return sums
