// meeting-gateway: everything azd up deploys. Subscription scope so the resource group is created too.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region of every resource. The region must offer Flex Consumption.')
param location string

@description('Object id of the deploying user or principal: gets blob access for azd deploy. Empty to skip.')
param principalId string = ''

@description('Grant the identity the Graph application permission OnlineMeetings.ReadWrite.All. Needs a deployer with Privileged Role Administrator (or Global Administrator); false to use scripts/grant-graph-permission.sh instead.')
param grantGraphPermission bool = true

@description('Caller authentication modes: function-key, entra, hmac (comma-separated).')
param callerAuth string = 'function-key'

@description('For entra mode: the tenant whose tokens are accepted.')
param entraTenantId string = ''

@description('For entra mode: the audience (app ID URI or client id of the gateway app registration).')
param entraAudience string = ''

@description('Per-caller policy as JSON; empty allows every authenticated caller.')
param callerPolicy string = ''

@description('Largest number of instances Flex Consumption may run.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

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
    maximumInstanceCount: maximumInstanceCount
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
