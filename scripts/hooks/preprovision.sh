#!/bin/sh
# azd preprovision hook: stop before provisioning an hmac deployment whose partner secrets are missing.
set -eu
exec sh "$(dirname -- "$0")/check-partner-secrets.sh"
