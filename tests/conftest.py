"""Every test that talks to an Aion server or a store runs once per storage backend, as
`test[sqlite]` and `test[postgres]`: it asks for `client`/`aion_server` (the session's server on
that backend), `storage` (fresh storage for a server the test starts itself) or `backend`.
Tests that touch neither (parsers, flag validation that fails before any storage opens) run once.

PostgreSQL is the server at AION_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres);
its tests skip when none answers there, and fail instead when AION_REQUIRE_PG is set, as
scripts/test does after making sure one runs (scripts/ensure-postgres).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.helpers import BACKENDS, Storage, fresh_storage
from tests.servers import AionProcess


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this run of the test. Session-scoped, so pytest runs the tests
    grouped by backend and the session's server on each backend starts once."""
    return request.param


class SessionServers:
    """The session's dev server on each backend, started when first asked for and stopped when
    the session ends. Kept across switches of backend: under pytest-xdist (.ci/run) a worker
    runs whole test files, each on SQLite then PostgreSQL, so it switches at every file."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._servers: dict[str, AionProcess] = {}

    async def on(self, backend: str) -> AionProcess:
        if backend not in self._servers:
            storage = await self._stack.enter_async_context(fresh_storage(backend))
            server = storage.server(namespaces=["other"])
            await asyncio.to_thread(server.start)
            self._stack.push_async_callback(asyncio.to_thread, server.stop)
            self._servers[backend] = server
        return self._servers[backend]

    async def stop(self) -> None:
        await self._stack.aclose()


@pytest.fixture(scope="session")
async def session_servers() -> AsyncIterator[SessionServers]:
    servers = SessionServers()
    try:
        yield servers
    finally:
        await servers.stop()


@pytest.fixture(scope="session")
async def aion_server(backend: str, session_servers: SessionServers) -> AionProcess:
    """One Aion dev server shared by the session's tests on `backend`: in-memory SQLite, or one
    fresh PostgreSQL database for the session."""
    return await session_servers.on(backend)


@pytest.fixture(scope="session")
async def client(aion_server: AionProcess) -> AsyncIterator[Client]:
    yield await Client.connect(aion_server.address)


@pytest.fixture
async def storage(backend: str, tmp_path: Path) -> AsyncIterator[Storage]:
    """Fresh storage on `backend` for a server the test starts (and restarts) itself: a SQLite
    file in the test's tmp_path, or a new PostgreSQL database dropped afterwards."""
    async with fresh_storage(backend, str(tmp_path / "aion.db")) as fresh:
        yield fresh


# The slowest test files (`.ci/run` prints the slowest tests) come first, so that the two
# pytest-xdist workers of .ci/run start them early rather than end the run on them. (Not
# test_schedules.py: it adds a search attribute to the session server's default namespace, which
# the HTTP API conformance test, run before it, compares with the reference's.)
SLOWEST_FIRST = (
    "test_history_replication.py",
    "test_durability.py",
    "test_ui.py",
    "test_cluster.py",
    "test_auth.py",
    "test_xdc_failover.py",
    "test_batch.py",
    "test_codec.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order
