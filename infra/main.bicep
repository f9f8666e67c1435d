// meeting-gateway: everything azd up deploys. Subscription scope so the resource group is created too.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names and tags every resource.')
param environmentName string

// Regions that offer Flex Consumption, as the anchor template lists them (Azure-Samples/
// functions-quickstart-python-http-azd infra/main.bicep, without the early-access region eastus2euap); azd offers
// only these when it asks for a location. Check a new region with: az functionapp list-flexconsumption-locations
@minLength(1)
@description('Azure region of every resource. The region must offer Flex Consumption.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user or principal: the reservations table for the operator CLI, and in hmac mode writing partner secrets. Empty to skip.')
param principalId string = ''

@description('Assign the Graph application permission OnlineMeetings.ReadWrite.All to the identity during provisioning. Needs a deployer with Privileged Role Administrator (or Global Administrator) in Entra ID; off by default so that a subscription owner without Entra rights can deploy, and an administrator runs scripts/grant-graph-permission.sh once instead (docs/DEPLOY.md).')
param grantGraphPermission bool = false

@description('Create the gateway\'s Entra app registration (app role MeetingGateway.Create, identifier URI) and use it as the entra audience. Needs a deployer who may create applications (Application Developer, or the tenant default); docs/DEPLOY.md.')
param createEntraApp bool = false

@description('Caller authentication modes: function-key alone, or entra and/or hmac (comma-separated); entra and hmac need callerPolicy.')
param callerAuth string = 'function-key'

@description('For entra mode: the tenant whose tokens are accepted.')
param entraTenantId string = ''

@description('For entra mode: the audience (app ID URI or client id of the gateway app registration).')
param entraAudience string = ''

@description('Per-caller policy (docs/SECURITY.md), as an object; the empty object leaves CALLER_POLICY unset.')
param callerPolicy object = {}

@description('Gateway settings left to the code\'s defaults that this deployment changes, as strings, e.g. {"ON_PAYLOAD_MISMATCH": "return-existing", "RETENTION_DAYS": "60"}. Settings the template sets itself keep the template\'s value.')
param gatewaySettings object = {}

@description('Largest number of instances Flex Consumption may run.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('E-mail address the gateway\'s alerts go to; empty for none (docs/OPERATIONS.md).')
param alertEmail string = ''

@description('Alert thresholds that differ from the defaults, as a JSON object (docs/OPERATIONS.md).')
param alertThresholds object = {}

var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// Optional: the app registration entra callers request tokens for (Microsoft Graph Bicep extension).
module entraApp 'modules/entra-app.bicep' = if (createEntraApp) {
  name: 'entra-app'
  scope: rg
  params: {
    uniqueName: 'meeting-gateway-${environmentName}'
    displayName: 'meeting-gateway (${environmentName})'
  }
}

module resources 'modules/resources.bicep' = {
  name: 'resources'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    principalId: principalId
    grantGraphPermission: grantGraphPermission
    callerAuth: callerAuth
    entraTenantId: createEntraApp ? tenant().tenantId : entraTenantId
    // Its tokens are v2 (requestedAccessTokenVersion 2), whose aud is the client id, not the identifier URI
    // (learn.microsoft.com/entra/identity-platform/access-token-claims-reference, aud): accept both.
    entraAudience: createEntraApp ? '${entraApp!.outputs.clientId},${entraApp!.outputs.audience}' : entraAudience
    callerPolicy: callerPolicy
    gatewaySettings: gatewaySettings
    maximumInstanceCount: maximumInstanceCount
    alertEmail: alertEmail
    alertThresholds: alertThresholds
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = resources.outputs.functionAppName
output SERVICE_GATEWAY_NAME string = resources.outputs.functionAppName
output GATEWAY_URL string = resources.outputs.functionAppUrl
output GATEWAY_IDENTITY_CLIENT_ID string = resources.outputs.identityClientId
output GATEWAY_IDENTITY_PRINCIPAL_ID string = resources.outputs.identityPrincipalId
output AZURE_STORAGE_ACCOUNT_NAME string = resources.outputs.storageAccountName
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output ENTRA_APP_CLIENT_ID string = createEntraApp ? entraApp!.outputs.clientId : ''
output ENTRA_APP_AUDIENCE string = createEntraApp ? entraApp!.outputs.audience : entraAudience
