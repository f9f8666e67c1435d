"""No import circles in meetings_core (STYLE.md item 8): e.g. the OpenAPI document and the connector are two
renderings of the contract, each importing it (through contract_schema), neither the other. Imports inside
functions count: they hide a circle, they do not remove it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "meetings_core"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The package's modules that `path` imports, anywhere in the file."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules and c != name}
    # A module's own packages are initialised before it whatever it imports: `from . import sibling` names the
    # sibling, not an edge back to the package that imports this module.
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return found - ancestors


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    root = package.parent
    paths = {module_name(p, root): p for p in package.rglob("*.py")}
    return {name: imports(path, set(paths), root) for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that reach one another (strongly connected, more than one module)."""
    reach = {m: set() for m in graph}
    for start in graph:
        stack = list(graph[start])
        while stack:
            module = stack.pop()
            if module not in reach[start]:
                reach[start].add(module)
                stack.extend(graph[module])
    groups = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert len(graph) > 20
    assert circles(graph) == []


def test_connector_and_openapi_each_render_the_contract():
    graph = import_graph()
    for rendering in ("meetings_core.connector", "meetings_core.openapi"):
        assert "meetings_core.contract_schema" in graph[rendering]
    assert "meetings_core.openapi" not in graph["meetings_core.connector"]
    assert "meetings_core.connector" not in graph["meetings_core.openapi"]


def test_circle_finder_finds_a_circle_hidden_in_a_function(tmp_path: Path):
    package = tmp_path / "meetings_core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("from meetings_core import a\n")
    assert circles(import_graph(package)) == [["meetings_core.a", "meetings_core.b"]]
