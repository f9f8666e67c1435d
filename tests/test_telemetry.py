"""OpenTelemetry: a span per request and per Graph call, and outcome counters, with an in-memory SDK."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack.stack import LocalStack
from meetings_core.http.app import create_app
from meetings_core.settings import Settings
from meetings_core.telemetry import outcome_of
from tests.stackutil import body_for, create_url

pytestmark = pytest.mark.integration

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()
_tracing = TracerProvider()
_tracing.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_tracing)
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


def outcomes() -> dict[str, int]:
    data = READER.get_metrics_data()
    counts: dict[str, int] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "gateway.requests":
                    for point in metric.data.data_points:
                        outcome = str(point.attributes["outcome"])
                        counts[outcome] = counts.get(outcome, 0) + int(point.value)
    return counts


@pytest.mark.parametrize(
    ("status", "replayed", "outcome"),
    [(201, False, "created"), (200, True, "replayed"), (200, False, "existing"), (409, False, "conflicted"),
     (422, False, "conflicted"), (503, False, "throttled"), (400, False, "rejected"), (502, False, "failed")],
)  # fmt: skip
def test_outcome_labels(status: int, replayed: bool, outcome: str):
    assert outcome_of(status, replayed) == outcome


async def test_requests_and_graph_calls_are_traced_and_counted(local_stack: LocalStack, monkeypatch):
    env = local_stack.gateway_env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
    app = create_app(
        Settings(
            graph_base_url=env["GRAPH_BASE_URL"],
            tables_connection_string=env["TABLES_CONNECTION_STRING"],
            local_development=True,
        )
    )
    body = body_for()
    SPANS.clear()  # the provider is process-wide: other tests' in-process apps record here too
    before = outcomes()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        assert (await client.post(create_url(""), json=body)).status_code == 201
        assert (await client.post(create_url(""), json=body)).status_code == 200
        assert (await client.post(create_url(""), json={})).status_code == 400
        for made_up in ("v9", "attacker-chosen"):  # path text never becomes a metric label
            assert (await client.post(create_url("", version=made_up), json=body)).status_code == 404
    await app.state.services.close()
    names = [span.name for span in SPANS.get_finished_spans()]
    assert names.count("gateway create_or_get") == 5
    assert names.count("graph createOrGet") == 1
    after = outcomes()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: v for k, v in delta.items() if v} == {"created": 1, "replayed": 1, "rejected": 3}
    assert version_labels() <= {"v1.0", "beta", "status", "other"}


def version_labels() -> set[str]:
    data = READER.get_metrics_data()
    return {
        str(point.attributes.get("api_version"))
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gateway.requests"
        for point in metric.data.data_points
    }
