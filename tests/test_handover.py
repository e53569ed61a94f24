"""Graceful handover across two Aion clusters (docs/global-namespaces.md), each a process on its
own storage (two SQLite files, or two PostgreSQL databases): REPLICATION_STATE_HANDOVER set with
`temporal operator namespace update --replication-state`, calls held in it and refused with
Temporal's handover error at their deadline; `aion namespace failover --mode graceful` with the
standby stopped (SIGSTOP) for a while, running workflows resuming on the standby with no fork;
a graceful failover whose wait times out leaving the namespace active where it was; `forced`."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import namespace_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tests import test_history_replication
from tests.helpers import aion_command, unique
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    _register_global,
    _replicated,
    eventually,
)
from tests.test_history_replication import (
    REPLICATED_S,
    MeteredClusters,
    Mixed,
    _histories_equal,
    _history,
    _metric,
    _start_mixed,
    _worker,
)

clusters = test_history_replication.clusters  # the fixture: A and B, with metrics ports

HANDOVER = "Namespace replication in Handover state."
STOPPED_S = 3.0  # how long the standby is stopped during the graceful failover


async def _state(cluster: Cluster, namespace: str) -> int:
    return (await cluster.describe(namespace)).replication_config.state


async def _in_state(cluster: Cluster, namespace: str, state: int) -> None:
    async def reached() -> bool | None:
        return True if await _state(cluster, namespace) == state else None

    await eventually(reached, REPLICATED_S)


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, RPCError | None]:
    """How long `call` took, and the error it raised (None if it answered)."""
    started = time.monotonic()
    try:
        await call()
    except RPCError as e:
        return time.monotonic() - started, e
    return time.monotonic() - started, None


def _signal(client: Client, namespace: str, workflow_id: str, timeout_s: float) -> Any:
    """A raw signal, not retried by the client (`probe`: one Mixed ignores)."""
    return client.workflow_service.signal_workflow_execution(
        rr.SignalWorkflowExecutionRequest(
            namespace=namespace,
            workflow_execution=common_pb.WorkflowExecution(workflow_id=workflow_id),
            signal_name="probe",
            request_id=unique("signal"),
        ),
        retry=False,
        timeout=timedelta(seconds=timeout_s),
    )


async def _aion_failover(
    clusters: Clusters, namespace: str, mode: str, timeout: str, on: Cluster | None = None
) -> tuple[int, str, str]:
    """`aion namespace failover` on cluster `on` (A by default), to the other one: its exit
    code, output and errors."""
    source = on or clusters.a
    target = clusters.a if source is clusters.b else clusters.b
    return await aion_command(
        *("namespace", "failover", "-n", namespace, "--to", target.name),
        *("--mode", mode, "--timeout", timeout, "--address", source.server.address),
    )


async def test_handover_state_holds_calls(clusters: MeteredClusters) -> None:
    """`--replication-state handover`: DescribeNamespace shows it on both clusters; a call on
    the namespace (a read too) is held to its deadline and answers UNAVAILABLE with Temporal's
    message; list and describe-namespace are served; a call held when the state returns to
    NORMAL is then served. HANDOVER on a local namespace is refused as Temporal does."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    workflow_id = unique("wf")
    await _start_mixed(a, unique("idle"), [workflow_id])
    update = ("operator", "namespace", "update", "-n", namespace, "--replication-state")
    await clusters.a.cli.ok(*update, "handover")
    assert await _state(clusters.a, namespace) == namespace_pb2.REPLICATION_STATE_HANDOVER
    await _in_state(clusters.b, namespace, namespace_pb2.REPLICATION_STATE_HANDOVER)

    def describe() -> Any:
        return a.workflow_service.describe_workflow_execution(
            rr.DescribeWorkflowExecutionRequest(
                namespace=namespace,
                execution=common_pb.WorkflowExecution(workflow_id=workflow_id),
            ),
            retry=False,
            timeout=timedelta(seconds=1),
        )

    for call in (describe, lambda: _signal(a, namespace, workflow_id, 1.0)):
        took, error = await _timed(call)
        assert error is not None and error.status == RPCStatusCode.UNAVAILABLE
        assert error.message == HANDOVER
        assert 0.7 < took < 3.0  # held until (just before) its deadline
    listed = await a.workflow_service.list_workflow_executions(
        rr.ListWorkflowExecutionsRequest(namespace=namespace), retry=False
    )
    assert [e.execution.workflow_id for e in listed.executions] == [workflow_id]

    held = asyncio.ensure_future(_timed(lambda: _signal(a, namespace, workflow_id, 20.0)))
    await asyncio.sleep(0.5)
    assert not held.done()
    await clusters.a.cli.ok(*update, "normal")
    took, error = await held
    assert error is None and took < 10.0
    await a.get_workflow_handle(workflow_id).signal(Mixed.release)
    await _in_state(clusters.b, namespace, namespace_pb2.REPLICATION_STATE_NORMAL)

    local = unique("local")
    await clusters.a.cli.ok("operator", "namespace", "create", "-n", local)
    refused = await clusters.a.cli.run(
        "operator", "namespace", "update", "-n", local, "--replication-state", "handover"
    )
    assert "Handover can only be set for global namespace" in refused.stderr


def _no_fork(history: list[bytes]) -> None:
    """One branch: event ids 1..n in order, versions never going down."""
    events = [history_pb.HistoryEvent.FromString(e) for e in history]
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    versions = [e.version for e in events]
    assert versions == sorted(versions), [(e.event_id, e.version) for e in events]


async def test_graceful_failover_with_the_standby_stopped(clusters: MeteredClusters) -> None:
    """Acceptance 1 of issue 21: workers on both clusters, workflows running on A; B is stopped
    (SIGSTOP) and a graceful failover to B begins: calls on A answer UNAVAILABLE with the
    handover message; B continued after STOPPED_S catches up, becomes active, and the
    workflows are released and complete there; every history is equal on both clusters, on one
    branch. The unavailability (first handover error to the first signal served on B) is
    printed."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    task_queue = unique("handover")
    ids = [unique("wf") for _ in range(8)]
    b_process = clusters.b.server.proc
    assert b_process is not None
    async with _worker(a, task_queue), _worker(b, task_queue):
        await _start_mixed(a, task_queue, ids)
        for workflow_id in ids[:4]:
            await a.get_workflow_handle(workflow_id).signal(Mixed.release)
        b_process.send_signal(signal.SIGSTOP)
        try:
            await _signal(a, namespace, ids[4], 10.0)  # a write B cannot have applied
            failover = asyncio.ensure_future(_aion_failover(clusters, namespace, "graceful", "60s"))
            refused_at = None
            while refused_at is None:  # the probe: a signal on A, until held and refused
                probed_at = time.monotonic()
                _, error = await _timed(lambda: _signal(a, namespace, ids[4], 1.0))
                if error is None or error.status == RPCStatusCode.CANCELLED:  # (too slow)
                    await asyncio.sleep(0.05)
                    continue
                assert error.status == RPCStatusCode.UNAVAILABLE, error
                assert error.message == HANDOVER
                refused_at = probed_at
            await asyncio.sleep(STOPPED_S)
        finally:
            b_process.send_signal(signal.SIGCONT)
        continued_at = time.monotonic()
        code, out, err = await failover
        assert code == 0, err
        result = json.loads(out)
        assert (result["mode"], result["target_cluster"]) == ("graceful", "B")
        assert result["failover_version"] == 2
        assert result["watermarks"] and result["handover_s"] > STOPPED_S  # it waited for B
        while True:  # the probe again, on B, until it is served there
            _, error = await _timed(lambda: _signal(b, namespace, ids[4], 1.0))
            if error is None:
                break
        served_at = time.monotonic()
        print(
            f"\nunavailable {served_at - refused_at:.2f} s, {served_at - continued_at:.2f} s of "
            f"it after B continued; in handover {result['handover_s']:.2f} s"
        )
        for workflow_id in ids[4:]:
            await b.get_workflow_handle(workflow_id).signal(Mixed.release)
        results = [await b.get_workflow_handle(w).result() for w in ids]
    assert results == [f"{i}:{2 * i + 1}" for i in range(8)]
    assert await _state(clusters.a, namespace) == namespace_pb2.REPLICATION_STATE_NORMAL
    runs = await _histories_equal(clusters, namespace)
    for run in runs:
        _no_fork(await _history(clusters.a, namespace, run))
    assert await _metric(clusters, "A", "namespace_failovers") >= 1


async def test_graceful_failover_that_times_out_stays_on_a(clusters: MeteredClusters) -> None:
    """B stopped for the whole wait: the graceful failover ends with DEADLINE_EXCEEDED and the
    namespace NORMAL and active on A (workflows run there); then a forced one moves it to B
    at once."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    task_queue = unique("timeout")
    b_process = clusters.b.server.proc
    assert b_process is not None
    async with _worker(a, task_queue):
        await _start_mixed(a, task_queue, [unique("wf")])  # leaves something to replicate
        b_process.send_signal(signal.SIGSTOP)
        try:
            code, _, err = await _aion_failover(clusters, namespace, "graceful", "2s")
        finally:
            b_process.send_signal(signal.SIGCONT)
        assert code != 0
        assert "DEADLINE_EXCEEDED" in err and "stays active in A" in err
        described = await clusters.a.describe(namespace)
        assert described.replication_config.active_cluster_name == "A"
        assert described.replication_config.state == namespace_pb2.REPLICATION_STATE_NORMAL
        assert described.failover_version == 1
        workflow_id = unique("wf")
        await _start_mixed(a, task_queue, [workflow_id])
        await a.get_workflow_handle(workflow_id).signal(Mixed.release)
        assert await a.get_workflow_handle(workflow_id).result() == "0:1"
    await _in_state(clusters.b, namespace, namespace_pb2.REPLICATION_STATE_NORMAL)
    assert await _metric(clusters, "A", "handover_wait_latency_count") >= 1

    code, out, err = await _aion_failover(clusters, namespace, "forced", "10s")
    assert code == 0, err
    assert json.loads(out)["mode"] == "forced"
    await _replicated(clusters.b, namespace, 2)
