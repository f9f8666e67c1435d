"""Every signal the gateway emits, by name, with the attributes it carries: the workbook and alerts query these.

OpenTelemetry semantic conventions name the HTTP and database ones; the others are the gateway's own
(`gateway.*`). Attribute values are from small fixed sets (or the caller ids the policy lists): no
externalId, organizer id or free text ever becomes a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]


# Attribute keys (semantic conventions first, then the gateway's).
METHOD = "http.request.method"
ROUTE = "http.route"
STATUS = "http.response.status_code"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
DB_SYSTEM = "db.system.name"
DB_OPERATION = "db.operation.name"
OUTCOME = "gateway.outcome"
PATH = "gateway.path"
CALLER = "gateway.caller"
API_VERSION = "gateway.api_version"
GRAPH_RESULT = "gateway.graph.result"
WAIT_RESULT = "gateway.wait.result"
TAKEOVER_BY = "gateway.takeover.by"

HTTP_SERVER_DURATION = Signal(
    "http.server.request.duration",
    "histogram",
    "s",
    "Time to answer each request (semantic conventions).",
    (METHOD, ROUTE, STATUS, ERROR_TYPE),
)
REQUESTS = Signal(
    "gateway.requests",
    "counter",
    "{request}",
    "Answers by outcome, the path the engine took, caller and API version.",
    (OUTCOME, PATH, CALLER, API_VERSION, STATUS),
)
HTTP_CLIENT_DURATION = Signal(
    "http.client.request.duration",
    "histogram",
    "s",
    "Each HTTP attempt at Graph, retries included (semantic conventions); 429s are attempts Graph throttled.",
    (METHOD, SERVER_ADDRESS, STATUS, ERROR_TYPE),
)
GRAPH_CALL_DURATION = Signal(
    "gateway.graph.call.duration",
    "histogram",
    "s",
    "One createOrGet call at Graph, its retries inside, by how it ended.",
    (GRAPH_RESULT, API_VERSION),
)
DUPLICATE_WAIT = Signal(
    "gateway.duplicate.wait.duration",
    "histogram",
    "s",
    "How long a duplicate waited for the owner's result, by how the wait ended.",
    (WAIT_RESULT,),
)
TAKEOVERS = Signal(
    "gateway.lease.takeovers",
    "counter",
    "{takeover}",
    "Reservations whose lease ended, taken over by a waiting duplicate or a status poll.",
    (TAKEOVER_BY,),
)
KEYS_HELD = Signal(
    "gateway.keys.held",
    "counter",
    "{key}",
    "Keys held reserved after an unknown Graph outcome, until their lease ends.",
    (API_VERSION,),
)
STORE_DURATION = Signal(
    "db.client.operation.duration",
    "histogram",
    "s",
    "Each reservation store operation (semantic conventions); error.type names a failure or a lost race.",
    (DB_SYSTEM, DB_OPERATION, ERROR_TYPE),
)
STUCK_KEYS = Signal(
    "gateway.reservations.stuck",
    "gauge",
    "{key}",
    "In-progress reservations whose lease has ended, counted by the purge timer.",
    (),
)
STUCK_OLDEST_AGE = Signal(
    "gateway.reservations.stuck.oldest_age",
    "gauge",
    "s",
    "Seconds since the lease of the oldest stuck reservation ended (0 when none), from the purge timer.",
    (),
)

METRICS = (
    HTTP_SERVER_DURATION,
    REQUESTS,
    HTTP_CLIENT_DURATION,
    GRAPH_CALL_DURATION,
    DUPLICATE_WAIT,
    TAKEOVERS,
    KEYS_HELD,
    STORE_DURATION,
    STUCK_KEYS,
    STUCK_OLDEST_AGE,
)

# Span names (Application Insights' `requests` and `dependencies` tables show them as `name`).
SPAN_REQUEST_PREFIX = "gateway "
SPAN_GRAPH = "graph createOrGet"
SPANS = (f"{SPAN_REQUEST_PREFIX}create_or_get", f"{SPAN_REQUEST_PREFIX}operation_status", SPAN_GRAPH)
# The purge timer's log line (the `traces` table), with its counts as custom dimensions.
PURGE_LOG_MESSAGE = "purge finished"
PURGE_LOG_FIELDS = ("expired", "abandoned", "skipped", "stuck", "stuck_oldest_age_seconds")

# The values each bounded attribute takes.
OUTCOMES = (
    "created",
    "existing",
    "replayed",
    "accepted",
    "in_progress",
    "conflicted",
    "unknown_outcome",
    "throttled",
    "unavailable",
    "rejected",
    "failed",
)
PATHS = ("owner", "replay", "waited", "takeover_duplicate", "takeover_poll", "none")
GRAPH_RESULTS = ("created", "existing", "throttled", "unavailable", "refused", "unknown_outcome")
WAIT_RESULTS = ("meeting", "accepted", "in_progress", "failed")
TAKEOVER_BY_VALUES = ("duplicate", "status_poll")
