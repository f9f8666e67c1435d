#!/bin/sh
# azd postprovision hook: partner secrets (stops azd up before deploy if missing), the Graph permission, and the
# opt-in Teams policy. The last two never fail the deployment: without the rights they print who must run what.
set -eu
here=$(dirname -- "$0")
sh "$here/check-partner-secrets.sh"
sh "$here/grant-graph.sh"
sh "$here/teams-policy.sh"
