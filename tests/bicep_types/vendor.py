"""Re-vendor the Bicep type definitions that infra/ uses, from local mirrors of the two published repositories.

Each output file holds only the types reachable from the listed resource types (references renumbered), with the
repository, commit and path it came from. Run by hand when infra/ starts using a new type or API version:

    python -m tests.bicep_types.vendor --az <Azure/bicep-types-az git dir> --graph <msgraph-bicep-types git dir>
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
AZ_REPO = "Azure/bicep-types-az"
GRAPH_REPO = "microsoftgraph/msgraph-bicep-types"

# Resource type@apiVersion -> (repository, path of its generated types.json). The index (generated/index.json)
# maps each type to these files; the paths are written out here so the mirror's index is not needed.
WANTED: dict[str, tuple[str, str]] = {
    "Microsoft.Resources/resourceGroups@2024-03-01": (AZ_REPO, "generated/resources_11/microsoft.resources/2024-03-01"),
    "Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31": (
        AZ_REPO,
        "generated/msi/microsoft.managedidentity/2023-01-31",
    ),
    "Microsoft.OperationalInsights/workspaces@2023-09-01": (
        AZ_REPO,
        "generated/operationalinsights/microsoft.operationalinsights/2023-09-01",
    ),
    "Microsoft.Insights/components@2020-02-02": (
        AZ_REPO,
        "generated/applicationinsights/microsoft.insights/2020-02-02",
    ),
    "Microsoft.Insights/workbooks@2023-06-01": (AZ_REPO, "generated/applicationinsights/microsoft.insights/2023-06-01"),
    "Microsoft.Insights/scheduledQueryRules@2023-12-01": (AZ_REPO, "generated/monitor_1/microsoft.insights/2023-12-01"),
    "Microsoft.Insights/actionGroups@2023-01-01": (AZ_REPO, "generated/monitor_1/microsoft.insights/2023-01-01"),
    "Microsoft.Storage/storageAccounts@2023-05-01": (AZ_REPO, "generated/storage/microsoft.storage/2023-05-01"),
    "Microsoft.Storage/storageAccounts/blobServices@2023-05-01": (
        AZ_REPO,
        "generated/storage/microsoft.storage/2023-05-01",
    ),
    "Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01": (
        AZ_REPO,
        "generated/storage/microsoft.storage/2023-05-01",
    ),
    "Microsoft.Storage/storageAccounts/tableServices@2023-05-01": (
        AZ_REPO,
        "generated/storage/microsoft.storage/2023-05-01",
    ),
    "Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01": (
        AZ_REPO,
        "generated/storage/microsoft.storage/2023-05-01",
    ),
    "Microsoft.KeyVault/vaults@2023-07-01": (AZ_REPO, "generated/keyvault/microsoft.keyvault/2023-07-01"),
    "Microsoft.KeyVault/vaults/secrets@2023-07-01": (AZ_REPO, "generated/keyvault/microsoft.keyvault/2023-07-01"),
    "Microsoft.Authorization/roleAssignments@2022-04-01": (
        AZ_REPO,
        "generated/authorization/microsoft.authorization/2022-04-01",
    ),
    "Microsoft.Web/serverfarms@2024-04-01": (AZ_REPO, "generated/web/microsoft.web/2024-04-01"),
    "Microsoft.Web/sites@2024-04-01": (AZ_REPO, "generated/web/microsoft.web/2024-04-01"),
    "Microsoft.Web/sites/config@2024-04-01": (AZ_REPO, "generated/web/microsoft.web/2024-04-01"),
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01": (
        AZ_REPO,
        "generated/web/microsoft.web/2024-04-01",
    ),
    "Microsoft.Graph/applications@v1.0": (GRAPH_REPO, "generated/microsoftgraph/microsoft.graph/v1.0/1.0.0"),
    "Microsoft.Graph/servicePrincipals@v1.0": (GRAPH_REPO, "generated/microsoftgraph/microsoft.graph/v1.0/1.0.0"),
    "Microsoft.Graph/appRoleAssignedTo@v1.0": (GRAPH_REPO, "generated/microsoftgraph/microsoft.graph/v1.0/1.0.0"),
}


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True, text=True).stdout


def subgraph(types: list[dict[str, Any]], roots: list[int]) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The types reachable from `roots`, renumbered in the order first reached; refs rewritten to the new numbers."""
    order: list[int] = []
    seen: set[int] = set()

    def refs(node: Any) -> list[int]:
        if isinstance(node, dict):
            if set(node) == {"$ref"} and str(node["$ref"]).startswith("#/"):
                return [int(node["$ref"][2:])]
            return [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    stack = list(reversed(roots))
    while stack:
        index = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        order.append(index)
        stack.extend(reversed(refs(types[index])))
    new = {old: position for position, old in enumerate(order)}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"$ref"} and str(node["$ref"]).startswith("#/"):
                return {"$ref": f"#/{new[int(node['$ref'][2:])]}"}
            return {key: rewrite(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rewrite(value) for value in node]
        return node

    return [rewrite(types[old]) for old in order], new


def vendor(mirrors: dict[str, Path]) -> None:
    by_file: dict[tuple[str, str], list[str]] = {}
    for name, origin in WANTED.items():
        by_file.setdefault(origin, []).append(name)
    for (repo, folder), names in sorted(by_file.items()):
        git_dir = mirrors[repo]
        commit = git(git_dir, "rev-parse", "HEAD").strip()
        path = f"{folder}/types.json"
        types = json.loads(git(git_dir, "show", f"{commit}:{path}"))
        found = {t["name"]: i for i, t in enumerate(types) if t["$type"] == "ResourceType"}
        missing = [n for n in names if n not in found]
        if missing:
            raise SystemExit(f"{path} at {commit} has no {missing}")
        kept, renumber = subgraph(types, [found[n] for n in names])
        out = {
            "source": {"repository": repo, "commit": commit, "path": path},
            "resources": {n: renumber[found[n]] for n in sorted(names)},
            "types": kept,
        }
        target = HERE / (folder.split("/", 1)[1].replace("/", "_") + ".json")
        target.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
        print(f"{target.name}: {len(names)} resource types, {len(kept)} of {len(types)} types")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--az", type=Path, required=True, help="git dir of a clone of Azure/bicep-types-az")
    parser.add_argument("--graph", type=Path, required=True, help="git dir of a clone of msgraph-bicep-types")
    args = parser.parse_args()
    vendor({AZ_REPO: args.az, GRAPH_REPO: args.graph})


if __name__ == "__main__":
    main()
