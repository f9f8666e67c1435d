"""infra/modules/monitoring.bicep and its workbook: every metric, attribute and value they query is one the code
emits (meetings_core/telemetry/names.py), the resources use only properties of their published types, and the
thresholds docs/OPERATIONS.md explains are the template's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meetings_core.idempotency import store
from meetings_core.telemetry import names
from tests import bicep_rules as rules

ROOT = Path(__file__).parent.parent
MODULE = ROOT / "infra" / "modules" / "monitoring.bicep"
WORKBOOK = ROOT / "infra" / "modules" / "gateway-workbook.json"
RESOURCES = ROOT / "infra" / "modules" / "resources.bicep"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"

METRIC_NAMES = {signal.name for signal in names.METRICS}
ATTRIBUTES = {signal.name: set(signal.attributes) for signal in names.METRICS}
STORE_ERRORS = {name for name, value in vars(store).items() if isinstance(value, type) and issubclass(value, Exception)}
# The values each attribute may be compared with in a query.
VALUES: dict[str, set[str]] = {
    names.OUTCOME: set(names.OUTCOMES),
    names.PATH: set(names.PATHS),
    names.GRAPH_RESULT: set(names.GRAPH_RESULTS),
    names.WAIT_RESULT: set(names.WAIT_RESULTS),
    names.TAKEOVER_BY: set(names.TAKEOVER_BY_VALUES),
    names.ERROR_TYPE: STORE_ERRORS | {str(code) for code in range(400, 600)},
    names.STATUS: {str(code) for code in range(100, 600)},
}
TABLES = {"customMetrics", "dependencies"}


def workbook_queries(text: str) -> list[str]:
    items = json.loads(text)["items"]
    return [item["content"]["query"] for item in items if item["type"] == 3]


def alert_queries(bicep: str) -> list[str]:
    return re.findall(r"^\s*query: '((?:[^'\\]|\\.)*)'$", bicep, re.M)


def problems(query: str) -> list[str]:
    """What in one KQL query names a table, metric, attribute or value the code does not emit."""
    found = []
    tables = set(re.findall(r"(?:^|\(|union\s*\(?)\s*(\w+)\s*\n?\s*\|", query))
    found += [f"table {t}" for t in tables - TABLES]
    metrics = set(re.findall(r'name == "([^"]+)"', query))
    for group in re.findall(r"name in \(([^)]*)\)", query):
        metrics |= set(re.findall(r'"([^"]+)"', group))
    if "dependencies" in tables:
        spans = set(re.findall(r'dependencies\s*\|\s*where name == "([^"]+)"', query))
        found += [f"span {s}" for s in spans - set(names.SPANS)]
        metrics -= spans
    found += [f"metric {m}" for m in metrics - METRIC_NAMES]
    allowed = set().union(*(ATTRIBUTES.get(m, set()) for m in metrics)) if metrics else set()
    keys = set(re.findall(r'customDimensions\["([^"]+)"\]', query))
    found += [f"attribute {k}" for k in keys - allowed]
    aliases = dict(re.findall(r'(\w+) = to\w+\(customDimensions\["([^"]+)"\]\)', query))
    compared = re.findall(r'(\w+) (==|!=|startswith) "([^"]*)"', query)
    compared += re.findall(r'to\w+\(customDimensions\["([^"]+)"\]\) (==|!=) "([^"]*)"', query)
    compared += [(alias, "in", v) for alias, group in re.findall(r"(\w+) in \(([^)]*)\)", query)
                 for v in re.findall(r'"([^"]+)"', group)]  # fmt: skip
    for name, operator, value in compared:
        key = aliases.get(name, name)
        prefix = operator == "startswith"
        if key in VALUES and not any(v == value or (prefix and v.startswith(value)) for v in VALUES[key]):
            found.append(f"value {key}={value}")
    return found


QUERIES = [*workbook_queries(WORKBOOK.read_text()), *alert_queries(MODULE.read_text())]


def test_the_workbook_and_the_alerts_have_their_queries():
    assert len(workbook_queries(WORKBOOK.read_text())) == 11
    assert len(alert_queries(MODULE.read_text())) == 4


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.split("\n")[1][:60] if "\n" in q else q[:60])
def test_every_query_names_only_what_the_code_emits(query: str):
    assert problems(query) == []


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('customMetrics\n| where name == "gateway.request"', "metric gateway.request"),
        ('customMetrics\n| where name == "gateway.requests" | extend o = tostring(customDimensions["outcome"])',
         "attribute outcome"),
        ('customMetrics\n| where name == "gateway.requests" | extend o = tostring(customDimensions["gateway.outcome"])'
         ' | where o == "unknown"', "value gateway.outcome=unknown"),
        ('customMetrics | where name == "gateway.graph.call.duration" | where '
         'tostring(customDimensions["gateway.graph.result"]) == "timeout"', "value gateway.graph.result=timeout"),
        ('dependencies\n| where name == "graph call"', "span graph call"),
        ('AppMetrics\n| where Name == "gateway.requests"', "table AppMetrics"),
        ('customMetrics\n| where name == "gateway.lease.takeovers" | extend by = '
         'tostring(customDimensions["gateway.wait.result"])', "attribute gateway.wait.result"),
    ],
)  # fmt: skip
def test_the_check_rejects_a_drifted_name(query: str, problem: str):
    assert problem in problems(query)


def test_the_workbook_is_linked_to_the_function_app_and_queries_application_insights():
    workbook = rules.resource_body(MODULE.read_text(), "workbook")
    assert "sourceId: toLower(functionAppId)" in workbook
    assert "loadTextContent('gateway-workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId" in workbook
    items = [i for i in json.loads(WORKBOOK.read_text())["items"] if i["type"] == 3]
    assert all(i["content"]["crossComponentResources"] == ["__APP_INSIGHTS_ID__"] for i in items)
    module = RESOURCES.read_text().split("module monitoring 'monitoring.bicep' = {", 1)[1].split("\n}\n", 1)[0]
    assert "appInsightsId: appInsights.id" in module
    assert "functionAppId: app.id" in module


# Properties of each type, from Azure/bicep-types-az generated/*/types.md (applicationinsights 2023-06-01,
# commit 30c7a915; monitor 2023-12-01, commit d2ca63f4; monitor 2023-01-01, commit 54a4a303).
TOP = {"name", "location", "tags", "kind", "properties", "identity", "etag", "parent", "scope", "dependsOn"}
TYPES = {
    "Microsoft.Insights/workbooks@2023-06-01": TOP
    | {"category", "description", "displayName", "serializedData", "sourceId", "storageUri", "version"},
    "Microsoft.Insights/actionGroups@2023-01-01": TOP
    | {"groupShortName", "enabled", "emailReceivers", "emailAddress", "useCommonAlertSchema", "webhookReceivers"},
    "Microsoft.Insights/scheduledQueryRules@2023-12-01": TOP
    | {"actions", "actionGroups", "autoMitigate", "criteria", "allOf", "query", "timeAggregation",
       "metricMeasureColumn", "operator", "threshold", "failingPeriods", "numberOfEvaluationPeriods",
       "minFailingPeriodsToAlert", "description", "displayName", "enabled", "evaluationFrequency", "scopes",
       "severity", "windowSize"},
}  # fmt: skip


@pytest.mark.parametrize("symbol", ["actionGroup", "workbook", "alerts"])
def test_resources_use_only_properties_of_their_published_types(symbol: str):
    body = rules.resource_body(MODULE.read_text(), symbol)
    kind = re.search(r"'(Microsoft\.Insights/\w+@[\d-]+)'", body)
    assert kind is not None
    assert kind.group(1) in TYPES
    keys = set(re.findall(r"^\s*(\w+):", body.split("=", 1)[1], re.M))
    assert keys <= TYPES[kind.group(1)], keys - TYPES[kind.group(1)]


def test_the_type_check_rejects_an_unknown_property():
    body = rules.resource_body(MODULE.read_text(), "workbook").replace("sourceId:", "sourceResourceId:")
    keys = set(re.findall(r"^\s*(\w+):", body.split("=", 1)[1], re.M))
    assert "sourceResourceId" in keys - TYPES["Microsoft.Insights/workbooks@2023-06-01"]


def test_the_rules_feed_each_rule_field_into_the_alert_resource():
    fields = {"name", "displayName", "description", "severity", "query", "measure", "aggregation", "operator",
              "threshold", "windowSize", "frequency", "periods"}  # fmt: skip
    bicep = MODULE.read_text()
    alerts = rules.resource_body(bicep, "alerts")
    assert {f for f in fields if f"rule.{f}" in alerts} == fields
    rule_blocks = bicep.split("var rules = [", 1)[1].split("\n]\n", 1)[0].split("\n  }\n")
    assert all(set(re.findall(r"^    (\w+):", block, re.M)) == fields for block in rule_blocks if block.strip())


def threshold_defaults() -> dict[str, int]:
    block = MODULE.read_text().split("var defaultThresholds = {", 1)[1].split("}", 1)[0]
    return {k: int(v) for k, v in re.findall(r"^\s*(\w+): (\d+)", block, re.M)}


def test_operations_doc_explains_every_threshold_with_its_default():
    table = OPERATIONS.read_text().split("### Thresholds", 1)[1].split("\n## ", 1)[0]
    documented = {k: int(v) for k, v in re.findall(r"^\| `(\w+)` \| (\d+) \|", table, re.M)}
    assert documented == threshold_defaults()
    assert len(documented) == 6


# --- docs/OPERATIONS.md says what the code and the template do --------------------------------------------------


def doc_section(title: str) -> str:
    return OPERATIONS.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_operations_doc_lists_every_signal_as_declared():
    rows = re.findall(r"^\| `([\w.]+)` \| (\w+) \| (\S+) \|([^|]*)\|", doc_section("Signals"), re.M)
    documented = {name: (kind, unit, tuple(re.findall(r"`([\w.]+)`", attrs))) for name, kind, unit, attrs in rows}
    assert documented == {s.name: (s.kind, s.unit, s.attributes) for s in names.METRICS}


def test_operations_doc_lists_every_attribute_value():
    table = doc_section("Signals").split("Attribute values:", 1)[1]
    rows = dict(re.findall(r"^\| `([\w.]+)`(?: \(store\))? \| (.*) \|$", table, re.M))
    for key in (names.OUTCOME, names.PATH, names.GRAPH_RESULT, names.WAIT_RESULT, names.TAKEOVER_BY):
        listed = re.findall(r"(?:^|, )`(\w+)`", rows[key])
        assert sorted(listed) == sorted(VALUES[key]), key
    assert set(re.findall(r"`(\w+)`", rows[names.ERROR_TYPE])) == STORE_ERRORS - {"StoreError"}


def test_operations_doc_explains_each_chart_in_the_workbook_order_and_draws_it():
    titles = [i["content"]["title"] for i in json.loads(WORKBOOK.read_text())["items"] if i["type"] == 3]
    section = doc_section("The workbook")
    assert re.findall(r"^### (.+)$", section, re.M) == titles
    picture = section.split("```", 2)[1]
    assert [int(n) for n in re.findall(r"\| (\d+)\. ", picture)] == list(range(1, len(titles) + 1))


def test_operations_doc_lists_each_alert_rule():
    rows = re.findall(r"^\| ([^|`]+?) \| [^|]+ \| (\d) \|$", doc_section("Alerts"), re.M)
    bicep = MODULE.read_text()
    rules_in_bicep = re.findall(r"displayName: 'meeting-gateway: ([^']+)'\n.*\n\s+severity: (\d)", bicep)
    assert sorted(rows) == sorted(rules_in_bicep)


def test_runbook_commands_are_cli_commands():
    from meetings_core.cli import _parser

    commands = set(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    used = set(re.findall(r"python -m meetings_core\.cli (\w+)", doc_section("Runbook")))
    assert used == commands


def test_alert_email_and_thresholds_reach_the_module_from_azd():
    parameters = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL=}"
    assert parameters["alertThresholds"]["value"] == "${ALERT_THRESHOLDS}"  # an object: azd parses it as JSON
    main = (ROOT / "infra" / "main.bicep").read_text()
    assert re.search(r"^param alertEmail string = ''$", main, re.M)
    assert re.search(r"^param alertThresholds object = \{\}$", main, re.M)
    for source in (main, RESOURCES.read_text()):
        assert "    alertEmail: alertEmail\n    alertThresholds: alertThresholds\n" in source
    assert "var thresholds = union(defaultThresholds, alertThresholds)" in MODULE.read_text()
