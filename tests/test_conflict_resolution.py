"""Conflict resolution between two clusters (docs/global-namespaces.md, "Conflict resolution"):
replication cut, both clusters made active and a workflow signalled on each, then reconnected.
The branch whose last version is the higher wins on both clusters; the other cluster's branch is
hidden, still readable with `aion replication branches`, and its signals and accepted updates are
re-applied on the winner (an update whose id the winner knows is not), so that both clusters end
with the same history."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.operatorservice.v1 import request_response_pb2 as operator_rr
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    _register_global,
    _replicated,
    clusters,  # noqa: F401 (the fixture: clusters A and B, connected both ways)
    eventually,
)
from tests.test_history_replication import (
    REPLICATED_S,
    _histories_equal,
    _history,
    _replication_command,
)

ET = event_type_pb2.EventType
WORKFLOW_TASK_EVENTS = (
    ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ET.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
)


@workflow.defn
class Collector:
    """Collects signals until "finish"."""

    def __init__(self) -> None:
        self.values: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.values.append(value)

    @workflow.update
    def add_by_update(self, value: str) -> list[str]:
        self.values.append(value)
        return self.values

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "finish" in self.values)
        return self.values


def collector_workers(clients: list[Client], task_queue: str) -> list[Worker]:
    """A worker of `Collector` on each client (one per cluster)."""
    return [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[Collector],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        for client in clients
    ]


async def _connect(cluster: Cluster, other: Cluster, enabled: bool) -> None:
    await cluster.client.operator_service.add_or_update_remote_cluster(
        operator_rr.AddOrUpdateRemoteClusterRequest(
            frontend_address=other.server.address,
            enable_remote_cluster_connection=enabled,
            enable_replication=True,
        )
    )


async def _events(
    cluster: Cluster, namespace: str, run: tuple[str, str]
) -> list[history_pb.HistoryEvent]:
    return [history_pb.HistoryEvent.FromString(e) for e in await _history(cluster, namespace, run)]


async def _settled(
    cluster: Cluster, namespace: str, run: tuple[str, str], signals: int, updates: int = 0
) -> None:
    """Wait until the run on `cluster` has `signals` signals and `updates` completed updates and
    its last workflow task has completed."""

    async def settled() -> bool | None:
        events = await _events(cluster, namespace, run)
        types = [e.event_type for e in events]
        tasks = [t for t in types if t in WORKFLOW_TASK_EVENTS]
        return (
            True
            if types.count(ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == signals
            and types.count(ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) == updates
            and tasks[-1] == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            else None
        )

    await eventually(settled, REPLICATED_S)


def _signals(events: list[history_pb.HistoryEvent]) -> list[tuple[str, int]]:
    """(value, version) of each signal."""
    return [
        (
            json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data),
            e.version,
        )
        for e in events
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def _branches(cluster: Cluster, namespace: str, workflow_id: str) -> Any:
    """`aion replication branches` of the workflow's current run on `cluster`."""
    return await _replication_command(cluster, "branches", "-n", namespace, "-w", workflow_id)


@dataclass
class SplitBrain:
    """A Collector run started on A, then the split: both clusters active, neither replicating."""

    namespace: str
    a: Client
    b: Client
    run: tuple[str, str]


@asynccontextmanager
async def collectors(pair: Clusters) -> AsyncIterator[tuple[str, Client, Client, str]]:
    """A new global namespace, a client of it on A and one on B, and a Collector worker on each
    polling one task queue: (namespace, A's client, B's client, task queue)."""
    namespace = await _register_global(pair)
    a = await Client.connect(pair.a.server.address, namespace=namespace)
    b = await Client.connect(pair.b.server.address, namespace=namespace)
    task_queue = unique("conflict")
    workers = collector_workers([a, b], task_queue)
    async with workers[0], workers[1]:
        yield namespace, a, b, task_queue


@asynccontextmanager
async def _split_brain(pair: Clusters) -> AsyncIterator[SplitBrain]:
    """Start a Collector on A with workers on both clusters, wait until both hold its first
    workflow task, then `partition` the clusters."""
    async with collectors(pair) as (namespace, a, b, task_queue):
        workflow_id = unique("wf")
        handle = await a.start_workflow(
            Collector.run, id=workflow_id, task_queue=task_queue, task_timeout=timedelta(seconds=4)
        )
        run = (workflow_id, handle.result_run_id or "")
        await _settled(pair.a, namespace, run, 0)
        await _histories_equal(pair, namespace)
        await partition(pair, namespace)
        yield SplitBrain(namespace, a, b, run)


async def partition(pair: Clusters, namespace: str) -> None:
    """Cut replication both ways and make B active (version 2) while A still is (version 1).
    (B fails over while it still knows A: Temporal refuses a namespace naming a cluster whose
    connection is disabled.)"""
    await _connect(pair.a, pair.b, False)
    await pair.b.cli.ok("operator", "namespace", "update", "-n", namespace, "--active-cluster", "B")
    await _replicated(pair.b, namespace, 2)
    await _connect(pair.b, pair.a, False)


async def _reconnect(pair: Clusters, namespace: str) -> None:
    await _connect(pair.a, pair.b, True)
    await _connect(pair.b, pair.a, True)
    await _replicated(pair.a, namespace, 2)


async def _hidden_events(
    cluster: Cluster, namespace: str, workflow_id: str
) -> list[dict[str, Any]]:
    """The events of the run's one hidden branch on `cluster`, which was re-applied."""
    branches = await _branches(cluster, namespace, workflow_id)
    [hidden] = branches["branches"]  # type: ignore[misc]
    assert hidden["reapplied"] is True
    events: list[dict[str, Any]] = hidden["events"]
    return events


async def test_split_brain_ends_with_one_history_and_both_signals(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    async with _split_brain(clusters) as split:
        namespace, run = split.namespace, split.run
        workflow_id = run[0]
        a, b = split.a, split.b
        await a.get_workflow_handle(workflow_id).signal(Collector.add, "from-A")
        await b.get_workflow_handle(workflow_id).signal(Collector.add, "from-B")
        await _settled(clusters.a, namespace, run, 1)
        await _settled(clusters.b, namespace, run, 1)

        # Reconnected: B's branch (version 2) wins on both; A's signal is re-applied on B.
        await _reconnect(clusters, namespace)
        await _settled(clusters.b, namespace, run, 2)
        await b.get_workflow_handle(workflow_id).signal(Collector.add, "finish")
        result = await b.get_workflow_handle(workflow_id).result()
    assert sorted(result[:2]) == ["from-A", "from-B"] and result[2:] == ["finish"]
    await _histories_equal(clusters, namespace)
    for cluster in (clusters.a, clusters.b):
        signals = _signals(await _events(cluster, namespace, run))
        assert signals == [("from-B", 2), ("from-A", 2), ("finish", 2)]

    hidden = await _hidden_events(clusters.a, namespace, workflow_id)
    hidden_signals = [
        e for e in hidden if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"
    ]
    assert [int(e["version"]) for e in hidden_signals] == [1]
    assert (await _branches(clusters.b, namespace, workflow_id))["branches"] == []


async def test_split_brain_reapplies_updates_whose_id_the_winner_does_not_know(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """Temporal's rule: an update accepted on the losing branch is admitted again on the winner
    with its request (the worker there runs the handler), unless the winner already has an
    update with that id."""
    async with _split_brain(clusters) as split:
        namespace, run = split.namespace, split.run
        workflow_id = run[0]
        a, b = split.a, split.b
        on_a, on_b = a.get_workflow_handle(workflow_id), b.get_workflow_handle(workflow_id)
        await on_a.execute_update(Collector.add_by_update, "only-A", id="only-on-A")
        await on_a.execute_update(Collector.add_by_update, "shared-A", id="shared")
        await on_b.execute_update(Collector.add_by_update, "shared-B", id="shared")
        await _settled(clusters.a, namespace, run, 0, updates=2)
        await _settled(clusters.b, namespace, run, 0, updates=1)

        # Reconnected: B's branch wins; "only-on-A" runs again on B, "shared" does not.
        await _reconnect(clusters, namespace)
        await _settled(clusters.b, namespace, run, 0, updates=2)
        await on_b.signal(Collector.add, "finish")
        result = await on_b.result()
    assert result == ["shared-B", "only-A", "finish"]
    await _histories_equal(clusters, namespace)
    for cluster in (clusters.a, clusters.b):
        accepted = [
            (e.workflow_execution_update_accepted_event_attributes.protocol_instance_id, e.version)
            for e in await _events(cluster, namespace, run)
            if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert accepted == [("shared", 2), ("only-on-A", 2)]

    hidden = await _hidden_events(clusters.a, namespace, workflow_id)
    hidden_accepted = [
        (e["workflowExecutionUpdateAcceptedEventAttributes"]["protocolInstanceId"], e["version"])
        for e in hidden
        if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"
    ]
    assert [(i, int(v)) for i, v in hidden_accepted] == [("only-on-A", 1), ("shared", 1)]
