"""The mutation catalogue stays in step with the code: every rule break still applies exactly once and
compiles (a refactor that moves or rewrites the code must update scripts/mutant_catalogue.py too)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from mutant_catalogue import CATALOGUE, Mutant  # noqa: E402
from mutants import Stale, patch  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "meetings_core", root / "meetings_core", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_every_mutant_applies_once_and_compiles(tree: Path, mutant: Mutant):
    try:
        originals = patch(tree, mutant)
    except Stale as stale:
        if mutant.optional and stale.absent:
            pytest.skip("an optional rule whose code is not in this version")
        raise
    try:
        assert originals, "nothing was changed"
        for path, before in originals.items():
            after = path.read_text()
            assert after != before
            compile(after, str(path), "exec")
    finally:
        for path, before in originals.items():
            path.write_text(before)


def test_names_are_unique_and_the_issues_breaks_are_all_there():
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    assert sum(m.listed for m in CATALOGUE) >= 8


def test_a_line_break_in_the_new_text_continues_at_the_matched_lines_indentation(tmp_path: Path):
    source = tmp_path / "m.py"
    source.write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    mutant = Mutant("t", "r", "m.py", (("if x: return 1", "if not x:\n    return 1"),), ())
    patch(tmp_path, mutant)
    assert source.read_text() == "def f(x):\n    if not x:\n        return 1\n    return 2\n"


@pytest.mark.parametrize("text", ["if y:", "return"], ids=["absent", "twice"])
def test_text_not_found_exactly_once_is_stale(tmp_path: Path, text: str):
    (tmp_path / "m.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    with pytest.raises(Stale) as stale:
        patch(tmp_path, Mutant("t", "r", "m.py", ((text, "pass"),), ()))
    assert stale.value.absent == (text == "if y:")


def test_the_first_alternative_that_applies_is_used(tmp_path: Path):
    source = tmp_path / "m.py"
    source.write_text("x = 1\n")
    mutant = Mutant("t", "r", "m.py", (("y = 1", "y = 2"),), (), alternatives=((("x = 1", "x = 3"),),))
    patch(tmp_path, mutant)
    assert source.read_text() == "x = 3\n"
