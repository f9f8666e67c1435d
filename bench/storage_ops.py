"""Table operations per request, counted in the engine's store, against the targets.

    .venv/bin/python -m bench.storage_ops

Targets (issue 4): new key 2, replay 1 cold / 0 warm.
"""

from __future__ import annotations

import asyncio
import os
import uuid

from meetings_core.idempotency.engine import RequestContext
from meetings_core.services import Services, build_services
from meetings_core.settings import Settings
from meetings_core.validation import validate_call

from ._stack import ORGANIZER, running_stack

ROWS = 50


async def _ops(services: Services, body: dict[str, str]) -> int:
    before = services.store.operations
    call = validate_call("v1.0", ORGANIZER, body)
    await services.engine.create_or_get(call, RequestContext(caller="bench", client_request_id=str(uuid.uuid4())))
    return services.store.operations - before


async def measure(settings: Settings) -> dict[str, list[int]]:
    warm_worker = await build_services(settings)
    cold_worker = await build_services(settings)  # another worker: its cache has never seen these keys
    counts: dict[str, list[int]] = {"new key": [], "replay, warm worker": [], "replay, cold worker": []}
    try:
        for _ in range(ROWS):
            body = {"externalId": f"bench-{uuid.uuid4()}", "subject": "bench"}
            counts["new key"].append(await _ops(warm_worker, body))
            counts["replay, warm worker"].append(await _ops(warm_worker, body))
            counts["replay, cold worker"].append(await _ops(cold_worker, body))
    finally:
        await warm_worker.close()
        await cold_worker.close()
    return counts


def main() -> None:
    targets = {"new key": "2", "replay, warm worker": "0", "replay, cold worker": "1"}
    with running_stack() as stack:
        os.environ.update(stack.gateway_env())
        counts = asyncio.run(measure(Settings()))
    print(f"Table operations per request ({ROWS} keys each)")
    print(f"{'path':<22} {'mean':>6} {'min':>4} {'max':>4} {'target':>7}")
    for path, values in counts.items():
        print(f"{path:<22} {sum(values) / len(values):>6.2f} {min(values):>4} {max(values):>4} {targets[path]:>7}")


if __name__ == "__main__":
    main()
