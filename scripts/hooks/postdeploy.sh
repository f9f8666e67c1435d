#!/bin/sh
# azd postdeploy hook: GET /health until it answers 200 (a new Flex Consumption app takes a while to start), with a
# function key in function-key mode, where the Functions host demands one on every route but the status poll.
set -eu
. "$(dirname -- "$0")/lib.sh"
url="${GATEWAY_URL:?GATEWAY_URL is unset: run azd provision first}/health"
attempts="${SMOKE_TEST_ATTEMPTS:-30}"
delay="${SMOKE_TEST_DELAY_SECONDS:-10}"
body=$(mktemp)
header=$(mktemp) # the key goes to curl in this file (mode 600), never on its command line, which `ps` shows
trap 'rm -f "$body" "$header"' EXIT
key=""
n=1
while :; do
  if uses_auth_mode function-key && [ -z "$key" ]; then
    # A new app's host may not list its keys yet: ask again on the next attempt. The `az` login's default
    # subscription need not be the one azd deployed to: name it.
    key=$(az functionapp keys list ${AZURE_SUBSCRIPTION_ID:+--subscription "$AZURE_SUBSCRIPTION_ID"} \
      --resource-group "${AZURE_RESOURCE_GROUP:?}" --name "${AZURE_FUNCTION_APP_NAME:?}" \
      --query functionKeys.default --output tsv 2>/dev/null || true)
  fi
  if uses_auth_mode function-key && [ -z "$key" ]; then
    status="no function key yet"
    printf '' > "$body"
  else
    [ -z "$key" ] || printf 'x-functions-key: %s\n' "$key" > "$header"
    status=$(curl --silent --show-error --max-time 30 --output "$body" --write-out '%{http_code}' \
      ${key:+--header "@$header"} "$url" 2>/dev/null || true)
  fi
  if [ "$status" = "200" ]; then
    echo "Smoke test passed: GET $url answered 200 $(cat "$body")"
    exit 0
  fi
  if [ "$n" -ge "$attempts" ]; then
    break
  fi
  echo "GET $url: ${status:-no answer}; attempt $n of $attempts, next in ${delay}s"
  n=$((n + 1))
  sleep "$delay"
done
cat <<MSG
Smoke test FAILED: GET $url answered ${status:-nothing} after $attempts attempts: $(cat "$body")
A 503 names the failed check (tableStorage: the identity's table role; tokenEndpoint: the managed identity);
the reason is in this environment's Application Insights (traces and exceptions of the gateway).
MSG
exit 1
