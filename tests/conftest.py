"""Fixtures: the local stack (Azurite, emulators) once per session, gateway processes on free ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import TENANT, LocalStack, Process
from tests.stackutil import Stack

StackFactory = Callable[..., Awaitable[Stack]]
# DEBUG so the no-secrets-in-logs check sees everything the gateway could log.
GATEWAY_ENV = {"LOG_LEVEL": "DEBUG"}


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    base = tmp_path_factory.mktemp("stack")
    stack = LocalStack.up(base / "logs", base / "azurite")
    try:
        yield stack
    finally:
        stack.down()


def _view(local: LocalStack, gateway: Process) -> Stack:
    return Stack(
        gateway=gateway.url,
        gateway_pid=gateway.popen.pid,
        graph=local.graph.url,
        identity=local.identity.url,
        identity_header=local.identity_header,
        tables=local.gateway_env()["TABLES_CONNECTION_STRING"],
        tenant=TENANT,
    )


@pytest.fixture(scope="session")
def session_gateway(local_stack: LocalStack) -> Process:
    return local_stack.add_gateway(env=GATEWAY_ENV)


@pytest.fixture
async def stack(local_stack: LocalStack, session_gateway: Process) -> Stack:
    view = _view(local_stack, session_gateway)
    await view.reset()
    return view


def _factory(local_stack: LocalStack, started: list[Process]) -> StackFactory:
    async def start(workers: int = 1, env: dict[str, str] | None = None, entra: bool = False) -> Stack:
        settings = {**GATEWAY_ENV, **(env or {})}
        if entra:
            settings |= {"ENTRA_TENANT_ID": TENANT, "ENTRA_AUTHORITY": local_stack.identity.url}
        process = local_stack.add_gateway(workers=workers, env=settings)
        started.append(process)
        view = _view(local_stack, process)
        await view.reset()
        return view

    return start


@pytest.fixture
def stack_factory(local_stack: LocalStack) -> Iterator[StackFactory]:
    """Start gateways with extra settings; they stop when the test ends."""
    started: list[Process] = []
    yield _factory(local_stack, started)
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def module_stack_factory(local_stack: LocalStack) -> Iterator[StackFactory]:
    started: list[Process] = []
    yield _factory(local_stack, started)
    for process in started:
        process.stop()


@pytest.fixture(autouse=True)
async def _fresh_emulators(request: pytest.FixtureRequest) -> None:
    # Tests that share a module-scoped gateway still get emulators with clean counts.
    if "local_stack" in request.fixturenames:
        local: LocalStack = request.getfixturevalue("local_stack")
        view = _view(local, local.azurite)
        await view.reset()


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # The log scan must see the whole suite's logs: run it last.
    items.sort(key=lambda item: Path(str(item.fspath)).name == "test_zz_no_secrets_in_logs.py")


# Fuzzing budgets: bounded in the test command, long in `make fuzz-long`.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("default", max_examples=60)
_hypothesis_settings.register_profile("long", max_examples=2000)
