<#
.SYNOPSIS
  Create the Teams application access policy that lets the gateway's managed identity create online
  meetings on behalf of organizers, and grant it to named organizers or tenant-wide.

.DESCRIPTION
  Graph's createOrGet with an application token only works for organizers covered by an application
  access policy that names the calling app. Requires PowerShell 7, the MicrosoftTeams module
  (Install-Module MicrosoftTeams) and a Teams Administrator. Changes take up to 30 minutes to apply.

.PARAMETER AppId
  The client id of the gateway's managed identity (azd env get-value GATEWAY_IDENTITY_CLIENT_ID).

.PARAMETER Organizers
  Object ids or UPNs of the organizers to grant the policy to (a list, or one comma-separated string). Omit and
  pass -Global for the whole tenant.

.PARAMETER Global
  Grant the policy tenant-wide (every user may be an organizer).

.EXAMPLE
  ./scripts/teams-access-policy.ps1 -AppId 5b1c... -Organizers alice@contoso.com,bob@contoso.com

.EXAMPLE
  ./scripts/teams-access-policy.ps1 -AppId 5b1c... -Global
#>
[CmdletBinding(DefaultParameterSetName = 'Users')]
param(
  [Parameter(Mandatory)] [string] $AppId,
  [Parameter(ParameterSetName = 'Users', Mandatory)] [string[]] $Organizers,
  [Parameter(ParameterSetName = 'Global', Mandatory)] [switch] $Global,
  [string] $PolicyName = 'meeting-gateway'
)
$ErrorActionPreference = 'Stop'
# `pwsh -File` passes "a,b" as one string (the azd hook does): split it.
if ($Organizers) { $Organizers = @($Organizers | ForEach-Object { $_ -split ',' } | Where-Object { $_ }) }

if (-not (Get-Module -ListAvailable -Name MicrosoftTeams)) {
  throw 'The MicrosoftTeams module is missing: Install-Module MicrosoftTeams -Scope CurrentUser'
}
Import-Module MicrosoftTeams
Connect-MicrosoftTeams | Out-Null

$policy = Get-CsApplicationAccessPolicy -Identity $PolicyName -ErrorAction SilentlyContinue
if ($null -eq $policy) {
  New-CsApplicationAccessPolicy -Identity $PolicyName -AppIds $AppId `
    -Description 'meeting-gateway: create Teams meetings by externalId' | Out-Null
  Write-Host "Created application access policy '$PolicyName' for app $AppId."
} elseif ($policy.AppIds -notcontains $AppId) {
  Set-CsApplicationAccessPolicy -Identity $PolicyName -AppIds @{ Add = $AppId }
  Write-Host "Added app $AppId to the policy '$PolicyName'."
}

if ($Global) {
  Grant-CsApplicationAccessPolicy -PolicyName $PolicyName -Global
  Write-Host "Granted '$PolicyName' tenant-wide."
} else {
  foreach ($organizer in $Organizers) {
    Grant-CsApplicationAccessPolicy -PolicyName $PolicyName -Identity $organizer
    Write-Host "Granted '$PolicyName' to $organizer."
  }
}

Write-Host ''
Write-Host 'Verify:'
Get-CsApplicationAccessPolicy -Identity $PolicyName | Format-List Identity, AppIds, Description
if (-not $Global) {
  foreach ($organizer in $Organizers) {
    Get-CsOnlineUser -Identity $organizer | Format-List UserPrincipalName, ApplicationAccessPolicy
  }
}
Write-Host 'Changes can take up to 30 minutes to apply; until then Graph answers 403 for these organizers.'
