"""wrk (Debian package `wrk`) as the load generator: a C client, so little of the 2 cores goes to load."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# One body, sent again and again: the replay path.
REPLAY = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"""
# A distinct externalId per request: the new-key path.
NEW_KEYS = """
local counter = 0
local prefix = "{prefix}"
setup = function(thread) thread:set("id", counter); counter = counter + 1 end
init = function(args) n = 0 end
request = function()
  n = n + 1
  local body = '{{"externalId": "' .. prefix .. '-' .. wrk.thread:get("id") .. '-' .. n .. '", "subject": "bench"}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json", ["Authorization"] = "{auth}"}}, body)
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers and socket errors

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk(url: str, script: str, seconds: int, connections: int, threads: int = 2) -> WrkResult:
    """Run wrk for `seconds` with a Lua `script`; its summary parsed."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    try:
        out = subprocess.run([*command, "-s", lua.name, url], capture_output=True, text=True, check=True).stdout
    finally:
        Path(lua.name).unlink()
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert done is not None, out
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return WrkResult(
        int(done.group(1)), _ms(done.group(2) + done.group(3)) / 1000, _ms(p99.group(1)) if p99 else 0.0, errors
    )


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
