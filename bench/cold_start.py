"""Cold start: wall time to import `function_app` versus the bare required packages, and resident memory.

    .venv/bin/python bench/cold_start.py [--runs 5]

Each measurement is a fresh interpreter, as a new Functions worker would be.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PROBE = """
import json, resource, sys, time
t = time.perf_counter()
{imports}
elapsed = time.perf_counter() - t
print(json.dumps({{"seconds": elapsed, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
CASES = {
    "python -c pass": "pass",
    "bare required packages": (
        "import azure.functions, azure.identity.aio, azure.data.tables.aio, httpx, pydantic, starlette.applications"
    ),
    "import function_app": "import function_app",
}
ENV = {
    "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
    "PYTHONDONTWRITEBYTECODE": "1",
    "FUNCTIONS_WORKER_RUNTIME": "python",  # as the Functions host sets it: function-key mode needs the host
}


def measure(imports: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports)],
        cwd=ROOT,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':<26} {'import ms (median)':>19} {'min':>8} {'max RSS MiB':>12}")
    baseline = None
    for name, imports in CASES.items():
        runs = [measure(imports) for _ in range(args.runs)]
        seconds = [r["seconds"] for r in runs]
        median = statistics.median(seconds) * 1000
        baseline = baseline if name != "bare required packages" else median
        print(f"{name:<26} {median:>19.1f} {min(seconds) * 1000:>8.1f} {max(r['rss_mib'] for r in runs):>12.1f}")
    assert baseline is not None
    print(f"\nfunction_app import / bare packages: {median / baseline:.2f}x")


if __name__ == "__main__":
    main()
