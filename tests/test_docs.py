"""The docs cite tests as proof: every cited test must exist, so a renamed or deleted one is noticed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "connector").glob("*.md")])
CITATION = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_cited_test_exists(doc: Path):
    missing = [
        f"{file}::{name}"
        for file, name in CITATION.findall(doc.read_text())
        if not (ROOT / file).exists() or name not in _tests_in(ROOT / file)
    ]
    assert missing == []


def test_the_docs_cite_tests():
    """The control: the pattern finds the citations the security model relies on."""
    assert len(CITATION.findall((ROOT / "docs" / "SECURITY.md").read_text())) >= 20


# An error hint sends a flow author to "<file>, section '<heading>'"; every such reference must name a file and
# a heading that exist (the 403 hint once named a README section that lives in docs/DEPLOY.md).
SECTION = re.compile(r"section '([^']+)'")
SECTION_REFERENCE = re.compile(r"((?:docs/)?[A-Z_]+\.md), section '([^']+)'")


def _section_references() -> list[str]:
    texts = []
    for path in sorted((ROOT / "meetings_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SECTION.search(node.value):
                texts.append(node.value)
    return texts


def _headings(doc: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in doc.read_text().splitlines() if line.startswith("#")}


def test_every_section_an_error_hint_names_exists():
    texts = _section_references()
    assert any("Teams application access policy" in text for text in texts)  # the control: the 403 hint is found
    for text in texts:
        references = SECTION_REFERENCE.findall(text)
        assert len(references) == len(SECTION.findall(text)), f"a section without its file: {text!r}"
        for file, heading in references:
            assert (ROOT / file).exists(), file
            assert heading in _headings(ROOT / file), f"{file} has no section '{heading}'"
