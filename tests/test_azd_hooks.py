"""The azd hooks (scripts/hooks/, wired in azure.yaml) run against fakes: `az`, `curl` and `pwsh` shims on PATH
that log their arguments and answer as told. Checked: exit codes, the commands run, the commands printed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parent.parent
HOOKS = ROOT / "scripts" / "hooks"
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "66666666-7777-8888-9999-000000000000"

# Each shim appends "<name> <args>" to $SHIM_LOG and exits with $<NAME>_EXIT (default 0), printing $<NAME>_OUT.
SHIM = """#!/bin/sh
echo "{name} $*" >> "$SHIM_LOG"
{extra}
printf '%s' "${{{upper}_OUT:-}}"
exit "${{{upper}_EXIT:-0}}"
"""
# curl: answers the statuses in $CURL_STATUSES one per call (the last one repeats), writing $CURL_BODY to --output.
# A `--header @file` argument logs the file's content as "curl-header <content>".
CURL_EXTRA = """out=""; prev=""
for a in "$@"; do
  [ "$prev" = "--output" ] && out="$a"
  case "$prev:$a" in --header:@*) echo "curl-header $(cat "${a#@}")" >> "$SHIM_LOG" ;; esac
  prev="$a"
done
n=$(grep -c '^curl ' "$SHIM_LOG")
status=$(printf '%s' "$CURL_STATUSES" | tr ' ' '\\n' | sed -n "${n}p")
[ -n "$status" ] || status=$(printf '%s' "$CURL_STATUSES" | tr ' ' '\\n' | tail -n 1)
[ -n "$out" ] && printf '%s' "${CURL_BODY:-}" > "$out"
printf '%s' "$status"; exit 0"""


@pytest.fixture
def shims(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, extra in (("az", ""), ("curl", CURL_EXTRA), ("pwsh", ""), ("sleep", "")):
        shim = bin_dir / name
        shim.write_text(SHIM.format(name=name, upper=name.upper(), extra=extra))
        shim.chmod(0o755)
    return bin_dir


def run(hook: str, shims: Path, env: dict[str, str], without: tuple[str, ...] = ()) -> tuple[int, str, list[str]]:
    for name in without:
        (shims / name).unlink()
    log = shims.parent / "calls.log"
    log.write_text("")
    base = {"PATH": f"{shims}:/usr/bin:/bin", "SHIM_LOG": str(log), "HOME": str(shims.parent)}
    result = subprocess.run(["sh", str(HOOKS / hook)], env=base | env, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout + result.stderr, log.read_text().splitlines()


# --- azure.yaml ------------------------------------------------------------------------------------------------------


def azure_yaml() -> dict:
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def test_azure_yaml_is_valid_against_azds_published_schema():
    schema = json.loads((ROOT / "tests" / "azd" / "azure.yaml.schema.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    assert list(validator.iter_errors(azure_yaml())) == []
    broken = azure_yaml()
    broken["hooks"]["postdeploy"]["script"] = "x"
    assert list(validator.iter_errors(broken))


def test_azure_yaml_wires_each_hook_and_the_version_floor():
    config = azure_yaml()
    hooks = {name: hook["run"] for name, hook in config["hooks"].items()}
    assert hooks == {
        "preprovision": "scripts/hooks/preprovision.sh",
        "postprovision": "scripts/hooks/postprovision.sh",
        "postdeploy": "scripts/hooks/postdeploy.sh",
    }
    assert all((ROOT / path).is_file() for path in hooks.values())
    # object parameters from the environment (#6694); not the releases that discard hook output in azd up (#8263)
    assert config["requiredVersions"]["azd"] == ">= 1.23.4 != 1.25.0 != 1.25.1 != 1.25.2"


# --- partner secrets (pre- and postprovision) ---------------------------------------------------------------------


def test_function_key_deployments_skip_the_secret_check(shims: Path):
    code, _, calls = run("preprovision.sh", shims, {"CALLER_AUTH": "function-key", "AZURE_KEY_VAULT_NAME": "kv1"})
    assert (code, calls) == (0, [])


def test_hmac_without_the_secret_stops_with_the_command(shims: Path):
    env = {"CALLER_AUTH": "entra, hmac", "AZURE_KEY_VAULT_NAME": "kv-abc", "AZ_EXIT": "3"}
    code, out, calls = run("preprovision.sh", shims, env)
    assert code == 1
    assert calls == ["az keyvault secret show --vault-name kv-abc --name partner-secrets --query id --output tsv"]
    assert "az keyvault secret set --vault-name kv-abc --name partner-secrets --file partner-secrets.json" in out
    assert "Key Vault Secrets Officer" in out


def test_hmac_with_the_secret_goes_on(shims: Path):
    code, out, _ = run("preprovision.sh", shims, {"CALLER_AUTH": "hmac", "AZURE_KEY_VAULT_NAME": "kv-abc"})
    assert code == 0
    assert "found" in out


def test_hmac_first_provision_goes_on_and_postprovision_checks(shims: Path):
    code, out, calls = run("preprovision.sh", shims, {"CALLER_AUTH": "hmac", "AZ_EXIT": "3"})
    assert (code, calls) == (0, [])
    env = {"CALLER_AUTH": "hmac", "AZURE_KEY_VAULT_NAME": "kv-new", "AZ_EXIT": "3",
           "GATEWAY_IDENTITY_PRINCIPAL_ID": PRINCIPAL, "GATEWAY_IDENTITY_CLIENT_ID": CLIENT_ID}  # fmt: skip
    code, out, calls = run("postprovision.sh", shims, env)
    assert code == 1  # azd up stops before deploying a gateway that cannot check one signature
    assert out.rstrip().endswith("Delete partner-secrets.json afterwards.")  # the last word, after the other steps
    assert "Graph permission NOT granted" in out  # a missing secret does not hide the steps left to do
    assert "Teams application access policy: skipped" in out
    assert calls[-1] == "az keyvault secret show --vault-name kv-new --name partner-secrets --query id --output tsv"


# --- Graph permission (postprovision) -----------------------------------------------------------------------------

BASE = {"GATEWAY_IDENTITY_PRINCIPAL_ID": PRINCIPAL, "GATEWAY_IDENTITY_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": "t-1"}


def test_postprovision_grants_graph_when_the_user_may(shims: Path):
    code, out, calls = run("postprovision.sh", shims, BASE | {"AZ_OUT": "0"})
    assert code == 0
    posts = [c for c in calls if "--method POST" in c]
    assert len(posts) == 1
    assert f"servicePrincipals/{PRINCIPAL}/appRoleAssignments" in posts[0]
    assert "b8bb2037-6e08-44ac-a4ea-4674e010e2a4" in posts[0]  # OnlineMeetings.ReadWrite.All
    assert f"Granted OnlineMeetings.ReadWrite.All to {PRINCIPAL}" in out


def test_postprovision_prints_who_must_grant_graph_when_the_user_may_not(shims: Path):
    code, out, _ = run("postprovision.sh", shims, BASE | {"AZ_EXIT": "1", "AZ_OUT": "Authorization_RequestDenied"})
    assert code == 0  # Entra rights are not the deployer's: the deployment goes on
    assert "Privileged Role Administrator" in out
    assert f"az login --tenant t-1\n  bash scripts/grant-graph-permission.sh {PRINCIPAL}" in out


def test_postprovision_leaves_graph_to_the_template_when_it_grants(shims: Path):
    code, out, calls = run("postprovision.sh", shims, BASE | {"GRANT_GRAPH_PERMISSION": "true"})
    assert code == 0
    assert not [c for c in calls if c.startswith("az ")]
    assert "granted by the template" in out


# --- Teams application access policy (postprovision, opt-in) ------------------------------------------------------


def test_teams_policy_is_opt_in_and_says_how(shims: Path):
    code, out, calls = run("postprovision.sh", shims, BASE | {"GRANT_GRAPH_PERMISSION": "true"})
    assert code == 0
    assert not [c for c in calls if c.startswith("pwsh")]
    assert "azd env set TEAMS_POLICY_ORGANIZERS" in out


def test_teams_policy_runs_for_the_organizers_named(shims: Path):
    env = BASE | {"GRANT_GRAPH_PERMISSION": "true", "TEAMS_POLICY_ORGANIZERS": "alice@contoso.com, bob@contoso.com"}
    code, _, calls = run("postprovision.sh", shims, env)
    assert code == 0
    script = ROOT / "scripts" / "hooks" / ".." / "teams-access-policy.ps1"
    expected = f"pwsh -NoProfile -File {script} -AppId {CLIENT_ID} -Organizers alice@contoso.com,bob@contoso.com"
    assert [c for c in calls if c.startswith("pwsh")] == [expected]


def test_teams_policy_for_the_whole_tenant(shims: Path):
    env = BASE | {"GRANT_GRAPH_PERMISSION": "true", "TEAMS_POLICY_ORGANIZERS": "*"}
    _, _, calls = run("postprovision.sh", shims, env)
    assert [c.split(" -AppId ", 1)[1] for c in calls if c.startswith("pwsh")] == [f"{CLIENT_ID} -Global"]


@pytest.mark.parametrize("failure", ["no-pwsh", "not-admin"])
def test_teams_policy_prints_the_command_when_it_cannot_run(shims: Path, failure: str):
    env = BASE | {"GRANT_GRAPH_PERMISSION": "true", "TEAMS_POLICY_ORGANIZERS": "alice@contoso.com"}
    if failure == "not-admin":
        env["PWSH_EXIT"] = "1"
    code, out, _ = run("postprovision.sh", shims, env, without=("pwsh",) if failure == "no-pwsh" else ())
    assert code == 0
    assert f"pwsh scripts/teams-access-policy.ps1 -AppId {CLIENT_ID} -Organizers alice@contoso.com" in out
    assert "Teams Administrator" in out


# --- smoke test (postdeploy) --------------------------------------------------------------------------------------

DEPLOYED = {"GATEWAY_URL": "https://func-x.azurewebsites.net", "AZURE_RESOURCE_GROUP": "rg-x",
            "AZURE_FUNCTION_APP_NAME": "func-x", "AZURE_SUBSCRIPTION_ID": "sub-1",
            "SMOKE_TEST_DELAY_SECONDS": "0"}  # fmt: skip


def test_smoke_test_retries_until_health_answers_200_with_a_function_key(shims: Path):
    env = DEPLOYED | {"AZ_OUT": "the-key", "CURL_STATUSES": "000 503 200", "CURL_BODY": '{"status":"healthy"}'}
    code, out, calls = run("postdeploy.sh", shims, env)
    assert code == 0
    assert calls[0] == (  # azd's subscription, not the az login's default one
        "az functionapp keys list --subscription sub-1 --resource-group rg-x --name func-x"
        " --query functionKeys.default --output tsv"
    )
    curls = [c for c in calls if c.startswith("curl ")]
    assert len(curls) == 3
    assert all(c.endswith("https://func-x.azurewebsites.net/health") and "the-key" not in c for c in curls)
    assert [c for c in calls if c.startswith("curl-header")] == ["curl-header x-functions-key: the-key"] * 3
    assert "Smoke test passed" in out


def test_smoke_test_fails_the_deployment_when_health_never_answers_200(shims: Path):
    env = DEPLOYED | {"CALLER_AUTH": "entra", "SMOKE_TEST_ATTEMPTS": "3", "CURL_STATUSES": "503",
                      "CURL_BODY": '{"status":"unhealthy"}'}  # fmt: skip
    code, out, calls = run("postdeploy.sh", shims, env)
    assert code == 1
    assert not [c for c in calls if c.startswith("az ")]  # no key outside function-key mode
    assert len([c for c in calls if c.startswith("curl")]) == 3
    assert 'answered 503 after 3 attempts: {"status":"unhealthy"}' in out


def test_hooks_are_posix_sh():
    for path in HOOKS.glob("*.sh"):
        result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, (path, result.stderr)
        assert os.access(path, os.X_OK) or path.name == "lib.sh", path


def test_smoke_test_asks_for_the_key_again_and_fails_without_one(shims: Path):
    env = DEPLOYED | {"AZ_EXIT": "1", "SMOKE_TEST_ATTEMPTS": "3", "CURL_STATUSES": "200"}
    code, out, calls = run("postdeploy.sh", shims, env)
    assert code == 1
    assert len([c for c in calls if c.startswith("az functionapp keys list")]) == 3
    assert not [c for c in calls if c.startswith("curl")]
    assert "answered no function key yet after 3 attempts" in out
