"""Signals in-process (an in-memory SDK): what the HTTP layer records for each answer, the Graph client's result
classes, the store wrapper, and the engine's notes on paths only a fake clock reaches cheaply."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from meetings_core.errors import GatewayError
from meetings_core.graph.client import GraphClient, GraphResult
from meetings_core.http.app import CREATE_ROUTE
from meetings_core.idempotency.cache import CompletedCache
from meetings_core.idempotency.engine import EngineConfig, IdempotencyEngine, RequestContext
from meetings_core.idempotency.keys import ReservationKey
from meetings_core.idempotency.records import Reservation, State
from meetings_core.idempotency.store import ReservationExists
from meetings_core.telemetry import observe
from meetings_core.telemetry.signals import path_of, request_signals
from meetings_core.telemetry.store import MeteredStore
from meetings_core.validation import validate_call
from tests.memory_store import MemoryStore
from tests.otel_memory import points

ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
URL = "https://graph.test/v1.0/users/u/onlineMeetings/createOrGet"


def counts(metric: str, **attributes: Any) -> float:
    wanted = {k.replace("__", "."): v for k, v in attributes.items()}
    return sum(v for a, v in points(metric) if all(a.get(k) == x for k, x in wanted.items()))


class Delta:
    """A metric's growth while the block runs (the SDK is process-wide and cumulative)."""

    def __init__(self, metric: str, **attributes: Any) -> None:
        self.metric, self.attributes = metric, attributes

    def __enter__(self) -> Delta:
        self.before = counts(self.metric, **self.attributes)
        return self

    def __exit__(self, *exc: object) -> None:
        self.value = counts(self.metric, **self.attributes) - self.before


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Graph:
    async def create_or_get(self, *args: Any, **kwargs: Any) -> GraphResult:
        return GraphResult(201, b'{"id": "m"}', "r")


def engine(store: MemoryStore, clock: Clock, wait: float = 3.0) -> IdempotencyEngine:
    config = EngineConfig(lease=timedelta(seconds=45), duplicate_wait_seconds=wait, retention=timedelta(days=1))
    return IdempotencyEngine(store, Graph(), config, CompletedCache(0), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def seed(store: MemoryStore, clock: Clock, *, lease_left: float) -> None:
    c = validate_call("v1.0", ORGANIZER, {"externalId": "order-1", "startDateTime": "2026-03-01T09:00:00Z"})
    store._commit(
        Reservation(
            key=c.key,
            fingerprint=c.fingerprint,
            state=State.IN_PROGRESS,
            api_version="v1.0",
            caller="function-key",
            created_at=clock(),
            owner="other",
            lease_until=clock() + timedelta(seconds=lease_left),
            request=json.dumps(c.body).encode(),
        )
    )


async def answer(eng: IdempotencyEngine, *, respond_async: bool = False) -> int:
    """What `_guard` does around the engine: observe, answer, describe."""
    c = validate_call("v1.0", ORGANIZER, {"externalId": "order-1", "startDateTime": "2026-03-01T09:00:00Z"})
    ctx = RequestContext(caller="function-key", client_request_id="c", respond_async=respond_async)
    with observe(CREATE_ROUTE, "v1.0") as seen:
        try:
            outcome = await eng.create_or_get(c, ctx)
            seen.of(outcome.status, replayed="Idempotent-Replayed" in outcome.headers)
        except GatewayError as error:
            seen.error_code = error.code
            seen.of(error.status, replayed=False)
    return seen.status


async def test_a_wait_that_runs_out_is_recorded_as_in_progress():
    store, clock = MemoryStore(), Clock()
    seed(store, clock, lease_left=40)
    with (
        Delta("gateway.duplicate.wait.duration", gateway__wait__result="in_progress") as waits,
        Delta("gateway.requests", gateway__outcome="in_progress", gateway__path="waited") as answers,
    ):
        assert await answer(engine(store, clock)) == 503
    assert (waits.value, answers.value) == (1, 1)


async def test_an_immediate_202_is_accepted_without_a_wait():
    store, clock = MemoryStore(), Clock()
    seed(store, clock, lease_left=40)
    with (
        Delta("gateway.duplicate.wait.duration") as waits,
        Delta("gateway.requests", gateway__outcome="accepted", gateway__path="none") as answers,
    ):
        assert await answer(engine(store, clock), respond_async=True) == 202
    assert (waits.value, answers.value) == (0, 1)


async def test_an_unexpected_error_counts_as_a_500():
    with (
        Delta("http.server.request.duration", http__response__status_code=500, error__type="500") as failed,
        pytest.raises(RuntimeError),
        observe(CREATE_ROUTE, "v1.0"),
    ):
        raise RuntimeError("a bug")
    assert failed.value == 1


def test_the_path_prefers_a_takeover_then_a_wait_then_a_replay():
    with request_signals() as signals:
        assert path_of(signals, replayed=False) == "none"
        signals.graph_result = "created"
        assert path_of(signals, replayed=False) == "owner"
        assert path_of(signals, replayed=True) == "replay"
        signals.wait_started = time.monotonic()
        assert path_of(signals, replayed=True) == "waited"
        signals.takeover_by = "status_poll"
        assert path_of(signals, replayed=False) == "takeover_poll"


class Tokens:
    async def get(self) -> str:
        return "token"


def graph_client(deadline: float = 2.5) -> GraphClient:
    return GraphClient(httpx.AsyncHTTPTransport(), "https://graph.test", Tokens(), deadline_seconds=deadline)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("responses", "result", "status"),
    [
        ([httpx.Response(201, json={"id": "m"})], "created", 201),
        ([httpx.Response(200, json={"id": "m"})], "existing", 200),
        ([httpx.Response(429, headers={"Retry-After": "5"})], "throttled", 503),
        ([httpx.Response(503, headers={"Retry-After": "5"})], "unavailable", 503),
        ([httpx.ConnectError("refused")], "unavailable", 503),
        ([httpx.Response(403, json={"error": {"code": "Forbidden", "message": "no policy"}})], "refused", 403),
        ([httpx.Response(500)], "unknown_outcome", 503),
        ([httpx.ReadTimeout("slow")], "unknown_outcome", 504),
    ],
)
async def test_graph_calls_are_classed_by_how_they_ended(responses: list[Any], result: str, status: int):
    with (
        respx.mock(assert_all_called=False) as mock,
        Delta("gateway.graph.call.duration", gateway__graph__result=result) as calls,
    ):
        mock.post(URL).mock(side_effect=responses * 3)
        try:
            answered = (await graph_client().create_or_get("v1.0", "u", {}, client_request_id="c")).status
        except GatewayError as error:
            answered, cause = error.status, error.__cause__
        else:
            cause = None
    assert (calls.value, answered) == (1, status)
    if result in ("throttled", "unavailable"):
        assert cause is not None  # the refusal's cause is kept


async def test_each_attempt_is_recorded_with_its_status_and_a_429_is_one():
    with (
        respx.mock as mock,
        Delta(
            "http.client.request.duration", http__response__status_code=429, server__address="graph.test"
        ) as throttled,
    ):
        mock.post(URL).mock(
            side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(201, json={})]
        )
        assert (await graph_client().create_or_get("v1.0", "u", {}, client_request_id="c")).status == 201
    assert throttled.value == 1


async def test_the_store_wrapper_times_each_operation_and_names_its_error():
    inner = MemoryStore()
    store = MeteredStore(inner)
    c = validate_call("v1.0", ORGANIZER, {"externalId": "order-2", "startDateTime": "2026-03-01T09:00:00Z"})
    record = Reservation(
        key=c.key, fingerprint=c.fingerprint, state=State.IN_PROGRESS, api_version="v1.0", caller="x",
        created_at=T0, owner="o", lease_until=T0,
    )  # fmt: skip
    with (
        Delta("db.client.operation.duration", db__operation__name="insert", error__type=None) as inserted,
        Delta("db.client.operation.duration", db__operation__name="insert", error__type="ReservationExists") as lost,
        Delta("db.client.operation.duration", db__operation__name="get", db__system__name="azure.tables") as read,
    ):
        await store.insert(record)
        with pytest.raises(ReservationExists):
            await store.insert(record)
        assert await store.get(ReservationKey(ORGANIZER, "order-2")) is not None
    assert (inserted.value, lost.value, read.value) == (1, 1, 1)


def test_otlp_goes_beside_application_insights_when_both_are_set(monkeypatch: pytest.MonkeyPatch):
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from meetings_core.settings import Settings
    from meetings_core.telemetry import setup

    seen: dict[str, Any] = {}
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: seen.update(kw))
    monkeypatch.setattr(setup, "_state", {"configured": False})
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    settings = Settings(
        tables_connection_string="UseDevelopmentStorage=true",
        applicationinsights_connection_string=connection,
        otel_exporter_otlp_endpoint="http://127.0.0.1:1",
    )
    setup.configure_telemetry(settings)
    assert seen["connection_string"] == connection
    assert [type(p) for p in seen["span_processors"]] == [BatchSpanProcessor]
    assert [type(r) for r in seen["metric_readers"]] == [PeriodicExportingMetricReader]
    for component in (*seen["span_processors"], *seen["metric_readers"]):
        component.shutdown()
    seen.clear()
    setup.configure_telemetry(settings)  # once per process: a second app shares the exporters
    assert seen == {}


def test_no_exporter_without_either_setting(monkeypatch: pytest.MonkeyPatch):
    from meetings_core.settings import Settings
    from meetings_core.telemetry import setup

    monkeypatch.setattr(setup, "_state", {"configured": False})
    monkeypatch.setattr(setup, "_sdk", lambda *a: pytest.fail("no exporter was asked for"))
    setup.configure_telemetry(Settings(tables_connection_string="UseDevelopmentStorage=true"))
    assert setup._state == {"configured": False}


def test_without_an_exporter_azure_core_tracing_is_read_once_not_per_request(monkeypatch: pytest.MonkeyPatch):
    """Pinned at startup (off here): Table operations stop reading it from the environment, and an exporter
    configured later lets the Azure Monitor distro turn Azure SDK spans on again."""
    from azure.core.settings import settings as azure_settings

    from meetings_core.settings import Settings
    from meetings_core.telemetry import setup

    monkeypatch.delenv("AZURE_TRACING_ENABLED", raising=False)
    monkeypatch.delenv("AZURE_SDK_TRACING_IMPLEMENTATION", raising=False)
    monkeypatch.setattr(setup, "_state", {"configured": False})
    try:
        setup.configure_telemetry(Settings(tables_connection_string="UseDevelopmentStorage=true"))
        monkeypatch.setenv("AZURE_TRACING_ENABLED", "true")
        assert azure_settings.tracing_enabled() is False  # not read from the environment any more
        monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: None)
        connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
        setup.configure_telemetry(
            Settings(
                tables_connection_string="UseDevelopmentStorage=true", applicationinsights_connection_string=connection
            )
        )
        assert azure_settings.tracing_enabled() is True  # the environment (or the distro) decides again
    finally:
        azure_settings.tracing_enabled.unset_value()
