"""Rules the Bicep compiler and azd enforce, checked without them (neither installs here): tests/test_infra.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PRAGMAS = ("#disable-next-line", "#disable-diagnostics", "#restore-diagnostics")
# Resource properties Bicep can compute at the start of a deployment; any other access is deployment-time.
START_PROPERTIES = {"name", "type", "apiVersion"}
DECLARATION = re.compile(r"^(?:@|param\b|var\b|resource\b|module\b|output\b|type\b|func\b|import\b|extension\b)")
LOG_LEVELS = ["Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"]
# Commands that change an app's settings or site properties by hand: the next `azd provision` undoes them.
HAND_SETTINGS = re.compile(
    r"appsettings\s+(?:set|delete)|az\s+functionapp\s+update|az\s+functionapp\s+config\s+set|az\s+webapp\s+config"
)


@dataclass(frozen=True)
class Violation:
    line: int
    text: str


def hash_lines(source: str) -> list[Violation]:
    """`#` lines other than the three pragmas: in Bicep any other one is a compile error (comments are `//`)."""
    found, in_multiline = [], False
    for number, line in enumerate(source.splitlines(), 1):
        if not in_multiline and line.lstrip().startswith("#") and not line.lstrip().startswith(PRAGMAS):
            found.append(Violation(number, line.strip()))
        if line.count("'''") % 2:
            in_multiline = not in_multiline
    return found


def code_only(source: str) -> str:
    """The source with comments and literal string text blanked (same length, same lines); `${...}` kept."""
    out, i, n = list(source), 0, len(source)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if source.startswith("'''", i):
            end = source.find("'''", i + 3)
            end = n if end < 0 else end + 3
            blank(i, end)
            i = end
        elif source.startswith("//", i) or (source[i] == "#" and not source[source.rfind("\n", 0, i) + 1 : i].strip()):
            # `#` lines: pragmas, or errors that hash_lines reports; either way no code to read here.
            end = source.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif source[i] == "'":
            i = _skip_string(source, i, blank)
        else:
            i += 1
    return "".join(out)


def _skip_string(source: str, start: int, blank: Any) -> int:
    """Blank a single-quoted string's literal text but keep its `${...}` expressions; return the index after it."""
    i, literal_from = start + 1, start
    while i < len(source):
        if source[i] == "\\":
            i += 2
        elif source.startswith("${", i):
            blank(literal_from, i + 2)
            depth, i = 1, i + 2
            while i < len(source) and depth:
                if source[i] == "{":
                    depth += 1
                elif source[i] == "}":
                    depth -= 1
                elif source[i] == "'":
                    i = _skip_string(source, i, blank) - 1
                i += 1
            literal_from = i - 1
        elif source[i] == "'":
            blank(literal_from, i + 1)
            return i + 1
        else:
            i += 1
    blank(literal_from, len(source))
    return len(source)


def declarations(code: str) -> list[tuple[int, str]]:
    """Top-level declarations as (first line, text): each runs to the next line that starts one at column 0."""
    chunks: list[tuple[int, str]] = []
    for number, line in enumerate(code.splitlines(), 1):
        if DECLARATION.match(line) or not chunks:
            chunks.append((number, line + "\n"))
        else:
            first, text = chunks[-1]
            chunks[-1] = (first, text + line + "\n")
    return chunks


def _deployment_time(expression: str, symbols: set[str], tainted: set[str]) -> bool:
    if re.search(r"\breference\s*\(|\blist\w*\s*\(", expression):
        return True
    if symbols:
        access = rf"(?<![\w.])({'|'.join(map(re.escape, symbols))})(?:::\w+)*(?:\[[^\]]*\])?\.(\w+)"
        if any(m.group(2) not in START_PROPERTIES for m in re.finditer(access, expression)):
            return True
    # Object keys (`key: value` at a line's start) are not references, whatever their name.
    values = re.sub(r"^(\s*)\w+(?=\s*:)", r"\1", expression, flags=re.M)
    return bool(set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)", values)) & tainted)


def deployment_time_loops(source: str) -> list[Violation]:
    """`for` expressions over deployment-time values (BCP178): a resource's or module's runtime properties,
    `reference()`/`list*()`, or a variable holding any of those, directly or through other variables."""
    code = code_only(source)
    symbols = set(re.findall(r"\b(?:resource|module)\s+(\w+)\s", code))  # the type string is blanked
    chunks = declarations(code)
    variables = {}
    for _, text in chunks:
        match = re.match(r"var\s+(\w+)\s*=(.*)", text, re.S)
        if match:
            variables[match.group(1)] = match.group(2)
    tainted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, expression in variables.items():
            if name not in tainted and _deployment_time(expression, symbols, tainted):
                tainted.add(name)
                changed = True
    found = []
    for match in re.finditer(r"\[\s*for\s+(?:\w+|\([^)]*\))\s+in\s+", code):
        iterable = _until_body(code, match.end())
        if _deployment_time(iterable, symbols, tainted):
            line = code.count("\n", 0, match.start()) + 1
            found.append(Violation(line, source.splitlines()[line - 1].strip()))
    return found


def _until_body(code: str, start: int) -> str:
    """The iterated expression of a `for`: up to the `:` that opens its body, at bracket depth 0."""
    depth = 0
    for i in range(start, len(code)):
        char = code[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == ":" and depth == 0 and code[i + 1 : i + 2] != ":" and code[i - 1] != ":":
            return code[start:i]
    return code[start:]


def bicep_params(source: str) -> dict[str, str]:
    """Parameter name to declared type."""
    return dict(re.findall(r"^param\s+(\w+)\s+(\w+)", code_only(source), re.M))


def json_parameter_problems(parameters_file: str, bicep_source: str, json_env_names: set[str]) -> list[str]:
    """Parameters azd fills from the environment that can hold JSON must be object/array parameters whose value
    is exactly "${NAME}": azd parses those as JSON, while a string parameter gets the text pasted into the file."""
    types = bicep_params(bicep_source)
    described = re.findall(r"@description\('((?:[^'\\]|\\.)*)'\)\s*\nparam\s+(\w+)", bicep_source)
    descriptions = {name: description for description, name in described}
    problems = []
    for name, entry in json.loads(parameters_file)["parameters"].items():
        value = entry.get("value")
        if not isinstance(value, str) or "${" not in value:
            continue
        kind = types.get(name)
        if kind is None:
            problems.append(f"{name}: no such parameter in the template")
            continue
        variable = re.fullmatch(r"\$\{(\w+)(?:=(.*))?\}", value, re.S)
        env_name, default = (variable.group(1), variable.group(2)) if variable else (None, None)
        can_hold_json = (
            env_name in json_env_names
            or (default or "").lstrip().startswith(("{", "["))
            or "json" in descriptions.get(name, "").lower()
        )
        if kind in ("object", "array"):
            if not variable or default is not None:
                problems.append(f'{name}: an {kind} parameter takes exactly "${{NAME}}" (the template has the default)')
        elif can_hold_json:
            problems.append(f"{name}: holds JSON but is a {kind} parameter; make it object or array")
    return problems


def host_results_level(host: dict[str, Any]) -> str:
    """The level of the host's request records (category Host.Results), inherited from `default` if not set."""
    levels = host.get("logging", {}).get("logLevel", {})
    return str(levels.get("Host.Results", levels.get("default", "Information")))


def records_successful_requests(host: dict[str, Any]) -> bool:
    return LOG_LEVELS.index(host_results_level(host)) <= LOG_LEVELS.index("Information")


def hand_set_settings(markdown: str) -> list[Violation]:
    """Lines telling the reader to change app settings or site properties by hand."""
    return [Violation(n, line.strip()) for n, line in enumerate(markdown.splitlines(), 1) if HAND_SETTINGS.search(line)]


def object_keys(source: str, variable: str) -> dict[str, str]:
    """Keys and raw values of a top-level `var NAME = { ... }` object literal."""
    for _, text in declarations(source):
        match = re.match(rf"var\s+{variable}\s*=\s*\{{\n(.*)^\}}", text, re.S | re.M)
        if match:
            pairs = re.findall(r"^\s{2}(\w+):\s*(.*)$", match.group(1), re.M)
            return {key: re.sub(r"\s+//\s.*$", "", value).strip() for key, value in pairs}
    raise KeyError(variable)


def resource_body(source: str, symbol: str) -> str:
    """The declaration text of one top-level resource."""
    for _, text in declarations(source):
        if re.match(rf"resource\s+{symbol}\s+'", text):
            return text
    raise KeyError(symbol)


# siteConfig properties ARM rejects on Flex Consumption sites with error 51021 ("The following site configuration
# property (Site.SiteConfig.X) for Flex Consumption sites is invalid"). The published type allows them all; these
# are the ones named in ARM's own error text as quoted in microsoft/azure-pipelines-tasks#21032 and #22254,
# Azure/azure-functions-host#10643, Azure/terraform-azurerm-avm-res-web-site#283 and #360 (Microsoft Q&A 2277522).
FLEX_REJECTED_SITE_CONFIG = {
    "ftpsState",
    "use32BitWorkerProcess",
    "preWarmedInstanceCount",
    "netFrameworkVersion",
    "functionsRuntimeScaleMonitoringEnabled",
    "linuxFxVersion",
    "functionAppScaleLimit",
}


def flex_site_config_problems(source: str) -> list[Violation]:
    """siteConfig properties ARM rejects on a Flex Consumption site (one with properties.functionAppConfig)."""
    from tests.bicep_reader import Obj, parse

    found = []
    for resource in parse(source).resources:
        properties = resource.body.get("properties")
        if not resource.type.lower().startswith("microsoft.web/sites@") or not isinstance(properties, Obj):
            continue
        site_config = properties.get("siteConfig")
        if properties.get("functionAppConfig") is None or not isinstance(site_config, Obj):
            continue
        found += [Violation(line, f"{resource.symbol}.properties.siteConfig.{key}")
                  for key, _, line in site_config.entries if key in FLEX_REJECTED_SITE_CONFIG]  # fmt: skip
    return found
