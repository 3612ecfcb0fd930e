// tweet-sentiment on Azure: one resource group holding the storage account (models, logs, reports,
// deployment packages), a Flex Consumption function app running the Rust custom handler, Log
// Analytics with workspace-based Application Insights, and the alert rules on the metrics report.
//
// Deployed by `azd up` (parameters from main.parameters.json, filled from the azd environment) or by
// `az deployment group create` (see docs/deploy.md). Raw resource declarations only: registry modules
// cannot be restored offline, and the checks in infra/check.sh run offline.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd environment name); seeds every resource name.')
param environmentName string

@description('Region of every resource. Must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Principal (object) id of the deployment identity used by GitHub Actions over OIDC. Empty: no role is granted to it here.')
param deployerPrincipalId string = ''

@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
@description('Kind of principal behind deployerPrincipalId: ServicePrincipal for an app registration or a user-assigned identity.')
param deployerPrincipalType string = 'ServicePrincipal'

@description('Principal (object) id of the retraining identity used by the retrain workflow over OIDC: it reads the prediction log and the reports, writes datasets, and publishes challengers. Empty: no role is granted to it here.')
param retrainerPrincipalId string = ''

@description('Also let the deployment identity write the deployment package container. Not needed with Azure/functions-action or azd: the platform writes the package with the app identity.')
param grantDeployerPackageAccess bool = false

@description('E-mail address that receives the alerts. Empty: the action group has no receiver.')
param alertEmail string = ''

// At least a week: the metrics aggregation joins feedback to its prediction up to 72 h later, and
// reads each hourly log blob again while it grows.
@minValue(7)
@description('Days after which prediction and feedback log blobs are deleted.')
param logRetentionDays int = 90

@minValue(30)
@description('Days Log Analytics keeps traces and requests.')
param logAnalyticsRetentionDays int = 30

@description('NCRONTAB schedule of the metrics-report timer (six fields, seconds first).')
param metricsSchedule string = '0 */15 * * * *'

@minValue(1)
@description('Seconds between two checks of champion.json by each instance.')
param modelPollSeconds int = 30

@allowed([
  2048
  4096
])
@description('Memory of one Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

// Flex Consumption refuses a ceiling below 40 instances.
@minValue(40)
@maxValue(1000)
@description('Most instances the app may scale out to; a ceiling on cost.')
param maximumInstanceCount int = 40

@minValue(1)
@description('Concurrent HTTP requests one instance takes before the platform adds another.')
param httpPerInstanceConcurrency int = 16

@description('Alert when the latest report macro-F1 is below this value.')
param macroF1Threshold string = '0.70'

@minValue(0)
@description('The macro-F1 alert only considers reports with at least this many labelled predictions.')
param minLabelledForF1Alert int = 30

@description('Alert when the share of 5xx answers over the window is above this fraction.')
param serverErrorRateThreshold string = '0.05'

@minValue(1)
@description('Alert when the 95th percentile request duration over the window is above this many milliseconds.')
param p95LatencyThresholdMs int = 500

@minValue(1)
@description('Rate and latency alerts only consider windows with at least this many requests.')
param minRequestsForAlert int = 20

@description('Tags added to every resource.')
param tags object = {}

// Container names shared with the Rust config defaults (MODELS_CONTAINER, LOGS_CONTAINER,
// REPORTS_CONTAINER, DATASETS_CONTAINER); infra/tests checks that both sides agree.
var modelsContainerName = 'models'
var logsContainerName = 'logs'
var reportsContainerName = 'reports'
var datasetsContainerName = 'datasets'
var packageContainerName = 'app-package'

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, { 'azd-env-name': environmentName })
var storageAccountName = 'st${resourceToken}'
var functionAppName = 'func-${resourceToken}'
// The blob endpoint without a trailing slash (the handler appends '/<container>/<blob>'), built
// from the cloud's storage suffix so that it is known before the account exists.
var storageBlobEndpoint = 'https://${storageAccountName}.blob.${environment().suffixes.storage}'

// Built-in role definition ids.
var roleStorageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var roleStorageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var roleStorageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var roleWebsiteContributor = 'de139f84-1756-47ae-9be6-808fbbe84772'
var roleMonitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: allTags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  /* Checks skipped on purpose (checkov reads these lines):
    checkov:skip=CKV_AZURE_43: The name is 'st' plus uniqueString(), 15 lower-case letters and digits, always valid; checkov cannot evaluate the interpolation.
    checkov:skip=CKV_AZURE_206: Locally redundant storage on purpose: models are rebuilt from git and training runs, logs are telemetry; geo-replication would double the cost at rest for data that can be recreated.
    checkov:skip=CKV_AZURE_59: Public endpoint needed: Flex Consumption without a virtual network and GitHub-hosted runners reach the account over the internet. Access still requires an Entra ID token (shared keys are off, anonymous blob access is off).
    checkov:skip=CKV_AZURE_35: Default network action stays Allow for the same reason as CKV_AZURE_59; authentication is Entra ID only.
  */
  properties: {
    accessTier: 'Hot'
    // Entra ID only: the handler, the Functions host, deployments and promote all use tokens.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Soft delete lets an operator recover a champion.json or a model file removed by mistake.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource modelsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: modelsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource logsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: logsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: reportsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Training datasets exported from the log by `tweet-sentiment export-labels` (the learning loop).
resource datasetsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: datasetsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Prediction and feedback logs are append blobs, one per instance and hour. Lifecycle management
// cannot move append blobs to a cooler tier, so old ones are deleted. The reports lose nothing: the
// metrics checkpoint keeps the since-start counts and the recent buckets, and only the last 72 h
// of raw log are ever read again (src/metrics/aggregate.rs).
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-logs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'appendBlob'
                'blockBlob'
              ]
              prefixMatch: [
                '${logsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: logRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    logsContainer
  ]
}

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logAnalyticsRetentionDays
    // Queries and ingestion go through Entra ID only; no workspace keys.
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: allTags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Telemetry is accepted only with an Entra ID token (the app identity holds Monitoring Metrics
    // Publisher below), so the instrumentation key in the connection string is not a credential.
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------------
// Function app (Flex Consumption, custom handler)
// ---------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${resourceToken}'
  location: location
  tags: allTags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  /* Checks skipped on purpose (checkov reads these lines):
    checkov:skip=CKV_AZURE_225: Zone redundancy is not a requirement of this product: the handler is stateless, its state lives in blobs, and a zonal outage costs a short interruption of a non-critical API.
  */
  properties: {
    // Linux.
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  // azd finds the deploy target of service `api` (azure.yaml) by this tag.
  tags: union(allTags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  /* Checks skipped on purpose (checkov reads these lines):
    checkov:skip=CKV_AZURE_212: Flex Consumption scales per request from zero; a fixed minimum of instances would be always-ready instances billed at rest, for an API that tolerates a cold start.
    checkov:skip=CKV_AZURE_213: App Service health check is a dedicated-plan feature; Flex Consumption adds and removes instances with load. The deploy workflow probes /api/health and alert rules watch 5xx and latency.
    checkov:skip=CKV_AZURE_17: Client certificates are not used: callers are browsers and scripts using function keys.
    checkov:skip=CKV_AZURE_222: A public API is the product; there is no virtual network to restrict it to.
  */
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      ftpsState: 'Disabled'
      // Flex forbids FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE,
      // WEBSITE_CONTENTSHARE and WEBSITE_CONTENTAZUREFILECONNECTIONSTRING: the runtime and the
      // package location live in functionAppConfig instead.
      appSettings: [
        // Identity-based host storage: no connection string, no key.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        // Local auth is off on the component: the host sends telemetry with the system identity.
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD'
        }
        // The handler's own blob access (src/config.rs): managed identity against this endpoint.
        {
          name: 'STORAGE_ACCOUNT_URL'
          value: storageBlobEndpoint
        }
        {
          name: 'AZURE_CREDENTIAL_KIND'
          value: 'managed-identity'
        }
        {
          name: 'MODELS_CONTAINER'
          value: modelsContainerName
        }
        {
          name: 'LOGS_CONTAINER'
          value: logsContainerName
        }
        {
          name: 'REPORTS_CONTAINER'
          value: reportsContainerName
        }
        {
          name: 'DATASETS_CONTAINER'
          value: datasetsContainerName
        }
        // Read by the timer binding of metrics-report (%METRICS_SCHEDULE% in its function.json).
        {
          name: 'METRICS_SCHEDULE'
          value: metricsSchedule
        }
        {
          name: 'MODEL_POLL_SECONDS'
          value: string(modelPollSeconds)
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}/${packageContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  dependsOn: [
    packageContainer
  ]
}

// Deployments authenticate with Entra ID (OIDC in GitHub Actions, the azd login locally); basic
// publishing credentials would be a second, key-like way in.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}


// ---------------------------------------------------------------------------------------------
// Role assignments
// ---------------------------------------------------------------------------------------------

// The app identity gets Storage Blob Data Owner on the account: the Functions host needs it for
// identity-based AzureWebJobsStorage (timer leases, host keys, blob container creation), the
// platform uses it to fetch the package from app-package, and the handler reads models and
// writes logs and reports.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, functionApp.id, roleStorageBlobDataOwner)
  properties: {
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataOwner)
  }
}

// Telemetry with Entra ID auth (DisableLocalAuth on the component).
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, functionApp.id, roleMonitoringMetricsPublisher)
  properties: {
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleMonitoringMetricsPublisher)
  }
}

// Deployment identity, data plane: `tweet-sentiment promote` uploads model versions and flips
// champion.json, all inside the models container. Scoped to that container only, so the
// workflow can neither read the prediction log (tweets) nor rewrite reports.
resource deployerModelsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  scope: modelsContainer
  name: guid(modelsContainer.id, deployerPrincipalId, roleStorageBlobDataContributor)
  properties: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
  }
}

// Retraining identity (the retrain workflow): it reads the labelled log and the latest verdict,
// writes datasets, and publishes a challenger into the models container. Each grant is scoped to
// one container; it cannot touch the deployment package or rewrite reports.
resource retrainerLogsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(retrainerPrincipalId)) {
  scope: logsContainer
  name: guid(logsContainer.id, retrainerPrincipalId, roleStorageBlobDataReader)
  properties: {
    principalId: retrainerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataReader)
  }
}

resource retrainerReportsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(retrainerPrincipalId)) {
  scope: reportsContainer
  name: guid(reportsContainer.id, retrainerPrincipalId, roleStorageBlobDataReader)
  properties: {
    principalId: retrainerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataReader)
  }
}

resource retrainerDatasetsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(retrainerPrincipalId)) {
  scope: datasetsContainer
  name: guid(datasetsContainer.id, retrainerPrincipalId, roleStorageBlobDataContributor)
  properties: {
    principalId: retrainerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
  }
}

resource retrainerModelsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(retrainerPrincipalId)) {
  scope: modelsContainer
  name: guid(modelsContainer.id, retrainerPrincipalId, roleStorageBlobDataContributor)
  properties: {
    principalId: retrainerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
  }
}

// Only when a deployment path writes the package blob itself (see grantDeployerPackageAccess).
resource deployerPackageContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId) && grantDeployerPackageAccess) {
  scope: packageContainer
  name: guid(packageContainer.id, deployerPrincipalId, roleStorageBlobDataContributor)
  properties: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
  }
}

// Deployment identity, control plane: publishing code to this one app (One Deploy through the
// management API) and nothing else in the group.
resource deployerWebsiteContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  scope: functionApp
  name: guid(functionApp.id, deployerPrincipalId, roleWebsiteContributor)
  properties: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleWebsiteContributor)
  }
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    appInsightsId: appInsights.id
    alertEmail: alertEmail
    macroF1Threshold: macroF1Threshold
    minLabelledForF1Alert: minLabelledForF1Alert
    serverErrorRateThreshold: serverErrorRateThreshold
    p95LatencyThresholdMs: p95LatencyThresholdMs
    minRequestsForAlert: minRequestsForAlert
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs: azd stores them in the environment (.azure/<env>/.env); the workflows and the README
// read them.
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.properties.defaultHostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output STORAGE_ACCOUNT_URL string = storageBlobEndpoint
output MODELS_CONTAINER string = modelsContainerName
output LOGS_CONTAINER string = logsContainerName
output REPORTS_CONTAINER string = reportsContainerName
output DATASETS_CONTAINER string = datasetsContainerName
output PACKAGE_CONTAINER string = packageContainerName
output APPLICATIONINSIGHTS_NAME string = appInsights.name
output LOG_ANALYTICS_WORKSPACE_NAME string = workspace.name
