"""Fixtures for the conformance suite: the reference server and the server under test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.conformance.normalize import Plain
from tests.conformance.reference import ReferenceServer, running_reference
from tests.servers import AionProcess

# Set to "reference" to run the candidate side against the reference server too: a
# self-check that the scenarios give identical histories when run twice.
TARGET_ENV = "AION_CONFORMANCE_TARGET"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: history diff against the reference Temporal dev server"
    )


@pytest.fixture(scope="session")
async def reference_server() -> AsyncIterator[ReferenceServer]:
    async with running_reference() as server:
        yield server


@pytest.fixture(scope="session")
async def reference_client(reference_server: ReferenceServer) -> Client:
    return await Client.connect(reference_server.address)


@pytest.fixture(scope="session")
def reference_histories() -> dict[str, list[Plain]]:
    """Each scenario's normalized history on the reference, by scenario name: run once, compared
    with Aion on each storage backend."""
    return {}


@pytest.fixture(scope="session")
async def candidate_client(aion_server: AionProcess, reference_client: Client) -> Client:
    """A client of Aion, the session's server on each storage backend (or of the reference
    again, if $AION_CONFORMANCE_TARGET=reference)."""
    if os.environ.get(TARGET_ENV) == "reference":
        return reference_client
    return await Client.connect(aion_server.address)
