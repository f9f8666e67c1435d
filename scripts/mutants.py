"""Break each rule in the catalogue, one at a time, and check that the tests notice (`make mutants`).

Works on a copy of the checkout (the working tree is never touched, even when interrupted). First the test
sets must pass unmutated; then each mutant is patched in, its tests run with `-x`, and it is reported as
caught (a test failed), missed (all passed), stale (its code text is gone: update the catalogue) or broken
(the patched file does not compile). Exit status 0 only when every mutant is caught.

    python scripts/mutants.py                 # the whole catalogue
    python scripts/mutants.py --only retry    # mutants whose name contains "retry"
    python scripts/mutants.py --without-rules # the same, with the rule test files left out (what they add)
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mutant_catalogue import CATALOGUE, Mutant

ROOT = Path(__file__).resolve().parent.parent
RULE_TESTS = re.compile(r"tests/test_\w+_rules\.py$")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


class Stale(Exception):
    """The mutant's code text is not in its files exactly once; `absent` when no spelling was found at all."""

    def __init__(self, message: str, absent: bool) -> None:
        super().__init__(message)
        self.absent = absent


@dataclass(frozen=True, slots=True)
class Result:
    mutant: Mutant
    verdict: str
    seconds: float
    detail: str = ""


def copy_checkout(target: Path) -> None:
    """Tracked and untracked (not ignored) files; the shared .venv and node_modules by symlink."""
    for name in _checkout_files():
        source = ROOT / name
        if name.split("/")[0] in (".venv", "node_modules") or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    for link in (".venv", "node_modules"):
        if (ROOT / link).exists():
            (target / link).symlink_to((ROOT / link).resolve())


def _checkout_files() -> list[str]:
    git = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    try:
        listing = subprocess.run(git, cwd=ROOT, check=True, capture_output=True).stdout.decode()  # noqa: S603
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an exported tree): every source file
        skip = {".venv", "node_modules", ".git", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache"}
        return [
            str(path.relative_to(ROOT))
            for path in ROOT.rglob("*")
            if path.is_file() and not skip.intersection(path.relative_to(ROOT).parts)
        ]
    return [name for name in listing.split("\0") if name]


def pattern(old: str) -> re.Pattern[str]:
    """`old` with every run of whitespace matching any run (and none between tokens it did not separate)."""
    parts = [re.escape(word) for word in old.split()]
    return re.compile(r"\s+".join(parts))


def patch(root: Path, mutant: Mutant) -> dict[Path, str]:
    """Apply the mutant's edits (or the first alternative that applies) in `root`; return the original text
    of each file changed."""
    texts = {path: path.read_text() for path in sorted(Path(p) for p in glob.glob(str(root / mutant.where)))}
    problems = []
    for edits in (mutant.edits, *mutant.alternatives):
        patched = _apply(dict(texts), edits)
        if isinstance(patched, str):
            problems.append(patched)
            continue
        changed = {path: texts[path] for path, text in patched.items() if text != texts[path]}
        for path in changed:
            path.write_text(patched[path])
        return changed
    raise Stale("; ".join(problems), absent=all(p.startswith("0 matches") for p in problems))


def _apply(texts: dict[Path, str], edits: tuple[tuple[str, str], ...]) -> dict[Path, str] | str:
    """The texts with each edit made in turn, or what went wrong."""
    for old, new in edits:
        hits = [(path, match) for path, text in texts.items() for match in pattern(old).finditer(text)]
        if len(hits) != 1:
            return f"{len(hits)} matches for {old!r}"
        path, match = hits[0]
        text = texts[path]
        line_start = text.rfind("\n", 0, match.start()) + 1
        indent = text[line_start : match.start()]
        indent = indent if not indent.strip() else ""
        texts[path] = text[: match.start()] + new.replace("\n", "\n" + indent) + text[match.end() :]
    return texts


def test_files(root: Path, patterns: tuple[str, ...], without_rules: bool) -> list[str]:
    found: list[str] = []
    for item in patterns:
        for path in sorted(glob.glob(item, root_dir=root)):
            if path not in found and not (without_rules and RULE_TESTS.search(path)):
                found.append(path)
    return found


def pytest(root: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # a mutant's bytecode must never be reused
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--timeout=120", *files]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)  # noqa: S603


def run_mutant(root: Path, mutant: Mutant, without_rules: bool) -> Result:
    started = time.monotonic()
    try:
        originals = patch(root, mutant)
    except Stale as exc:
        verdict = "n/a" if mutant.optional and exc.absent else "STALE"
        return Result(mutant, verdict, 0.0, str(exc) if verdict == "STALE" else "its code is not in this version")
    try:
        for path in originals:
            try:
                compile(path.read_text(), str(path), "exec")
            except SyntaxError as exc:
                return Result(mutant, "BROKEN", 0.0, f"{path.name}: {exc}")
        files = test_files(root, mutant.tests, without_rules)
        if not files:
            return Result(mutant, "missed", 0.0, "no tests selected")
        done = pytest(root, files)
    finally:
        for path, text in originals.items():
            path.write_text(text)
    seconds = time.monotonic() - started
    failed = _FAILED.findall(done.stdout)
    if done.returncode == 0:
        return Result(mutant, "missed", seconds)
    if done.returncode == 1 and failed:
        return Result(mutant, "caught", seconds, failed[0])
    return Result(mutant, "BROKEN", seconds, f"pytest exit {done.returncode}: {done.stdout[-300:]}")


def baseline(root: Path, mutants: list[Mutant], without_rules: bool) -> bool:
    """Every test set passes on the unmutated code, or no verdict would mean anything."""
    ok = True
    for tests in dict.fromkeys(m.tests for m in mutants):
        files = test_files(root, tests, without_rules)
        done = pytest(root, files) if files else None
        if done is not None and done.returncode != 0:
            print(f"baseline FAILED for {' '.join(files)}:\n{done.stdout[-2000:]}", file=sys.stderr)
            ok = False
    return ok


def report(results: list[Result]) -> None:
    for r in results:
        mark = "*" if r.mutant.listed else " "
        print(f"{r.verdict:7} {mark} {r.mutant.name:36} {r.seconds:5.1f}s  {r.detail}", flush=True)
    applied = [r for r in results if r.verdict != "n/a"]
    caught = sum(r.verdict == "caught" for r in applied)
    listed = [r for r in applied if r.mutant.listed]
    listed_caught = sum(r.verdict == "caught" for r in listed)
    print(f"\nscore: {caught}/{len(applied)} caught; the issue's listed breaks (*): {listed_caught}/{len(listed)}")
    if len(applied) < len(results):
        print(f"({len(results) - len(applied)} not applicable to this version of the code)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="run mutants whose name contains this")
    parser.add_argument("--without-rules", action="store_true", help="leave tests/test_*_rules.py out")
    parser.add_argument("--list", action="store_true", help="list the catalogue and stop")
    args = parser.parse_args()
    mutants = [m for m in CATALOGUE if not args.only or any(o in m.name for o in args.only)]
    if args.list:
        for m in mutants:
            print(f"{'*' if m.listed else ' '} {m.name:36} {m.rule}")
        return 0
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # so the copy is removed
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        root = Path(tmp)
        copy_checkout(root)
        if not baseline(root, mutants, args.without_rules):
            return 2
        results = []
        for mutant in mutants:
            result = run_mutant(root, mutant, args.without_rules)
            results.append(result)
            print(f"  {result.verdict:7} {mutant.name}", file=sys.stderr, flush=True)
    report(results)
    print(f"took {time.monotonic() - started:.0f} s")
    return 0 if all(r.verdict in ("caught", "n/a") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
