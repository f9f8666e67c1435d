"""Every benchmark, one after another, each in its own process: `make bench`.

Prints each table under the command that reproduces it (the layout of docs/BENCHMARKS.md).
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["cpu", "storage_ops", "latency", "throughput", "graph_calls", "cold_start"]


def main() -> None:
    failed = []
    for name in BENCHMARKS:
        command = [sys.executable, "-m", f"bench.{name}"]
        print(f"\n### {name}\n\n    {' '.join(['python', *command[1:]])}\n", flush=True)
        if subprocess.run(command).returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
