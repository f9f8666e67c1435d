"""CPU per new key through the Functions adapter against the same ASGI app called directly, in one process.

    .venv/bin/python -m bench.adapter [--rounds 4] [--seconds 3] [--concurrency 32] 2>/dev/null

In Azure, requests reach the gateway through `azure.functions.AsgiMiddleware` (function_app.py), not uvicorn.
Both paths here drive one app against one Azurite and the emulators, in alternating windows of `--seconds`,
with `--concurrency` keys in flight: "direct" hands the app an ASGI scope as a server would; "adapter" builds
an `azure.functions.HttpRequest` and awaits `AsgiMiddleware.handle_async`, as the Functions worker does. CPU
is this process's (`time.process_time()`), divided by the keys answered 201. The host's own gRPC hop to the
worker is not part of either: it cannot run here. The gateway's log lines go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import azure.functions as func
from starlette.types import ASGIApp, Message

from ._stack import create_path, running_stack

Key = Callable[[], Awaitable[None]]


def _direct(app: ASGIApp, path: str) -> Key:
    async def one() -> None:
        body = json.dumps({"externalId": uuid.uuid4().hex, "subject": "bench"}).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "state": {},
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> Message:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        assert statuses == [201], statuses

    return one


def _adapter(app: ASGIApp, path: str) -> Key:
    middleware = func.AsgiMiddleware(app)  # type: ignore[no-untyped-call]  # untyped upstream

    async def one() -> None:
        body = json.dumps({"externalId": uuid.uuid4().hex, "subject": "bench"}).encode()
        request = func.HttpRequest(
            "POST", f"http://127.0.0.1{path}", headers={"content-type": "application/json"}, body=body
        )
        response = await middleware.handle_async(request)
        assert response.status_code == 201, response.status_code

    return one


async def _window(one: Key, seconds: float, concurrency: int) -> tuple[float, int]:
    """CPU ms per key and keys answered, over `seconds` of `concurrency` keys in flight."""
    keys, stop = 0, time.monotonic() + seconds

    async def worker() -> None:
        nonlocal keys
        while time.monotonic() < stop:
            await one()
            keys += 1

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) * 1000 / max(keys, 1), keys


async def measure(rounds: int, seconds: float, concurrency: int) -> None:
    from meetings_core.http.app import create_app

    app = create_app()
    path = create_path()
    paths = {"direct": _direct(app, path), "adapter": _adapter(app, path)}
    for one in paths.values():  # connections, token, first-use imports
        await asyncio.gather(*(one() for _ in range(concurrency)))
    totals = dict.fromkeys(paths, 0.0)
    print(f"{'round':>5} {'direct ms/key':>14} {'adapter ms/key':>15} {'adapter / direct':>17}")
    for n in range(1, rounds + 1):
        cpu = {name: (await _window(one, seconds, concurrency))[0] for name, one in paths.items()}
        for name, ms in cpu.items():
            totals[name] += ms
        _row(str(n), cpu["direct"], cpu["adapter"])
    _row("all", totals["direct"] / rounds, totals["adapter"] / rounds)


def _row(name: str, direct: float, adapter: float) -> None:
    print(f"{name:>5} {direct:>14.3f} {adapter:>15.3f} {adapter / direct:>16.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with running_stack() as stack:
        os.environ.update(stack.gateway_env())
        asyncio.run(measure(args.rounds, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
