"""Checks infra/'s Bicep against the vendored published type definitions (tests/bicep_types/): every resource
type@apiVersion, every property path, and every literal value (enums, bounds, kinds), as `bicep build` would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bicep_reader import Arr, BicepFile, Expr, Lit, Obj, Resource, Value, parse

TYPES_DIR = Path(__file__).parent / "bicep_types"
# Keywords Bicep accepts in every resource body besides the type's own properties.
RESOURCE_KEYWORDS = {"dependsOn", "parent", "scope"}
SCOPES = {"tenant": 1, "managementGroup": 2, "subscription": 4, "resourceGroup": 8}
EXTENSION_SCOPE = 16
FLAG_REQUIRED, FLAG_READ_ONLY = 1, 2


@dataclass(frozen=True)
class TypeRef:
    table: list[dict[str, Any]]
    index: int

    @property
    def node(self) -> dict[str, Any]:
        return self.table[self.index]

    def ref(self, pointer: dict[str, str]) -> TypeRef:
        return TypeRef(self.table, int(pointer["$ref"][2:]))


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class Registry:
    """The vendored resource types, by lower-cased type@apiVersion (Bicep matches types case-insensitively)."""

    def __init__(self, directory: Path = TYPES_DIR) -> None:
        self.resources: dict[str, TypeRef] = {}
        self.sources: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.json")):
            data = json.loads(path.read_text())
            for name, index in data["resources"].items():
                self.resources[name.lower()] = TypeRef(data["types"], index)
                self.sources[name] = data["source"]

    def get(self, name: str) -> TypeRef | None:
        return self.resources.get(name.lower())


def full_type(resource: Resource) -> str:
    """A nested child's type is its parent's type plus its own segment, at the parent's API version."""
    if resource.enclosing is None or "/" in resource.type.split("@", 1)[0]:
        return resource.type
    parent = full_type(resource.enclosing)
    parent_type, version = parent.split("@", 1)
    child, _, own_version = resource.type.partition("@")
    return f"{parent_type}/{child}@{own_version or version}"


def describe(ref: TypeRef) -> str:
    node = ref.node
    kind = node["$type"]
    if kind == "StringLiteralType":
        return repr(node["value"])
    if kind == "UnionType":
        return " | ".join(describe(ref.ref(e)) for e in node["elements"])
    return str(node.get("name") or kind.removesuffix("Type").lower())


class Checker:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []
        self.file = ""

    def report(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def check_file(self, name: str, bicep: BicepFile) -> None:
        self.file = name
        for resource in bicep.resources:
            self.check_resource(resource, bicep)

    def check_resource(self, resource: Resource, bicep: BicepFile) -> None:
        name = full_type(resource)
        ref = self.registry.get(name)
        if ref is None:
            self.report(resource.line, f"{resource.symbol}: no published type {name}")
            return
        scopes = ref.node.get("writableScopes", ref.node.get("scopeType", 0))
        needed = EXTENSION_SCOPE if resource.body.get("scope") is not None else SCOPES.get(bicep.target_scope, 0)
        if scopes and not resource.existing and not scopes & needed:
            self.report(resource.line, f"{resource.symbol}: {name} cannot be deployed at {bicep.target_scope} scope")
        body = ref.ref(ref.node["body"])
        keywords = {k: v for k, v, _ in resource.body.entries if k in RESOURCE_KEYWORDS}
        own = Obj([e for e in resource.body.entries if e[0] not in keywords], resource.body.line)
        if "parent" in keywords and resource.enclosing is not None:
            self.report(resource.line, f"{resource.symbol}: a nested resource cannot also name a parent")
        self.check_value(own, body, resource.symbol, required=not resource.existing)

    def check_value(self, value: Value, ref: TypeRef, path: str, required: bool = True) -> None:
        for problem in self.value_problems(value, ref, path, required):
            self.report(*problem)

    def value_problems(self, value: Value, ref: TypeRef, path: str, required: bool = True) -> list[tuple[int, str]]:
        node = ref.node
        kind = node["$type"]
        if kind == "AnyType":
            return []
        if isinstance(value, Expr):
            # Not evaluated; a ternary's literal branches are each checked.
            return [p for alt in value.alternatives for p in self.value_problems(alt, ref, path, required)]
        if kind == "UnionType":
            closed = self.published_values(value, ref, path)
            if closed:
                return closed
            options = [self.value_problems(value, ref.ref(e), path, required) for e in node["elements"]]
            if any(not o for o in options):
                return []
            shown = value.value if isinstance(value, Lit) else type(value).__name__.lower()
            return [(value.line, f"{path}: {shown!r} is not one of {describe(ref)}")]
        if isinstance(value, Lit):
            return self.literal_problems(value, ref, path)
        if isinstance(value, Arr):
            if kind != "ArrayType":
                return [(value.line, f"{path}: an array where the type is {describe(ref)}")]
            item = ref.ref(node["itemType"])
            return [p for i, v in enumerate(value.items) for p in self.value_problems(v, item, f"{path}[{i}]")]
        if kind == "ObjectType":
            return self.object_problems(
                value, ref, node["properties"], node.get("additionalProperties"), path, required
            )
        if kind == "DiscriminatedObjectType":
            return self.discriminated_problems(value, ref, path, required)
        return [(value.line, f"{path}: an object where the type is {describe(ref)}")]

    def published_values(self, value: Value, ref: TypeRef, path: str) -> list[tuple[int, str]]:
        """An extensible enum (published values | string) accepts any string in Bicep; this repo keeps to the
        published values, so a typo or an invented value fails here rather than at ARM."""
        elements = [ref.ref(e).node for e in ref.node["elements"]]
        known = [e["value"] for e in elements if e["$type"] == "StringLiteralType"]
        if not (isinstance(value, Lit) and isinstance(value.value, str) and known) or value.value in known:
            return []
        return [(value.line, f"{path}: {value.value!r} is not one of the published values {known}")]

    def literal_problems(self, value: Lit, ref: TypeRef, path: str) -> list[tuple[int, str]]:
        node, v = ref.node, value.value
        kind = node["$type"]
        bad = [(value.line, f"{path}: {v!r} is not {describe(ref)}")]
        if v is None:
            return []
        if kind == "StringLiteralType":
            return [] if v == node["value"] else bad
        if kind == "StringType":
            if not isinstance(v, str):
                return bad
            if len(v) < node.get("minLength", 0) or len(v) > node.get("maxLength", len(v)):
                return [(value.line, f"{path}: {v!r} has a length outside the type's bounds")]
            return []
        if kind == "BooleanType":
            return [] if isinstance(v, bool) else bad
        if kind == "IntegerType":
            if isinstance(v, bool) or not isinstance(v, int):
                return bad
            if v < node.get("minValue", v) or v > node.get("maxValue", v):
                return [(value.line, f"{path}: {v} is outside {node.get('minValue')}..{node.get('maxValue')}")]
            return []
        return bad

    def object_problems(
        self,
        value: Obj,
        ref: TypeRef,
        properties: dict[str, Any],
        additional: dict[str, str] | None,
        path: str,
        required: bool,
    ) -> list[tuple[int, str]]:
        problems: list[tuple[int, str]] = []
        for key, item, line in value.entries:
            where = f"{path}.{key}" if key is not None else f"{path}[computed key]"
            prop = properties.get(key) if key is not None else None
            if prop is None:
                if additional is not None:
                    problems += self.value_problems(item, ref.ref(additional), where)
                    continue
                if key is None:
                    problems.append((line, f"{where}: {describe(ref)} takes no computed keys"))
                    continue
                near = [p for p in properties if p.lower() == key.lower()]
                hint = f" (the type spells it {near[0]})" if near else ""
                problems.append((line, f"{where}: {describe(ref)} has no property {key!r}{hint}"))
                continue
            if prop.get("flags", 0) & FLAG_READ_ONLY:
                problems.append((line, f"{where}: read-only in {describe(ref)}"))
                continue
            problems += self.value_problems(item, ref.ref(prop["type"]), where)
        if required:
            given = {k for k, _, _ in value.entries}
            for name, prop in properties.items():
                if (
                    prop.get("flags", 0) & FLAG_REQUIRED
                    and not prop.get("flags", 0) & FLAG_READ_ONLY
                    and name not in given
                ):
                    problems.append((value.line, f"{path}: required property {name!r} missing"))
        return problems

    def discriminated_problems(self, value: Obj, ref: TypeRef, path: str, required: bool) -> list[tuple[int, str]]:
        node = ref.node
        chosen = value.get(node["discriminator"])
        base = dict(node.get("baseProperties", {}))
        if isinstance(chosen, Lit) and chosen.value in node["elements"]:
            element = ref.ref(node["elements"][chosen.value])
            properties = {**base, **element.node["properties"]}
            return self.object_problems(
                value, element, properties, element.node.get("additionalProperties"), path, required
            )
        if isinstance(chosen, Lit):
            options = " | ".join(map(repr, node["elements"]))
            return [(chosen.line, f"{path}.{node['discriminator']}: {chosen.value!r} is not one of {options}")]
        merged = dict(base)  # an expression chooses: any element's properties may appear
        for element in node["elements"].values():
            merged.update(ref.ref(element).node["properties"])
        return self.object_problems(value, ref, merged, None, path, required=False)


def module_problems(name: str, bicep: BicepFile, sources: dict[str, str]) -> list[Problem]:
    """Each module's params against the target file's: none unknown, every one without a default given."""
    problems = []
    for module in bicep.modules:
        target = str(Path(name).parent / module.path)
        if target not in sources:  # check_tree reports a missing file; a lone snippet's modules are not checked
            continue
        declared = parse(sources[target]).params
        params = module.body.get("params")
        given = {k for k, _, _ in params.entries} if isinstance(params, Obj) else set()
        problems += [
            Problem(name, module.line, f"{module.symbol}: {target} has no param {p!r}")
            for p in sorted(given - set(declared))
        ]
        missing = sorted(p for p, (_, has_default) in declared.items() if not has_default and p not in given)
        problems += [Problem(name, module.line, f"{module.symbol}: param {p!r} of {target} not given") for p in missing]
        if isinstance(params, Obj):
            problems += [
                Problem(name, line, f"{module.symbol}: param {key!r} of {target} is {declared[key][0]}, not {shown}")
                for key, value, line in params.entries
                if key in declared and (shown := _literal_mismatch(value, declared[key][0]))
            ]
    return problems


_LITERAL_KINDS: dict[str, type] = {"string": str, "int": int, "bool": bool}


def _literal_mismatch(value: Value, declared: str) -> str | None:
    """A module argument's literal (or a ternary's literal branch, or an object or array) that the target param's
    declared type cannot take, as `bicep build` reports it (BCP036); None when it fits or is not a literal."""
    shapes = {Obj: "object", Arr: "array"}
    for alt in value.alternatives if isinstance(value, Expr) else [value]:
        if isinstance(alt, (Obj, Arr)) and declared != shapes[type(alt)]:
            return f"an {shapes[type(alt)]}"
        if isinstance(alt, Lit) and alt.value is not None:
            kind = _LITERAL_KINDS.get(declared)
            fits = declared not in ("object", "array") and (kind is None or type(alt.value) is kind)
            if not fits:
                return repr(alt.value)
    return None


def check_sources(sources: dict[str, str], registry: Registry | None = None) -> list[Problem]:
    """Problems in the given Bicep sources (file name -> text; module paths resolve among the names)."""
    checker = Checker(registry or Registry())
    for name, source in sources.items():
        bicep = parse(source)
        checker.check_file(name, bicep)
        checker.problems += module_problems(name, bicep, sources)
    return checker.problems


def check_tree(root: Path, registry: Registry | None = None) -> list[Problem]:
    sources = {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.bicep"))}
    missing = [
        Problem(name, module.line, f"{module.symbol}: no file {Path(name).parent / module.path}")
        for name, source in sources.items()
        for module in parse(source).modules
        if not module.path.startswith("br:") and str(Path(name).parent / module.path) not in sources
    ]
    return missing + check_sources(sources, registry)
