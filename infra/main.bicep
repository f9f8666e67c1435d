// meeting-gateway: everything azd up deploys. Subscription scope so the resource group is created too.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region of every resource. The region must offer Flex Consumption.')
param location string

@description('Object id of the deploying user or principal: blob upload for azd deploy, the reservations table for the operator CLI, writing partner secrets. Empty to skip.')
param principalId string = ''

@description('Assign the Graph application permission OnlineMeetings.ReadWrite.All to the identity during provisioning. Needs a deployer with Privileged Role Administrator (or Global Administrator) in Entra ID; off by default so that a subscription owner without Entra rights can deploy, and an administrator runs scripts/grant-graph-permission.sh once instead (docs/DEPLOY.md).')
param grantGraphPermission bool = false

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
    entraTenantId: entraTenantId
    entraAudience: entraAudience
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
