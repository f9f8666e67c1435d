"""`make run`: the whole local stack on fixed ports, a ready-to-paste curl, Ctrl-C stops everything."""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from types import FrameType

from .stack import ROOT, LocalStack, StackError, port_is_free

# Fixed so a gateway started by hand (make gateway, func start) can use the same emulator; not a secret.
IDENTITY_HEADER = "local-dev-identity-header"
PORTS = {"gateway": 7071, "identity": 7072, "graph": 7073, "azurite": 10002}
ORGANIZER = "1f35f2e6-9cab-44ad-8d5a-b74c14720000"


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _curl(gateway: str) -> str:
    body = {
        "externalId": f"demo-{uuid.uuid4().hex[:8]}",
        "startDateTime": "2026-03-01T09:00:00Z",
        "endDateTime": "2026-03-01T09:30:00Z",
        "subject": "Created through meeting-gateway",
    }
    return (
        f"curl -i -X POST '{gateway}/v1.0/users/{ORGANIZER}/onlineMeetings/createOrGet' \\\n"
        f"  -H 'Content-Type: application/json' \\\n  -d '{json.dumps(body)}'"
    )


def main() -> int:
    busy = [f"{name} ({port})" for name, port in PORTS.items() if not port_is_free(port)]
    if busy:
        print(f"These ports are in use: {', '.join(busy)}. Stop what holds them and run again.", file=sys.stderr)
        return 1
    # SIGINT too: a shell that starts `make run &` hands it down ignored, and Ctrl-C must still stop it.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logs = ROOT / ".devstack" / "logs"
    try:
        stack = LocalStack.up(logs, ROOT / ".azurite", PORTS, IDENTITY_HEADER)
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        gateway = stack.add_gateway(port=PORTS["gateway"], workers=2)
        print(
            f"\nmeeting-gateway is running (2 workers)\n"
            f"  gateway             {gateway.url}\n"
            f"  Azurite (tables)    {stack.azurite.url}\n"
            f"  identity emulator   {stack.identity.url}/msi/token\n"
            f"  Graph emulator      {stack.graph.url}   (POST /_emulator/config, GET /_emulator/stats)\n"
            f"  logs                {logs}/*.log\n\n"
            f"Try it (a second run of the same command answers 200 with the same meeting):\n\n{_curl(gateway.url)}\n\n"
            f"Ctrl-C stops everything.",
            flush=True,
        )
        while all(p.popen.poll() is None for p in [gateway, stack.azurite, stack.identity, stack.graph]):
            time.sleep(0.5)
        print("A process of the stack exited; see the logs. Stopping.", file=sys.stderr)
        return 1
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    finally:
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
