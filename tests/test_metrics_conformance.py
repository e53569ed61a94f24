"""Issue 14, acceptance 2: the same workload on the reference server and on Aion; every metric
of the issue's list that the reference emits exists on Aion with the same type and label names,
so dashboards and alerts written for Temporal read Aion unchanged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.conformance.reference import (
    free_ports,
    running_reference,
)
from tests.helpers import Storage
from tests.metrics_scrape import scrape_text, shapes
from tests.metrics_workload import run_workload

LISTED = [
    "service_requests",
    "service_errors",
    "service_error_with_type",
    "service_errors_resource_exhausted",
    "service_latency",
    "persistence_requests",
    "persistence_errors",
    "persistence_error_with_type",
    "persistence_latency",
    "poll_success",
    "poll_success_sync",
    "poll_timeouts",
    "syncmatch_latency",
    "asyncmatch_latency",
    "task_schedule_to_start_latency",
    "workflow_success",
    "workflow_failed",
    "workflow_timeout",
    "workflow_terminate",
    "workflow_cancel",
    "workflow_continued_as_new",
    "history_size",
    "history_count",
    "state_transition_count",
    "lock_latency",
    "cache_latency",
    "task_requests",
    "task_errors",
    "task_latency",
    "task_latency_processing",
    "task_latency_queue",
    "task_attempt",
    "numshards_gauge",
    "sharditem_created_count",
    "sharditem_removed_count",
    "approximate_backlog_count",
    "approximate_backlog_age_seconds",
    "action",
    "build_information",
]
# Metrics whose samples come a little after the calls that cause them (task processing,
# gauges): scrapes repeat until the listed metrics present stop changing.
SETTLE_POLL_S = 0.5
SETTLE_TIMEOUT_S = 15.0

Shapes = dict[str, tuple[str, set[frozenset[str]]]]


async def settled_shapes(metrics_port: int) -> Shapes:
    """The metrics' shapes once two scrapes in a row list the same metrics of LISTED."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    previous: set[str] | None = None
    while True:
        found = shapes(await scrape_text(metrics_port))
        listed = {name for name in found if name in LISTED}
        if listed == previous or loop.time() > deadline:
            return found
        previous = listed
        await asyncio.sleep(SETTLE_POLL_S)


@pytest.fixture(scope="module")
async def reference_shapes() -> AsyncIterator[Shapes]:
    (metrics_port,) = free_ports(1)
    async with running_reference(metrics_port=metrics_port) as server:
        client = await Client.connect(server.address)
        await run_workload(client, f"metrics-{uuid.uuid4()}")
        yield await settled_shapes(metrics_port)


async def test_listed_metrics_match_the_reference(
    storage: Storage, reference_shapes: Shapes
) -> None:
    (metrics_port,) = free_ports(1)
    server = storage.server(extra_args=["--metrics-port", str(metrics_port)])
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        await run_workload(client, f"metrics-{uuid.uuid4()}")
        aion = await settled_shapes(metrics_port)
    finally:
        await asyncio.to_thread(server.stop)

    compared = [name for name in LISTED if name in reference_shapes]
    assert len(compared) >= 30, f"the reference emitted only {compared}"
    mismatches = {
        name: {"reference": reference_shapes[name], "aion": aion.get(name)}
        for name in compared
        if aion.get(name) != reference_shapes[name]
    }
    assert not mismatches, mismatches
