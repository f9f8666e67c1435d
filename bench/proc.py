"""CPU time and memory of a running process tree, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (uvicorn's supervisor and its workers)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:  # the task ended meanwhile
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process tree so far (only living processes count)."""
    total = 0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / _TICKS


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """The largest `VmRSS` (now) or `VmHWM` (peak) among the tree's processes: memory of one worker."""
    values = [0.0]
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    values.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(values)
