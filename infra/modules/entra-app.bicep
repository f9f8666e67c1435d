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
    requestedAccessTokenVersion: 2 // tokens' aud is then the client id (main.bicep accepts it and the URI)
    // The delegated permission a custom connector's client app requests (connector/README.md); who gets a token
    // is still limited to the callers assigned the app role (appRoleAssignmentRequired below).
    oauth2PermissionScopes: [
      {
        id: guid(uniqueName, 'user_impersonation')
        value: 'user_impersonation'
        type: 'User'
        adminConsentDisplayName: 'Call meeting-gateway as the signed-in user'
        adminConsentDescription: 'Lets the app call createOrGet through meeting-gateway as the signed-in user.'
        userConsentDisplayName: 'Call meeting-gateway as you'
        userConsentDescription: 'Lets the app call createOrGet through meeting-gateway as you.'
        isEnabled: true
      }
    ]
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
