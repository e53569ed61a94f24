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


@pytest.fixture(scope="session")
async def aion_server(backend: str) -> AsyncIterator[AionProcess]:
    """One Aion dev server shared by the session's tests on `backend`: in-memory SQLite, or one
    fresh PostgreSQL database for the session. (Under pytest-xdist a worker switches backend at
    every file, and each switch starts a fresh server: no state leaks from file to file.)"""
    async with fresh_storage(backend) as storage:
        server = storage.server(namespaces=["other"])
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


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
# pytest-xdist workers of .ci/run start them early rather than end the run on them.
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
