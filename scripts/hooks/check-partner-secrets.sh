#!/bin/sh
# Stops (exit 1) an hmac deployment whose partner secrets are not in Key Vault, printing the command that writes
# them. The app setting PARTNER_SECRETS is a Key Vault reference to the secret `partner-secrets` (infra/README.md).
set -eu
. "$(dirname -- "$0")/lib.sh"
uses_auth_mode hmac || exit 0
vault="${AZURE_KEY_VAULT_NAME:-}"
if [ -z "$vault" ]; then
  echo "CALLER_AUTH includes hmac; the Key Vault does not exist yet: this provision creates it, postprovision checks it."
  exit 0
fi
if az keyvault secret show --vault-name "$vault" --name partner-secrets --query id --output tsv >/dev/null 2>&1; then
  echo "Partner secrets found in Key Vault $vault."
  exit 0
fi
cat <<MSG
CALLER_AUTH includes hmac, but Key Vault $vault has no secret 'partner-secrets' (or your az login may not read it:
the role below, or a login to another tenant), so the gateway could not check a single partner signature. Write the partners' secrets, a JSON object
{"<partner>": "<secret of 32 or more characters>"}, then run azd up again:

  az keyvault secret set --vault-name $vault --name partner-secrets --file partner-secrets.json

This needs the role Key Vault Secrets Officer on the vault; the template grants it to the deploying user
(AZURE_PRINCIPAL_ID). Delete partner-secrets.json afterwards.
MSG
exit 1
