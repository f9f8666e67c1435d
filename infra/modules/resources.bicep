// The gateway's resources in one resource group: identity, storage, monitoring, Flex Consumption app.

@description('azd environment name.')
param environmentName string

@description('Region of every resource.')
param location string

@description('Tags for every resource.')
param tags object

@description('Deploying principal (blob access for azd deploy); empty to skip.')
param principalId string

@description('Grant OnlineMeetings.ReadWrite.All to the identity through the Graph extension.')
param grantGraphPermission bool

@description('Caller authentication modes.')
param callerAuth string

@description('Tenant accepted in entra mode.')
param entraTenantId string

@description('Audience accepted in entra mode.')
param entraAudience string

@description('Per-caller policy JSON.')
param callerPolicy string

@description('Largest instance count.')
param maximumInstanceCount int

@description('Name of the reservations table.')
param tableName string = 'meetingreservations'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var deploymentContainer = 'deployments'
// Built-in role definition ids (least privilege for each need).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${token}'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true // ingestion only with Entra ID (the managed identity)
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  #checkov:skip=CKV_AZURE_35:Flex Consumption without a VNet reaches its storage over the public endpoint; access is by identity only, shared keys are off.
  #checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public endpoint, identity-only access, no anonymous blob access.
  #checkov:skip=CKV_AZURE_206:LRS is enough: reservations are short-lived and Graph itself holds the meetings.
  #checkov:skip=CKV_AZURE_43:The name is st + uniqueString(): 15 lowercase letters and digits, valid, but computed.
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false // identity-based connections only: no keys anywhere
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobs 'blobServices' = {
    name: 'default'
    resource deployments 'containers' = {
      name: deploymentContainer
      properties: { publicAccess: 'None' }
    }
  }

  resource tables 'tableServices' = {
    name: 'default'
    resource reservations 'tables' = {
      name: tableName
    }
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

// Table data access is scoped to the reservations table alone.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::tables::reservations.id, identity.id, roles.storageTableDataContributor)
  scope: storage::tables::reservations
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource deployerBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: principalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  #checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption depends on the region; enable it where offered.
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// Every setting the gateway reads (meetings_core/settings.py); tests/test_infra.py checks they agree.
var gatewaySettings = {
  GRAPH_BASE_URL: 'https://graph.microsoft.com'
  GRAPH_API_VERSION: 'v1.0'
  GRAPH_SCOPE: 'https://graph.microsoft.com/.default'
  GRAPH_DEADLINE_SECONDS: '30'
  GRAPH_ATTEMPT_TIMEOUT_SECONDS: '15'
  TABLES_ENDPOINT: storage.properties.primaryEndpoints.table
  TABLE_NAME: tableName
  AZURE_CLIENT_ID: identity.properties.clientId
  RESERVATION_LEASE_SECONDS: '45'
  DUPLICATE_WAIT_SECONDS: '20'
  IN_PROGRESS_ANSWER: 'retry'
  STATUS_URL_TTL_SECONDS: '900'
  RETENTION_DAYS: '30'
  ON_PAYLOAD_MISMATCH: 'reject'
  REPLAY_CACHE_SIZE: '10000'
  MAX_BODY_BYTES: '131072'
  PURGE_SCHEDULE: '0 */30 * * * *'
  CALLER_AUTH: callerAuth
  ENTRA_TENANT_ID: entraTenantId
  ENTRA_AUDIENCE: entraAudience
  ENTRA_AUTHORITY: 'https://login.microsoftonline.com'
  HMAC_TOLERANCE_SECONDS: '300'
  CALLER_POLICY: callerPolicy
  LOG_LEVEL: 'INFO'
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
}

// The Functions host's own settings: its storage reached with the identity, telemetry with Entra ID.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  #checkov:skip=CKV_AZURE_56:Authentication is the gateway's own (function keys, Entra tokens or HMAC).
  #checkov:skip=CKV_AZURE_17:Client certificates are not how Power Automate calls; see CALLER_AUTH.
  #checkov:skip=CKV_AZURE_221:Public endpoint by design: Power Automate and partners call it.
  #checkov:skip=CKV_AZURE_222:Public endpoint by design: Power Automate and partners call it.
  #checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero by design; no always-on minimum is needed.
  #checkov:skip=CKV_AZURE_213:Platform health checks are not available on Flex Consumption; GET /health serves monitors.
  name: 'func-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'gateway' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(union(gatewaySettings, hostSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [blobOwner, queueContributor, tableContributor, metricsPublisher]

  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }

  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

// Microsoft Graph: the identity's service principal gets OnlineMeetings.ReadWrite.All (application).
module graphPermission 'graph-permission.bicep' = if (grantGraphPermission) {
  name: 'graph-permission'
  params: {
    principalId: identity.properties.principalId
  }
}

output functionAppName string = app.name
output functionAppUrl string = 'https://${app.properties.defaultHostName}'
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output storageAccountName string = storage.name
