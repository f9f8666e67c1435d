// The gateway's Entra app registration for CALLER_AUTH=entra: an app role callers are assigned, an identifier URI
// (the token audience), and a service principal that issues tokens only to assigned callers.
// Microsoft Graph Bicep extension (../bicepconfig.json); the types test checks it against the published types;
// checkov, whose parser does not know `extension`, skips it (it holds no Azure resource checkov checks).
extension microsoftGraphV1

@description('Client-provided unique name of the application (the key the extension deploys it by).')
param uniqueName string

@description('Display name in Entra ID.')
param displayName string

@description('The app role every caller is assigned (ENTRA_REQUIRED_ROLE may require it).')
param roleValue string = 'MeetingGateway.Create'

// The tenant's default policy accepts identifier URIs that carry the tenant id (or the app id, unknown here).
var audience = 'api://${tenant().tenantId}/${uniqueName}'

resource gatewayApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [audience]
  api: {
    requestedAccessTokenVersion: 2
  }
  appRoles: [
    {
      id: guid(uniqueName, roleValue)
      value: roleValue
      displayName: 'Create meetings through the gateway'
      description: 'Call createOrGet through meeting-gateway.'
      allowedMemberTypes: ['Application', 'User']
      isEnabled: true
    }
  ]
}

resource gatewayPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: gatewayApp.appId
  appRoleAssignmentRequired: true // only callers assigned the role get a token for the gateway
}

output clientId string = gatewayApp.appId
output audience string = audience
