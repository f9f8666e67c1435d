"""Cold start: CPU to import `function_app` against the bare required packages, each in a fresh interpreter.

    .venv/bin/python -m bench.cold_start [--runs 15] [--importtime 15] [--first-request] [--against DIR] [--dev-venv]

What is measured: the CPU time (user + sys, `time.process_time()`, every thread of the process) that the
import statement takes in a new interpreter, as a new Functions worker pays it; the interpreter's own start is
not counted (it is the same for every case). Wall time is printed beside it, but on a shared machine it
mostly measures the neighbours. The cases run interleaved (one of each per round, the order rotating), and
each ratio is taken within a round and then the median over the rounds, so a slow minute slows both sides;
as sharing a core only ever adds CPU time, the ratio of each side's fastest run is printed too.
The environment is the Functions host's (FUNCTIONS_WORKER_RUNTIME=python, a Table connection) and nothing
else from the caller's shell; `function_app` is measured without and with APPLICATIONINSIGHTS_CONNECTION_STRING
(set in Azure by infra/), the second also against the bare packages plus the Azure Monitor distro configured
the same way, which any app pays for Application Insights. The gateway's own modules are compiled from
source on each import, as deployed (.funcignore leaves __pycache__ out of the package).

--importtime N: the N modules (and packages) `function_app` adds to the bare packages, from `-X importtime`
    (median self time over 5 imports each).
--first-request: also the CPU of importing `function_app` and answering its first new key (in process, through
    the Functions adapter's ASGI app, against Azurite and the Graph and identity emulators started here): what
    a cold start costs when a request is waiting, so a cost moved from the import to the first request shows.
--against DIR: the same `function_app` cases from another checkout (e.g. a worktree of main), interleaved.
--dev-venv: probe with .venv itself. By default the probes run in .devstack/runtime-venv, made on first use
    with requirements.txt only (the dev venv's versions): the packages the Functions host installs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = "import azure.functions, azure.identity.aio, azure.data.tables.aio, httpx, pydantic, starlette.applications"
APP = "import function_app"
DISTRO = f"""{BARE}
from azure.identity import ManagedIdentityCredential
from azure.monitor.opentelemetry import configure_azure_monitor
configure_azure_monitor(
    connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"], credential=ManagedIdentityCredential()
)"""
# A first new key through the Functions adapter's ASGI app (the host's key check is its marker in the scope).
FIRST_REQUEST = """import function_app
imported = time.process_time() - cpu
import asyncio, uuid
async def first_request():
    body = json.dumps({"externalId": uuid.uuid4().hex, "startDateTime": "2026-03-01T09:00:00Z",
                       "endDateTime": "2026-03-01T09:30:00Z", "subject": "cold start"}).encode()
    path = "/v1.0/users/1f35f2e6-9cab-44ad-8d5a-b74c14720000/onlineMeetings/createOrGet"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = []
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    async def send(message):
        sent.append(message)
    await function_app._from_host(scope, receive, send)
    return sent[0]["status"]
extra["status"] = asyncio.run(first_request())
extra["import_cpu"] = imported"""
_PROBE = """import json, os, sys, time
extra = {{}}
cpu, wall = time.process_time(), time.perf_counter()
{code}
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
import resource
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"cpu": cpu, "wall": wall, "rss_mib": rss, "modules": len(sys.modules), **extra}}), flush=True)
os._exit(0)  # no exit handlers: an exporter's last flush is not part of a cold start
"""
# A syntactically real connection string (with a region, as Azure gives it); nothing is exported during a probe.
AI_CONNECTION = (
    "InstrumentationKey=00000000-0000-4000-8000-000000000000;"
    "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
    "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/"
)
HOST_ENV = {
    "FUNCTIONS_WORKER_RUNTIME": "python",  # as the Functions host sets it: function-key mode needs the host
    "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
    "PYTHONDONTWRITEBYTECODE": "1",
}
WITH_AI = {"APPLICATIONINSIGHTS_CONNECTION_STRING": AI_CONNECTION}
RUNTIME_VENV = ROOT / ".devstack" / "runtime-venv"
PYTHON = [sys.executable]  # the probes' interpreter: runtime_python() unless --dev-venv
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")  # nothing else of the shell reaches a probe


@dataclass
class Case:
    name: str
    code: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    runs: list[dict[str, float]] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [run[key] for run in self.runs]


def runtime_python() -> str:
    """The interpreter of a venv holding requirements.txt only, at the dev venv's versions, as the host installs it.

    Not the dev venv: there click and rich (pulled in by dev tools) make `import httpx` load its command line
    too, which flatters the bare packages (module counts: 896 bare there, 806 here).
    """
    python = RUNTIME_VENV / "bin" / "python"
    stamp = RUNTIME_VENV / "requirements.txt"
    wanted = (ROOT / "requirements.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"creating {RUNTIME_VENV.relative_to(ROOT)}: requirements.txt, the dev venv's versions", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(RUNTIME_VENV)], check=True)
    freeze = [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"]
    constraints = RUNTIME_VENV / "constraints.txt"
    constraints.write_text(subprocess.run(freeze, capture_output=True, text=True, check=True).stdout)
    install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*install, "-r", str(ROOT / "requirements.txt"), "-c", str(constraints)], check=True)
    stamp.write_text(wanted)
    return str(python)


def probe(case: Case) -> dict[str, float]:
    """One fresh interpreter running `case.code`; the child's whole CPU (rusage) is kept beside the import's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        [PYTHON[0], "-c", _PROBE.format(code=case.code)],
        cwd=case.cwd,
        env={**{k: os.environ[k] for k in _KEPT if k in os.environ}, **HOST_ENV, **case.env},
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        sys.exit(f"{case.name}: the probe failed:\n{completed.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = dict(json.loads(completed.stdout.strip().splitlines()[-1]))
    result["child_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def run_rounds(cases: list[Case], rounds: int) -> None:
    for i in range(rounds):
        shift = i % len(cases)  # rotate, so no case always runs right after another
        for case in cases[shift:] + cases[:shift]:
            case.runs.append(probe(case))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[0], q[1], q[2]


def print_cases(cases: list[Case]) -> None:
    head = f"{'case':<46} {'CPU ms':>7} {'p25..p75':>15} {'min':>6} {'wall ms':>8} {'child CPU':>9} {'RSS MiB':>8}"
    print(f"{head} {'modules':>7}")
    for case in cases:
        cpu = [v * 1000 for v in case.values("cpu")]
        low, mid, high = quartiles(cpu)
        wall = statistics.median(case.values("wall")) * 1000
        child = statistics.median(case.values("child_cpu")) * 1000
        rss = statistics.median(case.values("rss_mib"))
        modules = statistics.median(case.values("modules"))
        spread = f"{low:.0f}..{high:.0f}"
        row = f"{case.name:<46} {mid:>7.1f} {spread:>15} {min(cpu):>6.0f} {wall:>8.1f} {child:>9.1f} {rss:>8.1f}"
        print(f"{row} {modules:>7.0f}")


def print_ratio(label: str, top: Case, bottom: Case, key: str = "cpu") -> None:
    """The median of the per-round ratios, their spread, and the ratio of each side's least disturbed run."""
    paired = [a / b for a, b in zip(top.values(key), bottom.values(key), strict=True)]
    low, mid, high = quartiles(paired)
    fastest = min(top.values(key)) / min(bottom.values(key))  # sharing a core only ever adds CPU time
    print(
        f"{label:<52} {mid:.2f}x  (per round p25..p75 {low:.2f}x..{high:.2f}x, "
        f"min..max {min(paired):.2f}x..{max(paired):.2f}x; fastest / fastest {fastest:.2f}x)"
    )


def import_times(code: str, env: dict[str, str], cwd: Path = ROOT) -> dict[str, tuple[int, int]]:
    """Module -> (self µs, cumulative µs) from one `python -X importtime` run."""
    completed = subprocess.run(
        [PYTHON[0], "-X", "importtime", "-c", f"{code}\nimport os\nos._exit(0)"],
        cwd=cwd,
        env={**{k: os.environ[k] for k in _KEPT if k in os.environ}, **HOST_ENV, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, tuple[int, int]] = {}
    for line in completed.stderr.splitlines():
        if match := re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line):
            found[match.group(3)] = (int(match.group(1)), int(match.group(2)))
    return found


def print_importtime(top: int, env: dict[str, str], label: str, samples: int = 5) -> None:
    """What `function_app` imports beyond the bare packages, by median self time."""
    bare: set[str] = set()
    app: dict[str, list[int]] = {}
    for _ in range(samples):
        bare |= set(import_times(BARE, env))
        for module, (own, _cumulative) in import_times(APP, env).items():
            app.setdefault(module, []).append(own)
    added = {m: float(statistics.median(v)) for m, v in app.items() if m not in bare}
    packages: dict[str, float] = {}
    for module, self_us in added.items():
        parts = module.split(".")
        package = ".".join(parts[:2]) if parts[0] in ("azure", "opentelemetry") else parts[0]  # namespace packages
        packages[package] = packages.get(package, 0.0) + self_us
    total = sum(added.values()) / 1000
    print(f"\n-X importtime, {label}: {len(added)} modules beyond the bare packages, {total:.1f} ms")
    print(f"  {'by package (self ms)':<40}    {'by module (self ms)':<56}")
    by_package = sorted(packages.items(), key=lambda kv: -kv[1])[:top]
    by_module = sorted(added.items(), key=lambda kv: -kv[1])[:top]
    for i in range(max(len(by_package), len(by_module))):
        left = f"{by_package[i][0]:<32} {by_package[i][1] / 1000:7.1f}" if i < len(by_package) else ""
        right = f"{by_module[i][0]:<48} {by_module[i][1] / 1000:7.1f}" if i < len(by_module) else ""
        print(f"  {left:<40}    {right}")


@contextlib.contextmanager
def stack_env() -> Iterator[dict[str, str]]:
    """Azurite and the emulators for the first request; the gateway's settings pointing at them."""
    from ._stack import running_stack

    with running_stack() as stack:
        env = stack.gateway_env()
        env.pop("LOCAL_DEVELOPMENT")  # the Functions host's mode: function keys, checked by the host
        yield env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds; each runs every case once")
    parser.add_argument("--importtime", type=int, default=0, metavar="N", help="show the N largest additions")
    parser.add_argument("--first-request", action="store_true", help="also import + first new key (starts a stack)")
    parser.add_argument("--against", type=Path, help="another checkout whose function_app to measure alongside")
    parser.add_argument("--dev-venv", action="store_true", help="probe with the dev venv, not a runtime-only one")
    args = parser.parse_args()
    PYTHON[0] = sys.executable if args.dev_venv else runtime_python()
    bare = Case("bare required packages", BARE)
    app = Case("import function_app", APP)
    app_ai = Case("import function_app, Application Insights on", APP, WITH_AI)
    distro = Case("bare packages + Azure Monitor distro configured", DISTRO, WITH_AI)
    cases = [bare, app, app_ai, distro]
    against: list[Case] = []
    if args.against is not None:
        other = args.against.resolve()
        against = [Case(f"{other.name}: import function_app", APP, cwd=other)]
        against += [Case(f"{other.name}: function_app, App Insights on", APP, WITH_AI, cwd=other)]
        cases += against
    with contextlib.ExitStack() as stack:
        if args.first_request:
            env = stack.enter_context(stack_env())
            cases += [Case("import function_app + first new key", FIRST_REQUEST, env)]
            cases += [Case("the same, Application Insights on", FIRST_REQUEST, {**env, **WITH_AI})]
            if args.against is not None:
                cases += [Case(f"{other.name}: import + first new key", FIRST_REQUEST, env, cwd=other)]
                name = f"{other.name}: the same, App Insights on"
                cases += [Case(name, FIRST_REQUEST, {**env, **WITH_AI}, cwd=other)]
        venv = "the dev venv" if args.dev_venv else RUNTIME_VENV.relative_to(ROOT)
        print(f"{args.runs} interleaved rounds in {venv}; CPU (user + sys) of the import in a fresh interpreter\n")
        run_rounds(cases, args.runs)
    print_cases(cases)
    print()
    print_ratio("function_app / bare packages", app, bare)
    print_ratio("function_app with App Insights / bare packages", app_ai, bare)
    print_ratio("function_app with App Insights / bare + distro", app_ai, distro)
    if against:
        print_ratio(f"{against[0].name} / bare packages", against[0], bare)
        print_ratio(f"{against[1].name} / bare + distro", against[1], distro)
        print_ratio(f"function_app / {against[0].name}", app, against[0])
        print_ratio(f"function_app, App Insights on / {against[1].name}", app_ai, against[1])
    for case in cases[4:]:
        if "first new key" in case.name or "the same" in case.name:
            statuses = sorted({int(s) for s in case.values("status")})
            first = [(t - i) * 1000 for t, i in zip(case.values("cpu"), case.values("import_cpu"), strict=True)]
            print(
                f"{case.name}: import {statistics.median(case.values('import_cpu')) * 1000:.1f} ms, "
                f"first request {statistics.median(first):.1f} ms (answers {statuses})"
            )
    if args.importtime:
        print_importtime(args.importtime, {}, "Application Insights off")
        print_importtime(args.importtime, WITH_AI, "Application Insights on")


if __name__ == "__main__":
    main()
