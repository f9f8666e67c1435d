"""OpenTelemetry: a span per request and per Graph call, and outcome counters, with an in-memory SDK."""

from __future__ import annotations

import httpx
import pytest

from devstack.stack import LocalStack
from meetings_core.http.app import create_app
from meetings_core.settings import Settings
from meetings_core.telemetry import outcome_of
from tests.otel_memory import SPANS, points, totals
from tests.stackutil import body_for, create_url

pytestmark = pytest.mark.integration


def outcomes() -> dict[str, float]:
    return totals("gateway.requests", "gateway.outcome")


@pytest.mark.parametrize(
    ("status", "replayed", "code", "graph", "outcome"),
    [(201, False, None, None, "created"), (200, True, None, None, "replayed"), (200, False, None, None, "existing"),
     (202, False, None, None, "accepted"), (503, False, "RequestInProgress", None, "in_progress"),
     (409, False, "RequestInProgress", None, "in_progress"), (422, False, "ExternalIdReused", None, "conflicted"),
     (504, False, "GatewayTimeout", "unknown_outcome", "unknown_outcome"),
     (503, False, "ServiceUnavailable", "unknown_outcome", "unknown_outcome"),
     (503, False, "ServiceUnavailable", "throttled", "throttled"),
     (503, False, "ServiceUnavailable", "unavailable", "unavailable"),
     (503, False, "ServiceUnavailable", None, "unavailable"), (403, False, "Forbidden", "refused", "rejected"),
     (400, False, None, None, "rejected"), (502, False, None, None, "failed"),
     (500, False, None, None, "failed")],
)  # fmt: skip
def test_outcome_labels(status: int, replayed: bool, code: str | None, graph: str | None, outcome: str):
    assert outcome_of(status, replayed, code, graph) == outcome


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
    return {str(attributes.get("gateway.api_version")) for attributes, _ in points("gateway.requests")}
