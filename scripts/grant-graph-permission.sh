#!/usr/bin/env bash
# Grant the gateway's managed identity the Microsoft Graph application permission
# OnlineMeetings.ReadWrite.All. The template leaves it to this script by default (grantGraphPermission=false), so
# that a deployer without Entra rights can run `azd up`. Run once by a Privileged Role Administrator, after `azd up`;
# `azd provision` never removes the assignment:
#
#   az login --tenant <tenant id>
#   scripts/grant-graph-permission.sh <identity principal id>   # azd env get-value GATEWAY_IDENTITY_PRINCIPAL_ID
set -euo pipefail

principal_id="${1:?usage: $0 <managed identity principal (object) id>}"
graph_app_id="00000003-0000-0000-c000-000000000000"
role_id="b8bb2037-6e08-44ac-a4ea-4674e010e2a4" # OnlineMeetings.ReadWrite.All (application)

graph_sp_id=$(az ad sp show --id "$graph_app_id" --query id --output tsv)
existing=$(az rest --method GET \
  --url "https://graph.microsoft.com/v1.0/servicePrincipals/$principal_id/appRoleAssignments" \
  --query "value[?appRoleId=='$role_id'] | length(@)" --output tsv)
if [ "$existing" != "0" ]; then
  echo "The identity already has OnlineMeetings.ReadWrite.All."
  exit 0
fi
az rest --method POST \
  --url "https://graph.microsoft.com/v1.0/servicePrincipals/$principal_id/appRoleAssignments" \
  --headers "Content-Type=application/json" \
  --body "{\"principalId\": \"$principal_id\", \"resourceId\": \"$graph_sp_id\", \"appRoleId\": \"$role_id\"}" \
  --output none
echo "Granted OnlineMeetings.ReadWrite.All to $principal_id."
