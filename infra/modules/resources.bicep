// The gateway's resources in one resource group: identity, storage, monitoring, Key Vault, Flex Consumption app.
// infra/README.md explains each resource and role; docs/DEPLOY.md compares it with the Azure-Samples template.

@description('azd environment name.')
param environmentName string

@description('Region of every resource.')
param location string

@description('Tags for every resource.')
param tags object

@description('Deploying principal (operator CLI; partner secrets in hmac mode); empty to skip.')
param principalId string

@description('Grant OnlineMeetings.ReadWrite.All to the identity through the Graph extension.')
param grantGraphPermission bool

@description('Caller authentication modes.')
param callerAuth string

@description('Tenant accepted in entra mode.')
param entraTenantId string

@description('Audience accepted in entra mode.')
param entraAudience string

@description('Per-caller policy; the empty object leaves CALLER_POLICY unset.')
param callerPolicy object

@description('Settings left to the gateway\'s defaults that this deployment changes; values are strings.')
param gatewaySettings object

@description('Largest instance count.')
param maximumInstanceCount int

@description('Name of the reservations table.')
param tableName string = 'meetingreservations'

@description('E-mail address the alerts go to; empty for none (docs/OPERATIONS.md).')
param alertEmail string = ''

@description('Alert thresholds that differ from the defaults in monitoring.bicep (docs/OPERATIONS.md).')
param alertThresholds object = {}

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var deploymentContainer = 'deployments'
// The Key Vault entry holding PARTNER_SECRETS, a JSON object {"partner": "secret"} that the operator writes.
var partnerSecretsEntry = 'partner-secrets'
var usesHmac = contains(split(replace(callerAuth, ' ', ''), ','), 'hmac')
// Built-in role definition ids (least privilege for each need).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // the app's identity only: azd deploy needs no data role
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
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
  //checkov:skip=CKV_AZURE_35:Flex Consumption without a VNet reaches its storage over the public endpoint; access is by identity only, shared keys are off.
  //checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public endpoint, identity-only access, no anonymous blob access.
  //checkov:skip=CKV_AZURE_206:LRS is enough: reservations are short-lived and Graph itself holds the meetings.
  //checkov:skip=CKV_AZURE_43:The name is st + uniqueString(): 15 lowercase letters and digits, valid, but computed.
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

// Partner secrets for hmac mode live here, never in the template or app settings: PARTNER_SECRETS is a reference.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Public endpoint: Flex Consumption without a VNet resolves Key Vault references over it, and the operator sets the secret from a workstation; access is by Entra RBAC only.
  //checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109.
  //checkov:skip=CKV_AZURE_42:Recoverable means soft delete plus purge protection; soft delete is on, purge protection is off for the reason under CKV_AZURE_110.
  //checkov:skip=CKV_AZURE_110:No purge protection, so that azd down --purge and a redeploy under the same environment name work; soft delete still keeps a deleted vault 90 days, and the secret can be set again from its owner's copy.
  name: 'kv-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // no access policies: roles below are the only way in
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// The host's own storage: blobs (keys, timer schedule, locks) and the deployment package, as in the anchor template.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
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

// Read secrets, on this vault only (a secret-scoped assignment would need the secret before the first provision).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// The deployer runs the operator CLI (docs/IDEMPOTENCY.md) against the same table.
resource deployerTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(storage::tables::reservations.id, principalId, roles.storageTableDataContributor)
  scope: storage::tables::reservations
  properties: {
    principalId: principalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

// In hmac mode the deployer writes the partner secrets (docs/DEPLOY.md); a subscription Owner has no data access.
resource deployerSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId) && usesHmac) {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: principalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption depends on the region; enable it where offered.
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

// Every gateway setting the template owns, in one object: a new setting is one line here (infra/README.md).
// Settings not listed keep the code's default (infra/README.md lists them), or take the gatewaySettings parameter.
var ownedGatewaySettings = {
  TABLES_ENDPOINT: storage.properties.primaryEndpoints.table
  TABLE_NAME: tableName
  AZURE_CLIENT_ID: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  CALLER_AUTH: callerAuth
  ENTRA_TENANT_ID: entraTenantId
  ENTRA_AUDIENCE: entraAudience
  CALLER_POLICY: empty(callerPolicy) ? '' : string(callerPolicy) // empty counts as unset (env_ignore_empty)
  PARTNER_SECRETS: usesHmac ? '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${partnerSecretsEntry})' : ''
}

// Defaults the Functions host itself must see: it resolves %PURGE_SCHEDULE% in the timer binding, not the code.
var hostVisibleDefaults = {
  PURGE_SCHEDULE: '0 */30 * * * *'
}

// The Functions host's own settings, as in the anchor template: blob endpoint and identity, telemetry with Entra ID.
// No table or queue endpoint: the host needs neither for HTTP and timer triggers (infra/README.md, host storage).
var hostSettings = {
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_56:Authentication is the gateway's own (function keys, Entra tokens or HMAC).
  //checkov:skip=CKV_AZURE_17:Client certificates are not how Power Automate calls; see CALLER_AUTH.
  //checkov:skip=CKV_AZURE_221:Public endpoint by design: Power Automate and partners call it.
  //checkov:skip=CKV_AZURE_222:Public endpoint by design: Power Automate and partners call it.
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero by design; no always-on minimum is needed.
  //checkov:skip=CKV_AZURE_78:ARM rejects siteConfig.ftpsState on Flex Consumption (error 51021); the ftp publishing policy below turns FTP off.
  //checkov:skip=CKV_AZURE_213:Platform health checks are not available on Flex Consumption; GET /health serves monitors.
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
    keyVaultReferenceIdentity: identity.id // Key Vault references resolve with the user-assigned identity
    // No ftpsState: ARM rejects it on Flex Consumption sites (error 51021); the `ftp` policy below turns FTP off.
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
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
      // Derived from the measured CPU and memory per request: docs/BENCHMARKS.md#flex-consumption-settings.
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
        triggers: {
          http: {
            perInstanceConcurrency: 100
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  // The deployment container is referenced only inside a string, so the dependency is stated.
  dependsOn: [storage::blobs::deployments, blobOwner]

  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }

  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

// The whole app-settings list, owned by the template: a provision replaces it, so nothing is set by hand.
// Later objects win: the template's own settings over the deployer's tuning over host-visible defaults.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every sites/config resource as the site configuration; this one is only the settings list.
  //checkov:skip=CKV_AZURE_13:Not site configuration; App Service Authentication is off by design, the gateway authenticates callers itself (CALLER_AUTH).
  //checkov:skip=CKV_AZURE_63:Not site configuration; Flex Consumption has no App Service HTTP logs, requests go to Application Insights.
  //checkov:skip=CKV_AZURE_65:Not site configuration; Flex Consumption has no detailed error pages, errors go to Application Insights.
  //checkov:skip=CKV_AZURE_66:Not site configuration; Flex Consumption has no failed request tracing, failures go to Application Insights.
  //checkov:skip=CKV_AZURE_80:Not site configuration; a Python app has no .NET Framework version.
  //checkov:skip=CKV_AZURE_88:Not site configuration; Flex Consumption deploys from a blob container, it has no Azure Files share.
  //checkov:skip=CKV_AZURE_222:Not site configuration; public endpoint by design, Power Automate and partners call it.
  parent: app
  name: 'appsettings'
  properties: union(hostVisibleDefaults, gatewaySettings, ownedGatewaySettings, hostSettings)
  // The host starts with these settings: its roles, and the Key Vault role for the reference, come first.
  dependsOn: [blobOwner, tableContributor, metricsPublisher, secretsUser]
}

// Microsoft Graph: the identity's service principal gets OnlineMeetings.ReadWrite.All (application).
module graphPermission 'graph-permission.bicep' = if (grantGraphPermission) {
  name: 'graph-permission'
  params: {
    principalId: identity.properties.principalId
  }
}

// The operations workbook (opens from the Function App), alert rules and their action group: docs/OPERATIONS.md.
module monitoring 'monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    token: token
    appInsightsId: appInsights.id
    functionAppId: app.id
    alertEmail: alertEmail
    alertThresholds: alertThresholds
  }
}

output functionAppName string = app.name
output functionAppUrl string = 'https://${app.properties.defaultHostName}'
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output storageAccountName string = storage.name
output keyVaultName string = vault.name
