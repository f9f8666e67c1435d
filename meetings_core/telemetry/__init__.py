"""OpenTelemetry: spans, and the metrics named in `names` (docs/OPERATIONS.md draws and alerts on them)."""

from __future__ import annotations

from opentelemetry import trace

from .answers import observe, outcome_of
from .setup import configure_telemetry, flush, sdk_installed

tracer = trace.get_tracer("meetings_core")

__all__ = ["configure_telemetry", "flush", "observe", "outcome_of", "sdk_installed", "tracer"]
