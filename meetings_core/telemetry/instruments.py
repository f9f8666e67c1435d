"""The OpenTelemetry instruments, one per entry of `names.METRICS`, on the global meter provider."""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, _Gauge

from . import names

meter = metrics.get_meter("meetings_core")
# Semantic conventions' advice for HTTP durations, in seconds; the gateway answers within 120 s.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120)


def _histogram(signal: names.Signal) -> Histogram:
    return meter.create_histogram(
        signal.name, signal.unit, signal.description, explicit_bucket_boundaries_advisory=_DURATION_BUCKETS
    )


def _counter(signal: names.Signal) -> Counter:
    return meter.create_counter(signal.name, signal.unit, signal.description)


def _gauge(signal: names.Signal) -> _Gauge:
    return meter.create_gauge(signal.name, signal.unit, signal.description)


http_server_duration = _histogram(names.HTTP_SERVER_DURATION)
requests = _counter(names.REQUESTS)
http_client_duration = _histogram(names.HTTP_CLIENT_DURATION)
graph_call_duration = _histogram(names.GRAPH_CALL_DURATION)
duplicate_wait = _histogram(names.DUPLICATE_WAIT)
takeovers = _counter(names.TAKEOVERS)
keys_held = _counter(names.KEYS_HELD)
store_duration = _histogram(names.STORE_DURATION)
stuck_keys = _gauge(names.STUCK_KEYS)
stuck_oldest_age = _gauge(names.STUCK_OLDEST_AGE)
