#!/bin/sh
# The Graph application permission OnlineMeetings.ReadWrite.All for the gateway's identity: granted here when the
# signed-in user may (Privileged Role Administrator or Global Administrator); otherwise the exact command and role
# are printed and the deployment goes on (the gateway answers Graph's 403 until someone runs it).
set -eu
principal="${GATEWAY_IDENTITY_PRINCIPAL_ID:?GATEWAY_IDENTITY_PRINCIPAL_ID is unset: run azd provision first}"
if [ "${GRANT_GRAPH_PERMISSION:-false}" = "true" ]; then
  echo "Graph permission: granted by the template (GRANT_GRAPH_PERMISSION=true)."
  exit 0
fi
script="$(dirname -- "$0")/../grant-graph-permission.sh"
if output=$(bash "$script" "$principal" 2>&1); then
  echo "$output"
  exit 0
fi
cat <<MSG
Graph permission NOT granted: your account may not assign Microsoft Graph application permissions.
  $(printf '%s' "$output" | tail -n 1)
A Privileged Role Administrator (or Global Administrator) of tenant ${AZURE_TENANT_ID:-<tenant id>} runs, once:

  az login --tenant ${AZURE_TENANT_ID:-<tenant id>}
  bash scripts/grant-graph-permission.sh $principal

Until then Graph answers 403 to every createOrGet the gateway sends.
MSG
