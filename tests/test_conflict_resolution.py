"""Conflict resolution between two clusters (docs/global-namespaces.md, "Conflict resolution"):
replication cut, both clusters made active and a workflow signalled on each, then reconnected.
The branch whose last version is the higher wins on both clusters; the other cluster's branch is
hidden, still readable with `aion replication branches`, and its signal is re-applied on the
winner, so that both clusters end with the same history holding both signals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta

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
from tests.test_history_replication import REPLICATED_S, _histories_equal, _history

ET = event_type_pb2.EventType


@workflow.defn
class Collector:
    """Collects signals until "finish"."""

    def __init__(self) -> None:
        self.values: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.values.append(value)

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "finish" in self.values)
        return self.values


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


async def _settled(cluster: Cluster, namespace: str, run: tuple[str, str], signals: int) -> None:
    """Wait until the run on `cluster` has `signals` signals and its last event completes a
    workflow task."""

    async def settled() -> bool | None:
        events = await _events(cluster, namespace, run)
        signalled = [e for e in events if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
        last = events[-1].event_type
        return (
            True
            if len(signalled) == signals and last == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
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


def _branches(cluster: Cluster, namespace: str, workflow_id: str) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aion",
            "replication",
            "branches",
            "--address",
            cluster.server.address,
            "-n",
            namespace,
            "-w",
            workflow_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


async def test_split_brain_ends_with_one_history_and_both_signals(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    task_queue, workflow_id = unique("conflict"), unique("wf")
    workers = [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[Collector],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        for client in (a, b)
    ]
    async with workers[0], workers[1]:
        handle = await a.start_workflow(
            Collector.run, id=workflow_id, task_queue=task_queue, task_timeout=timedelta(seconds=4)
        )
        run = (workflow_id, handle.result_run_id or "")
        await _settled(clusters.a, namespace, run, 0)
        await _histories_equal(clusters, namespace)

        # Cut, B made active (version 2) while A still is (version 1), a signal on each. (B
        # fails over while it still knows A: Temporal refuses a namespace naming a cluster
        # whose connection is disabled.)
        await _connect(clusters.a, clusters.b, False)
        await clusters.b.cli.ok(
            "operator", "namespace", "update", "-n", namespace, "--active-cluster", "B"
        )
        await _replicated(clusters.b, namespace, 2)
        await _connect(clusters.b, clusters.a, False)
        await a.get_workflow_handle(workflow_id).signal(Collector.add, "from-A")
        await b.get_workflow_handle(workflow_id).signal(Collector.add, "from-B")
        await _settled(clusters.a, namespace, run, 1)
        await _settled(clusters.b, namespace, run, 1)

        # Reconnected: B's branch (version 2) wins on both; A's signal is re-applied on B.
        await _connect(clusters.a, clusters.b, True)
        await _connect(clusters.b, clusters.a, True)
        await _replicated(clusters.a, namespace, 2)
        await _settled(clusters.b, namespace, run, 2)
        await b.get_workflow_handle(workflow_id).signal(Collector.add, "finish")
        result = await b.get_workflow_handle(workflow_id).result()
    assert sorted(result[:2]) == ["from-A", "from-B"] and result[2:] == ["finish"]
    await _histories_equal(clusters, namespace)
    for cluster in (clusters.a, clusters.b):
        signals = _signals(await _events(cluster, namespace, run))
        assert signals == [("from-B", 2), ("from-A", 2), ("finish", 2)]

    branches = await asyncio.to_thread(_branches, clusters.a, namespace, workflow_id)
    [hidden] = branches["branches"]  # type: ignore[misc]
    assert hidden["reapplied"] is True
    hidden_signals = [
        e for e in hidden["events"] if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"
    ]
    assert [int(e["version"]) for e in hidden_signals] == [1]
    assert (await asyncio.to_thread(_branches, clusters.b, namespace, workflow_id))[
        "branches"
    ] == []
