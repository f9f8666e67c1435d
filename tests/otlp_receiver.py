"""An OTLP/HTTP receiver for tests: decodes the protobuf metrics and traces a gateway process exports."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from devstack.stack import free_port

Attributes = dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> Attributes:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass
class Point:
    metric: str
    kind: str  # sum, histogram or gauge
    unit: str
    attributes: Attributes
    value: float  # a histogram's count


@dataclass
class OtlpReceiver:
    """Keeps the latest cumulative point per (metric, attributes), and every span's name and attributes."""

    port: int = field(default_factory=free_port)
    latest: dict[tuple[str, tuple[tuple[str, Any], ...]], Point] = field(default_factory=dict)
    spans: list[tuple[str, Attributes]] = field(default_factory=list)
    resources: list[Attributes] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by each export

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/metrics", self._metrics)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    async def _body(request: web.Request) -> bytes:
        raw = await request.read()
        return gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw

    async def _metrics(self, request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest.FromString(await self._body(request))
        for resource in export.resource_metrics:
            self.resources.append(_attributes(resource.resource.attributes))
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for raw in getattr(metric, kind).data_points:
                        attributes = _attributes(raw.attributes)
                        value = raw.count if kind == "histogram" else _number(raw)
                        point = Point(metric.name, kind, metric.unit, attributes, float(value))
                        self.latest[(metric.name, tuple(sorted(attributes.items())))] = point
        self._arrived.set()
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await self._body(request))
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend((span.name, _attributes(span.attributes)) for span in scope.spans)
        self._arrived.set()
        return web.Response(body=b"", content_type="application/x-protobuf")

    def points(self, metric: str, **attributes: Any) -> list[Point]:
        """Latest points of `metric` whose attributes include `attributes` (dots spelled as `__`)."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        return [
            p
            for p in self.latest.values()
            if p.metric == metric and all(p.attributes.get(k) == v for k, v in wanted.items())
        ]

    def total(self, metric: str, **attributes: Any) -> float:
        return sum(p.value for p in self.points(metric, **attributes))

    async def until(self, check: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until `check()` holds on what has arrived (exports are periodic)."""
        try:
            async with asyncio.timeout(within):
                while not check():
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError("the expected telemetry never arrived") from None


def _number(point: Any) -> float:
    return float(point.as_int if point.WhichOneof("value") == "as_int" else point.as_double)
