"""Start and stop the local stack's processes: Azurite (Table service), the emulators, the gateway.

Shared by `python -m devstack` (make run) and the pytest fixtures, so both run the same parts the same way.
Every child runs in its own process group and is stopped by group, so nothing outlives the stack.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE = ROOT / "node_modules" / "azurite" / "dist" / "src" / "table" / "main.js"
# Azurite's fixed, publicly documented development account; not a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
TENANT = "72f988bf-0000-4000-8000-000000000001"


class StackError(RuntimeError):
    """A part of the stack could not start; the message says which and shows its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def tables_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


async def graph_bearer(identity_url: str, identity_header: str) -> dict[str, str]:
    """An Authorization header for the Graph emulator, from the identity emulator, as the gateway gets one."""
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            f"{identity_url}/msi/token",
            params={"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"},
            headers={"X-IDENTITY-HEADER": identity_header},
        )
        response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ensure_azurite() -> None:
    """Install the pinned Azurite from package-lock.json into node_modules/ if it is not there."""
    if AZURITE_TABLE.exists():
        return
    print("installing Azurite (npm ci)...", file=sys.stderr, flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True)


@dataclass
class Process:
    """A started child process with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int
    # Azurite saves its data on SIGINT only; SIGTERM would drop writes it already acknowledged.
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        _signal_group(self.popen.pid, self.stop_signal)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the process for the block: it keeps its port, accepts connections and never answers."""
        _signal_group(self.popen.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal_group(self.popen.pid, signal.SIGCONT)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def start(
    name: str, args: list[str], port: int, log_dir: Path, env: Mapping[str, str] | None = None, timeout: float = 30
) -> Process:
    """Start `args` in a new process group, logging to `log_dir/name.log`, and wait until `port` answers."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    process = Process(name, popen, log, port)
    deadline = time.monotonic() + timeout
    while port_is_free(port):
        if popen.poll() is not None:
            raise StackError(f"{name} exited with {popen.returncode} at start; its log ends:\n{process.tail()}")
        if time.monotonic() > deadline:
            process.stop()
            raise StackError(f"{name} did not open port {port} within {timeout:.0f} s; its log ends:\n{process.tail()}")
        time.sleep(0.05)
    return process


def start_azurite(port: int, data_dir: Path, log_dir: Path) -> Process:
    ensure_azurite()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "node", str(AZURITE_TABLE), "--tableHost", "127.0.0.1", "--tablePort", str(port),
        "--location", str(data_dir), "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
    ]  # fmt: skip
    process = start("azurite", args, port, log_dir)
    process.stop_signal = signal.SIGINT
    return process


def start_identity(port: int, identity_header: str, log_dir: Path) -> Process:
    args = [sys.executable, "-m", "devstack.identity_emulator", "--port", str(port),
            f"--identity-header={identity_header}", "--tenant", TENANT]  # fmt: skip
    return start("identity-emulator", args, port, log_dir)


def start_graph(port: int, identity_url: str, log_dir: Path) -> Process:
    jwks = f"{identity_url}/{TENANT}/discovery/v2.0/keys"
    args = [sys.executable, "-m", "devstack.graph_emulator", "--port", str(port), "--jwks-url", jwks]
    return start("graph-emulator", args, port, log_dir)


def start_gateway(
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    workers: int = 1,
    name: str = "gateway",
    clock_offset: str | None = None,
) -> Process:
    """The gateway under uvicorn; `clock_offset` (libfaketime's "+8" or "-3.5", seconds) skews its clock."""
    args = [sys.executable, "-m", "uvicorn", "meetings_core.http.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log"]  # fmt: skip
    if clock_offset is not None:
        args = [*faketime(), "-f", clock_offset, *args]
    return start(name, args, port, log_dir, env=env)


def faketime() -> list[str]:
    """The `faketime` command (Debian package faketime, libfaketime), or a StackError saying how to get it."""
    found = shutil.which("faketime")
    if found is None:
        raise StackError("faketime is not installed: apt-get install faketime (make test installs it)")
    return [found]


@dataclass
class LocalStack:
    """Azurite, the identity emulator and the Graph emulator, running; gateways are added on demand."""

    log_dir: Path
    azurite: Process
    identity: Process
    graph: Process
    identity_header: str
    gateways: list[Process] = field(default_factory=list)

    @classmethod
    def up(
        cls,
        log_dir: Path,
        data_dir: Path,
        ports: Mapping[str, int] | None = None,
        identity_header: str | None = None,
    ) -> LocalStack:
        ports = dict(ports or {})
        header = identity_header or secrets.token_urlsafe(16)
        started: list[Process] = []
        try:
            started.append(start_azurite(ports.get("azurite") or free_port(), data_dir, log_dir))
            started.append(start_identity(ports.get("identity") or free_port(), header, log_dir))
            started.append(start_graph(ports.get("graph") or free_port(), started[1].url, log_dir))
        except BaseException:
            for process in reversed(started):
                process.stop()
            raise
        return cls(log_dir, started[0], started[1], started[2], header)

    def gateway_env(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The settings that point a gateway at this stack (plus `overrides`)."""
        return {
            "GRAPH_BASE_URL": self.graph.url,
            "TABLES_CONNECTION_STRING": tables_connection_string(self.azurite.port),
            "TABLE_NAME": "meetingreservations",
            "IDENTITY_ENDPOINT": f"{self.identity.url}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
            # Function keys are checked only by the Functions host; under uvicorn nothing checks them.
            "LOCAL_DEVELOPMENT": "true",
            **(overrides or {}),
        }

    def add_gateway(
        self,
        port: int | None = None,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        clock_offset: str | None = None,
    ) -> Process:
        name = f"gateway-{len(self.gateways) + 1}"
        env = self.gateway_env(env)
        process = start_gateway(port or free_port(), env, self.log_dir, workers, name, clock_offset)
        self.gateways.append(process)
        return process

    def down(self) -> None:
        for process in [*reversed(self.gateways), self.graph, self.identity, self.azurite]:
            process.stop()
