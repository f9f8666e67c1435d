#!/bin/sh
# Opt-in: the Teams application access policy for the organizers in TEAMS_POLICY_ORGANIZERS (comma-separated UPNs
# or object ids, or * for the whole tenant). Runs scripts/teams-access-policy.ps1 with PowerShell 7 when present;
# otherwise, or when it fails (it needs a Teams Administrator), prints the exact command.
set -eu
app="${GATEWAY_IDENTITY_CLIENT_ID:?GATEWAY_IDENTITY_CLIENT_ID is unset: run azd provision first}"
organizers=$(printf '%s' "${TEAMS_POLICY_ORGANIZERS:-}" | tr -d ' ')
if [ -z "$organizers" ]; then
  cat <<MSG
Teams application access policy: skipped (opt-in). To let azd apply it, as a Teams Administrator:
  azd env set TEAMS_POLICY_ORGANIZERS 'alice@contoso.com,bob@contoso.com'   # or '*' for every user
or run it yourself: pwsh scripts/teams-access-policy.ps1 -AppId $app -Organizers alice@contoso.com
MSG
  exit 0
fi
if [ "$organizers" = "*" ]; then
  set -- -AppId "$app" -Global
  shown="-AppId $app -Global"
else
  set -- -AppId "$app" -Organizers "$organizers"
  shown="-AppId $app -Organizers $organizers"
fi
script="$(dirname -- "$0")/../teams-access-policy.ps1"
if command -v pwsh >/dev/null 2>&1; then
  if pwsh -NoProfile -File "$script" "$@"; then
    exit 0
  fi
  echo "Teams application access policy NOT applied (the script failed; it needs the Teams Administrator role)."
else
  echo "Teams application access policy NOT applied: PowerShell 7 (pwsh) is not installed here."
fi
cat <<MSG
A Teams Administrator runs, with PowerShell 7 and the MicrosoftTeams module (Install-Module MicrosoftTeams):

  pwsh scripts/teams-access-policy.ps1 $shown

Until then Graph answers 403 for these organizers; the policy takes up to 30 minutes to apply.
MSG
