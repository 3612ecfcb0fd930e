// Alert rules on Application Insights, plus the action group that e-mails them.
//
// Two sources:
// - the metrics report: every run of the metrics-report timer prints one JSON line to stdout,
//   `{"timestamp":…,"level":"INFO","fields":{"event":"metrics_report","macro_f1":…,
//   "bad_buzz":…,"labelled":…,…},"target":…}`, which the Functions host forwards to the `traces`
//   table as the trace message;
// - the `requests` table that the host fills for every HTTP invocation (5xx share, p95 latency).
//
// The report queries read the fields from the JSON message first and fall back to
// customDimensions (plain or `prop__`-prefixed), so they keep working if the host or the
// handler starts sending the fields as structured properties instead of a JSON message.

@description('Region of the alert rules.')
param location string

param tags object

@description('Seed for resource names, shared with main.bicep.')
param resourceToken string

@description('Resource id of the Application Insights component the rules query.')
param appInsightsId string

@description('E-mail address that receives the alerts. Empty: the action group has no receiver.')
param alertEmail string

@description('Alert when the latest report macro-F1 is below this value (a decimal number as text).')
param macroF1Threshold string

@description('The macro-F1 alert only considers reports with at least this many labelled predictions.')
param minLabelledForF1Alert int

@description('Alert when the share of 5xx answers is above this fraction (a decimal number as text).')
param serverErrorRateThreshold string

@description('Alert when the p95 request duration is above this many milliseconds.')
param p95LatencyThresholdMs int

@description('Rate and latency alerts only consider windows with at least this many requests.')
param minRequestsForAlert int

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${resourceToken}'
  // Action groups are global resources.
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'tweetsent'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operations'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Report lines of the window, one row each, with the fields pulled out defensively. The message
// may carry a prefix before the JSON object, so the parse starts at the first brace.
var reportLines = '''
traces
| where message has "metrics_report" or tostring(customDimensions) has "metrics_report"
| extend raw = iff(indexof(message, "{") >= 0, substring(message, indexof(message, "{")), "")
| extend j = parse_json(raw)
| extend f = iff(isnotnull(j.fields), j.fields, j)
| extend event_name = coalesce(tostring(f.event), tostring(customDimensions.event), tostring(customDimensions["prop__event"]))
| where event_name == "metrics_report"
| extend macro_f1 = coalesce(todouble(f.macro_f1), todouble(customDimensions.macro_f1), todouble(customDimensions["prop__macro_f1"]))
| extend labelled = coalesce(tolong(f.labelled), tolong(customDimensions.labelled), tolong(customDimensions["prop__labelled"]))
| extend bad_buzz_text = tolower(coalesce(tostring(f.bad_buzz), tostring(customDimensions.bad_buzz), tostring(customDimensions["prop__bad_buzz"])))
| extend bad_buzz = bad_buzz_text in ("true", "1")
| project timestamp, macro_f1, labelled, bad_buzz, negative_share = todouble(f.negative_share)
'''

var rules = [
  {
    name: 'macro-f1-low'
    displayName: 'tweet-sentiment: macro-F1 below ${macroF1Threshold}'
    description: 'The latest metrics report has a macro-F1 below the threshold, on enough labelled predictions. Check reports/latest.html and consider rolling back the model.'
    severity: 2
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    // Only the latest report of the window counts, so the alert resolves as soon as a report is good again.
    query: '${reportLines}| top 1 by timestamp desc\n| where labelled >= ${minLabelledForF1Alert} and macro_f1 < todouble("${macroF1Threshold}")\n'
  }
  {
    name: 'bad-buzz'
    displayName: 'tweet-sentiment: bad buzz'
    description: 'A metrics report raised the bad_buzz flag: the share of negative tweets is well above its trailing baseline.'
    severity: 1
    evaluationFrequency: 'PT15M'
    windowSize: 'PT30M'
    query: '${reportLines}| where bad_buzz\n'
  }
  {
    name: 'server-errors'
    displayName: 'tweet-sentiment: 5xx rate above ${serverErrorRateThreshold}'
    description: 'The share of requests answered 5xx is above the threshold. 4xx answers are the callers\' mistakes and do not count.'
    severity: 1
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    query: 'requests\n| summarize total = count(), failed = countif(toint(resultCode) >= 500)\n| where total >= ${minRequestsForAlert}\n| extend rate = todouble(failed) / total\n| where rate > todouble("${serverErrorRateThreshold}")\n'
  }
  {
    name: 'latency-p95'
    displayName: 'tweet-sentiment: p95 latency above ${p95LatencyThresholdMs} ms'
    description: 'The 95th percentile of request duration is above the threshold.'
    severity: 2
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    query: 'requests\n| summarize total = count(), p95 = percentile(duration, 95)\n| where total >= ${minRequestsForAlert} and p95 > ${p95LatencyThresholdMs}\n'
  }
  {
    name: 'report-missing'
    displayName: 'tweet-sentiment: no metrics report for 2 hours'
    description: 'No metrics report line arrived in the last two hours: the timer is not running or the report fails before logging.'
    severity: 2
    evaluationFrequency: 'PT1H'
    windowSize: 'PT2H'
    query: '${reportLines}| summarize reports = count()\n| where reports == 0\n'
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = [for rule in rules: {
  name: 'alert-${rule.name}-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: rule.evaluationFrequency
    windowSize: rule.windowSize
    criteria: {
      allOf: [
        {
          // Each query returns rows only when the condition holds.
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
output alertRuleNames array = [for (rule, i) in rules: alertRules[i].name]
