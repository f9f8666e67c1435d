"""The Flex Consumption scale settings in infra/ are the ones docs/BENCHMARKS.md derives from the measurements."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _bicep_number(name: str) -> int:
    found = re.findall(rf"\b{name}:\s*(\d+)", (ROOT / "infra" / "modules" / "resources.bicep").read_text())
    assert len(found) == 1, found
    return int(found[0])


def test_infra_uses_the_instance_memory_and_http_concurrency_derived_in_benchmarks():
    derived = re.search(
        r"instanceMemoryMB (\d+), perInstanceConcurrency (\d+)", (ROOT / "docs" / "BENCHMARKS.md").read_text()
    )
    assert derived, "docs/BENCHMARKS.md states the derived settings"
    assert (_bicep_number("instanceMemoryMB"), _bicep_number("perInstanceConcurrency")) == tuple(
        map(int, derived.groups())
    )
