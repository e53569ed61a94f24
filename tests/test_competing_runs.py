"""Competing runs of one workflow id and re-application into a closed run (docs/global-namespaces.md,
"Conflict resolution"): replication cut, both clusters active, then reconnected.

Two runs of one workflow id started during the split: the run written last (B's, version 2)
becomes current on both clusters; A's run is terminated by A for the version conflict (and is a
zombie on B until that termination replicates), and its signal is re-applied on B's run, even
when B crashes right after committing it to the zombie. A signal on the losing branch of a run
the winning branch completed: the run is reset, as Temporal's ReapplyEvents does, and the
signal lands in the new run on both clusters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import failed_cause_pb2, workflow_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client

from aion.common.faults import FAULT_ENV, FAULT_EXIT_CODE
from aion.history.engine import VERSION_CONFLICT
from aion.replication.history import REAPPLY_PENDING_FAULT
from tests.helpers import unique
from tests.test_conflict_resolution import (
    ET,
    Collector,
    _connect,
    _events,
    _reconnect,
    _settled,
    _signals,
    _split_brain,
    collector_workers,
    collectors,
    partition,
)
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    clusters,  # noqa: F401 (the fixture: clusters A and B, connected both ways)
    eventually,
)
from tests.test_history_replication import (
    REPLICATED_S,
    _histories_equal,
    _replication_command,
)

Status = workflow_pb2.WorkflowExecutionStatus


async def _describe(
    cluster: Cluster, namespace: str, workflow_id: str, run_id: str = ""
) -> rr.DescribeWorkflowExecutionResponse:
    return await cluster.client.workflow_service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(
            namespace=namespace,
            execution=common_pb.WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
    )


async def _current_run(cluster: Cluster, namespace: str, workflow_id: str) -> str:
    return (
        await _describe(cluster, namespace, workflow_id)
    ).workflow_execution_info.execution.run_id


async def _competing_runs(
    pair: Clusters, namespace: str, a: Client, b: Client, task_queue: str
) -> tuple[tuple[str, str], tuple[str, str]]:
    """Split the clusters, start a Collector of one workflow id on each and signal it there
    ("from-A", "from-B"); A's run and B's, once each has taken its signal."""
    await partition(pair, namespace)
    workflow_id = unique("wf")
    timeout = timedelta(seconds=4)
    on_a = await a.start_workflow(
        Collector.run, id=workflow_id, task_queue=task_queue, task_timeout=timeout
    )
    on_b = await b.start_workflow(
        Collector.run, id=workflow_id, task_queue=task_queue, task_timeout=timeout
    )
    await on_a.signal(Collector.add, "from-A")
    await on_b.signal(Collector.add, "from-B")
    run_a = (workflow_id, on_a.result_run_id or "")
    run_b = (workflow_id, on_b.result_run_id or "")
    assert run_a[1] != run_b[1]
    await _settled(pair.a, namespace, run_a, 1)
    await _settled(pair.b, namespace, run_b, 1)
    return run_a, run_b


async def test_the_run_written_last_wins_and_the_other_is_terminated(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    async with collectors(clusters) as (namespace, a, b, task_queue):
        run_a, run_b = await _competing_runs(clusters, namespace, a, b, task_queue)
        workflow_id = run_a[0]

        # Reconnected: B's run (version 2) is current on both; A's signal is re-applied on it.
        await _reconnect(clusters, namespace)
        await _settled(clusters.b, namespace, run_b, 2)
        winner = b.get_workflow_handle(workflow_id)
        await winner.signal(Collector.add, "finish")
        result = await winner.result()
    assert sorted(result[:2]) == ["from-A", "from-B"] and result[2:] == ["finish"]

    assert sorted(await _histories_equal(clusters, namespace)) == sorted([run_a, run_b])
    for cluster in (clusters.a, clusters.b):
        current = await _describe(cluster, namespace, workflow_id)
        assert current.workflow_execution_info.execution.run_id == run_b[1]
        assert current.workflow_execution_info.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED
        loser = await _describe(cluster, namespace, *run_a)
        assert loser.workflow_execution_info.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
        terminated = (await _events(cluster, namespace, run_a))[-1]
        attributes = terminated.workflow_execution_terminated_event_attributes
        assert (attributes.reason, attributes.identity, terminated.version) == (
            VERSION_CONFLICT,
            "history-service",
            1,
        )
        assert _signals(await _events(cluster, namespace, run_b)) == [
            ("from-B", 2),
            ("from-A", 2),
            ("finish", 2),
        ]


async def test_a_signal_for_a_closed_winner_lands_in_a_reset_run(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """The winning branch completed the run; the losing branch's signal resets it to its last
    completed workflow task and is re-applied on the new run, which the worker completes."""
    async with _split_brain(clusters) as split:
        namespace, run = split.namespace, split.run
        workflow_id = run[0]
        await split.a.get_workflow_handle(workflow_id).signal(Collector.add, "from-A")
        await _settled(clusters.a, namespace, run, 1)
        on_b = split.b.get_workflow_handle(workflow_id, run_id=run[1])
        await on_b.signal(Collector.add, "finish")
        assert await on_b.result() == ["finish"]

        await _reconnect(clusters, namespace)

        async def reset_run() -> str | None:
            current = await _current_run(clusters.b, namespace, workflow_id)
            return current if current != run[1] else None

        reset = await eventually(reset_run, REPLICATED_S)
        result = await split.b.get_workflow_handle(workflow_id, run_id=reset).result()
    assert result == ["finish", "from-A"]

    assert sorted(await _histories_equal(clusters, namespace)) == sorted(
        [run, (workflow_id, reset)]
    )
    for cluster in (clusters.a, clusters.b):
        assert await _current_run(cluster, namespace, workflow_id) == reset
        events = await _events(cluster, namespace, (workflow_id, reset))
        failed = [e for e in events if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        assert [e.workflow_task_failed_event_attributes.cause for e in failed] == [
            failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
        ]
        assert failed[0].workflow_task_failed_event_attributes.base_run_id == run[1]
        assert _signals(events) == [("finish", 2), ("from-A", 2)]


async def test_a_zombies_signal_survives_a_crash_after_its_commit(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """B commits A's signal to A's run, a zombie there, and dies before re-applying it (a test
    fault point); restarted, B re-applies it on its current run from what that commit kept.
    (Last in the module: it restarts B.)"""
    async with collectors(clusters) as (namespace, a, b, task_queue):
        run_a, run_b = await _competing_runs(clusters, namespace, a, b, task_queue)
        workflow_id = run_a[0]

    server = clusters.b.server
    await asyncio.to_thread(server.stop)
    server.env[FAULT_ENV] = REAPPLY_PENDING_FAULT
    await asyncio.to_thread(server.start)
    await _connect(clusters.a, clusters.b, True)
    await _connect(clusters.b, clusters.a, True)
    assert server.proc is not None
    assert await asyncio.to_thread(server.proc.wait, REPLICATED_S) == FAULT_EXIT_CODE

    del server.env[FAULT_ENV]
    await asyncio.to_thread(server.start)
    clusters.b.client = await Client.connect(server.address)
    b = Client(clusters.b.client.service_client, namespace=namespace)
    async with collector_workers([b], task_queue)[0]:
        await _settled(clusters.b, namespace, run_b, 2)
        winner = b.get_workflow_handle(workflow_id)
        await winner.signal(Collector.add, "finish")
        assert await winner.result() == ["from-B", "from-A", "finish"]
    [zombie] = (
        await _replication_command(
            clusters.b, "branches", "-n", namespace, "-w", workflow_id, "-r", run_a[1]
        )
    )["branches"]
    assert zombie["reapplied"] is True
