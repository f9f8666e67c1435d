// What an operator sees and is told: the gateway's workbook, its alert rules and their action group.
// docs/OPERATIONS.md explains each chart and alert and what to do; every metric queried here is one the code emits
// (meetings_core/telemetry/names.py; tests/test_monitoring.py keeps the two equal).

@description('Region of the workbook and the alert rules.')
param location string

@description('Tags for every resource.')
param tags object

@description('Name suffix shared with the other resources.')
param token string

@description('Application Insights component the gateway sends its telemetry to.')
param appInsightsId string

@description('Function App the workbook is linked to (it opens from the app\'s Workbooks blade).')
param functionAppId string

@description('E-mail address the alerts go to; empty leaves the action group without receivers.')
param alertEmail string = ''

@description('Alert thresholds that differ from the defaults below, e.g. {"serverErrorPercent": 10}.')
param alertThresholds object = {}

// docs/OPERATIONS.md (alerts) explains each default.
var defaultThresholds = {
  unknownOutcomes: 0 // any unknown Graph outcome in 15 minutes
  stuckMinutes: 30 // a reservation whose lease ended this long ago and that nobody finished
  throttledAttemptsPer5Min: 10 // Graph 429s in 5 minutes ...
  throttledPeriods: 3 // ... in this many consecutive 5-minute windows
  serverErrorPercent: 5 // 5xx answers, RequestInProgress excluded, as a share of all answers in 5 minutes ...
  serverErrorMinAnswers: 20 // ... once there are at least this many answers
}
var thresholds = union(defaultThresholds, alertThresholds)

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${token}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'mtg-gateway'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, functionAppId, 'meeting-gateway-operations')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'meeting-gateway operations'
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: toLower(functionAppId)
    serializedData: replace(loadTextContent('gateway-workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId)
  }
}

// Each rule: a log query over Application Insights, a threshold, and the action group.
var rules = [
  {
    name: 'unknown-outcomes'
    displayName: 'meeting-gateway: unknown Graph outcomes'
    description: 'Graph calls whose outcome is unknown in the last 15 minutes: their keys are held; see docs/OPERATIONS.md.'
    severity: 2
    query: 'customMetrics | where name == "gateway.graph.call.duration" | where tostring(customDimensions["gateway.graph.result"]) == "unknown_outcome" | project timestamp, unknown = valueCount'
    measure: 'unknown'
    aggregation: 'Total'
    operator: 'GreaterThan'
    threshold: thresholds.unknownOutcomes
    windowSize: 'PT15M'
    frequency: 'PT5M'
    periods: 1
  }
  {
    name: 'stuck-keys'
    displayName: 'meeting-gateway: stuck keys'
    description: 'A reservation whose lease ended long ago was never finished (purge timer count); see docs/OPERATIONS.md.'
    severity: 3
    query: 'customMetrics | where name == "gateway.reservations.stuck.oldest_age" | project timestamp, oldest_stuck_seconds = value'
    measure: 'oldest_stuck_seconds'
    aggregation: 'Maximum'
    operator: 'GreaterThanOrEqual'
    threshold: thresholds.stuckMinutes * 60
    windowSize: 'PT1H' // the purge timer reports every 30 minutes
    frequency: 'PT15M'
    periods: 1
  }
  {
    name: 'graph-throttling'
    displayName: 'meeting-gateway: Graph throttling sustained'
    description: 'Graph answered 429 to many attempts in consecutive 5-minute windows; see docs/OPERATIONS.md.'
    severity: 2
    query: 'customMetrics | where name == "http.client.request.duration" | where tostring(customDimensions["http.response.status_code"]) == "429" | project timestamp, throttled = valueCount'
    measure: 'throttled'
    aggregation: 'Total'
    operator: 'GreaterThan'
    threshold: thresholds.throttledAttemptsPer5Min
    windowSize: 'PT5M'
    frequency: 'PT5M'
    periods: thresholds.throttledPeriods
  }
  {
    name: 'server-errors'
    displayName: 'meeting-gateway: 5xx ratio'
    description: 'Share of 5xx answers (RequestInProgress excluded, clients retry it by design) above the threshold; see docs/OPERATIONS.md.'
    severity: 1
    query: 'customMetrics | where name == "gateway.requests" | extend status = toint(customDimensions["http.response.status_code"]), outcome = tostring(customDimensions["gateway.outcome"]) | summarize total = sum(value), failed = sumif(value, status >= 500 and outcome != "in_progress") by bin(timestamp, 5m) | where total >= ${thresholds.serverErrorMinAnswers} | project timestamp, server_error_percent = 100.0 * failed / total'
    measure: 'server_error_percent'
    aggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: thresholds.serverErrorPercent
    windowSize: 'PT5M'
    frequency: 'PT5M'
    periods: 1
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: 'alert-${rule.name}-${token}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: rule.frequency
      windowSize: rule.windowSize
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: rule.aggregation
            metricMeasureColumn: rule.measure
            operator: rule.operator
            threshold: rule.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: rule.periods
              minFailingPeriodsToAlert: rule.periods
            }
          }
        ]
      }
      autoMitigate: true
      actions: {
        actionGroups: [actionGroup.id]
      }
    }
  }
]

output workbookId string = workbook.id
output actionGroupId string = actionGroup.id
