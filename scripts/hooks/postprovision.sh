#!/bin/sh
# azd postprovision hook: the Graph permission, the opt-in Teams policy, then partner secrets. The first two never
# fail the deployment (without the rights they print who must run what); a missing secret stops azd up before the
# deploy. Last, so that one run shows every step left, and the secret's command is the final thing printed.
set -eu
here=$(dirname -- "$0")
sh "$here/grant-graph.sh"
sh "$here/teams-policy.sh"
sh "$here/check-partner-secrets.sh"
