from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client

from tests.servers import AionProcess


@pytest.fixture(scope="session")
def aion_server() -> Iterator[AionProcess]:
    """One Aion dev server (in-memory SQLite) shared by the session's tests."""
    server = AionProcess(namespaces=["other"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(aion_server: AionProcess) -> AsyncIterator[Client]:
    yield await Client.connect(aion_server.address)
