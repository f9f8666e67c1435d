// Grants a service principal the Graph application permission OnlineMeetings.ReadWrite.All.
// Uses the Microsoft Graph Bicep extension (see ../bicepconfig.json). checkov's Bicep parser does not know
// the `extension` keyword and this file holds no Azure resource it checks, so the test command skips it.
extension microsoftGraphV1

@description('Object id of the service principal (the managed identity) to grant the permission to.')
param principalId string

var graphAppId = '00000003-0000-0000-c000-000000000000'
var onlineMeetingsReadWriteAll = 'b8bb2037-6e08-44ac-a4ea-4674e010e2a4'

resource graph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

resource grant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  appRoleId: onlineMeetingsReadWriteAll
  principalId: principalId
  resourceId: graph.id
}
