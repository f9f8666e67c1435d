"""Every resource in infra/ against Azure's and Microsoft Graph's published Bicep type definitions (vendored in
tests/bicep_types/ with their source commits): type@apiVersion, deploy scope, property paths, literal values and
enums. No Bicep compiler installs here; this is the check `bicep build` would make of types."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import bicep_rules as rules
from tests.bicep_reader import parse
from tests.bicep_typecheck import Registry, check_sources, check_tree, full_type

ROOT = Path(__file__).parent.parent
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
RESOURCES = INFRA / "modules" / "resources.bicep"
# Types the ops lane's infra/modules/monitoring.bicep uses (lanes agreement): vendored now so the test covers it.
MONITORING = [
    "Microsoft.Insights/workbooks@2023-06-01",
    "Microsoft.Insights/scheduledQueryRules@2023-12-01",
    "Microsoft.Insights/actionGroups@2023-01-01",
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def messages(problems: list) -> list[str]:
    return [p.message for p in problems]


def test_every_bicep_file_matches_the_published_types(registry: Registry):
    assert [str(p) for p in check_tree(INFRA, registry)] == []


def test_every_resource_in_infra_is_checked_against_a_vendored_type(registry: Registry):
    declared = {full_type(r) for path in BICEP_FILES for r in parse(path.read_text()).resources}
    assert len(declared) >= 12
    assert all(registry.get(name) is not None for name in declared), declared


def test_vendored_types_name_their_source_commit(registry: Registry):
    for name in registry.sources:
        source = registry.sources[name]
        assert source["repository"] in {"Azure/bicep-types-az", "microsoftgraph/msgraph-bicep-types"}
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
        assert re.fullmatch(r"generated/.+/types\.json", source["path"])
    assert set(MONITORING) <= set(registry.sources)


def test_graph_types_are_the_extension_version_bicepconfig_pins(registry: Registry):
    pinned = json.loads((INFRA / "bicepconfig.json").read_text())["extensions"]["microsoftGraphV1"]
    version = pinned.rsplit(":", 1)[1]
    graph_sources = {s["path"] for n, s in registry.sources.items() if n.startswith("Microsoft.Graph/")}
    assert graph_sources == {f"generated/microsoftgraph/microsoft.graph/v1.0/{version}/types.json"}


# --- the checker fails on what the compiler or ARM would reject ---------------------------------------------------

SITE = RESOURCES.read_text()


# (case, text to replace in resources.bicep, replacement, expected message part)
BREAKS = [
    (
        "invented",
        "http20Enabled: true",
        "http20Enabled: true\n      inventedSetting: true",
        "no property 'inventedSetting'",
    ),
    (
        "closed-enum",
        "type: 'UserAssigned'",
        "type: 'UserAssigned, SystemAssigned'",
        "app.identity.type: 'UserAssigned, S",
    ),
    ("open-enum", "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_4'", "'TLS1_4' is not one of the published"),
    ("discriminator", "name: 'appsettings'", "name: 'appSettings'", "'appSettings' is not one of 'appsettings'"),
    ("bool", "properties: { allow: false }", "properties: { allow: 'false' }", "allow: 'false' is not boolean"),
    ("typo", "allowBlobPublicAccess: false", "allowBlobPublicacess: false", "has no property 'allowBlobPublicacess'"),
    ("api-version", "'Microsoft.Web/sites@2024-04-01'", "'Microsoft.Web/sites@2024-13-01'", "Web/sites@2024-13-01"),
    ("child-type", "resource blobs 'blobServices'", "resource blobs 'blobService'", "storageAccounts/blobService@"),
    ("required", "  kind: 'StorageV2'\n", "", "storage: required property 'kind' missing"),
    ("read-only", "Application_Type: 'web'", "Application_Type: 'web'\n    AppId: 'x'", "AppId: read-only"),
]


@pytest.mark.parametrize(("old", "new", "expected"), [b[1:] for b in BREAKS], ids=[b[0] for b in BREAKS])
def test_checker_rejects(registry: Registry, old: str, new: str, expected: str):
    assert SITE.count(old) >= 1
    found = messages(check_sources({"resources.bicep": SITE.replace(old, new, 1)}, registry))
    assert any(expected in m for m in found), found


def test_checker_checks_both_literal_branches_of_a_ternary(registry: Registry):
    bad = SITE.replace("publicNetworkAccess: 'Enabled'", "publicNetworkAccess: empty(tags) ? 'Enabled' : 'Open'", 1)
    assert any("'Open' is not one of the published values" in m for m in messages(check_sources({"r": bad}, registry)))


def test_checker_knows_the_deploy_scope(registry: Registry):
    main = (INFRA / "main.bicep").read_text().replace("targetScope = 'subscription'", "targetScope = 'resourceGroup'")
    assert any("cannot be deployed at resourceGroup scope" in m for m in messages(check_sources({"m": main}, registry)))


def test_checker_checks_graph_extension_resources(registry: Registry):
    source = (INFRA / "modules" / "graph-permission.bicep").read_text()
    bad = source.replace("appId: graphAppId", "appID: graphAppId").replace(
        "principalId: principalId", "principal: principalId"
    )
    found = messages(check_sources({"g": bad}, registry))
    assert any("no property 'appID' (the type spells it appId)" in m for m in found), found
    assert any("no property 'principal'" in m for m in found), found
    assert any("required property 'principalId' missing" in m for m in found), found


def test_checker_covers_a_monitoring_module(registry: Registry):
    source = """param location string
resource alert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'a'
  location: location
  kind: 'LogAlerts'
  properties: {
    severity: 3
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    scopes: []
    criteria: { allOf: [ { query: 'x', timeAggregation: 'Counted', operator: 'GreaterThan', threshold: 0 } ] }
  }
}
resource group 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'g'
  location: 'global'
  properties: { groupShortName: 'gw', enabled: true, emailReceivers: [ { name: 'ops', emailAddress: 'a@b' } ] }
}
resource book 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid('w')
  location: location
  kind: 'shared'
  properties: { displayName: 'w', serializedData: '{}', category: 'workbook' }
}
"""
    found = messages(check_sources({"monitoring.bicep": source}, registry))
    assert any("alert.kind: 'LogAlerts' is not one of the published values" in m for m in found), found
    assert any("timeAggregation: 'Counted' is not one of" in m for m in found), found
    assert len(found) == 2, found


# --- a rule the types cannot state ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.name)
def test_no_site_config_property_that_flex_consumption_rejects(path: Path):
    assert rules.flex_site_config_problems(path.read_text()) == []


def test_flex_rule_rejects_ftps_state_which_the_type_allows(registry: Registry):
    bad = SITE.replace("minTlsVersion: '1.2'", "minTlsVersion: '1.2'\n      ftpsState: 'Disabled'", 1)
    assert check_sources({"r": bad}, registry) == []  # the published type has ftpsState ...
    assert [v.text for v in rules.flex_site_config_problems(bad)] == [
        "app.properties.siteConfig.ftpsState"
    ]  # ... ARM not


def test_reader_reads_what_a_monitoring_module_may_hold(registry: Registry):
    source = """param location string
param names array
var base = { enabled: true }
resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: 'log-x'
  scope: resourceGroup()
}
@batchSize(1)
resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for (name, i) in names: if (!empty(name)) {
  name: 'alert-${name}'
  location: location
  kind: 'LogAlert'
  properties: {
    ...base
    severity: i
    scopes: [workspace.id]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
            requests | where success == false // not a comment
            | summarize count()
          '''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: map(names, n => resourceId('Microsoft.Insights/actionGroups', n)) }
  }
}]
"""
    assert check_sources({"monitoring.bicep": source}, registry) == []
    broken = source.replace("operator: 'GreaterThan'", "operator: 'Above'")
    assert any("'Above' is not one of" in m for m in messages(check_sources({"m": broken}, registry)))


def test_module_params_match_the_target_files_params(registry: Registry, tmp_path):
    sources = {str(p.relative_to(INFRA)): p.read_text() for p in BICEP_FILES}
    assert check_sources(sources, registry) == []
    main = sources["main.bicep"]
    sources["main.bicep"] = main.replace("    callerAuth: callerAuth\n", "    callerAuths: callerAuth\n", 1)
    found = messages(check_sources(sources, registry))
    assert "resources: modules/resources.bicep has no param 'callerAuths'" in found
    assert "resources: param 'callerAuth' of modules/resources.bicep not given" in found
    (tmp_path / "main.bicep").write_text(main.replace("'modules/entra-app.bicep'", "'modules/entra.bicep'"))
    assert any("no file modules/entra.bicep" in m for m in messages(check_tree(tmp_path, registry)))


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("maximumInstanceCount: 'many'", "is int, not 'many'"),
        ("maximumInstanceCount: true", "is int, not True"),
        ("grantGraphPermission: 'false'", "is bool, not 'false'"),
        ("callerAuth: 1", "is string, not 1"),
        ("callerPolicy: []", "is object, not an array"),
        ("tags: 'x'", "is object, not 'x'"),
        ("callerAuth: createEntraApp ? 'entra' : 2", "is string, not 2"),
    ],
)
def test_module_arguments_fit_the_target_params_types(registry: Registry, given: str, shown: str):
    sources = {str(p.relative_to(INFRA)): p.read_text() for p in BICEP_FILES}
    name = given.split(":", 1)[0]
    head, module = sources["main.bicep"].split("module resources ", 1)
    module = re.sub(rf"(?m)^    {name}: .*$", f"    {given}", module, count=1)
    sources["main.bicep"] = f"{head}module resources {module}"
    found = messages(check_sources(sources, registry))
    assert any(f"param '{name}' of modules/resources.bicep {shown}" in m for m in found), found
