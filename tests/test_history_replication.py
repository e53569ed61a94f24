"""History replication and planned failover with running workflows (docs/global-namespaces.md),
across two Aion clusters, each a process on its own storage (two SQLite files, or two
PostgreSQL databases): every history on the standby equals the active cluster's event by
event, a standby killed with SIGKILL catches up after its restart, and a failover (then a
failback) mid-run moves the running workflows, which complete exactly once with their results."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.enums.v1.event_type_pb2 import EventType
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import aion_command, fresh_storage, run_sql, unique
from tests.metrics_scrape import scrape
from tests.servers import free_port
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    _cluster_args,
    _register_global,
    _replicated,
    _start,
    eventually,
    start_request,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
REPLICATED_S = float(
    __import__("os").environ.get("REPL_S", 30.0)
)  # generous: two servers and their workers share two cores with others


@dataclass
class MeteredClusters(Clusters):
    metrics_ports: dict[str, int]  # cluster name -> its /metrics port


@pytest.fixture(scope="module")
async def clusters(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MeteredClusters]:
    """Clusters A (the master) and B, connected both ways with replication enabled, each with
    a metrics port."""
    directory = tmp_path_factory.mktemp("replication")
    ports = {"A": free_port(), "B": free_port()}
    async with AsyncExitStack() as stack:
        storage_a = await stack.enter_async_context(fresh_storage(backend, str(directory / "a.db")))
        storage_b = await stack.enter_async_context(fresh_storage(backend, str(directory / "b.db")))
        metered = {name: ("--metrics-port", str(port)) for name, port in ports.items()}
        a = await _start(
            stack, storage_a.server(extra_args=_cluster_args("A", 1, *metered["A"])), "A"
        )
        b = await _start(
            stack, storage_b.server(extra_args=_cluster_args("B", 2, *metered["B"])), "B"
        )
        await a.upsert(b)
        await b.upsert(a)
        yield MeteredClusters(a, b, ports)


@activity.defn
async def flaky_double(n: int) -> int:
    """Fails its first attempt, heartbeats, then doubles `n`."""
    activity.heartbeat(f"attempt {activity.info().attempt}")
    if activity.info().attempt == 1:
        raise RuntimeError("first attempt fails")
    return 2 * n


@workflow.defn
class Child:
    @workflow.run
    async def run(self, n: int) -> int:
        return n + 1


@workflow.defn
class Mixed:
    """An activity with a retry, a timer, a signal, an update, a child, continue-as-new."""

    def __init__(self) -> None:
        self.released = False
        self.notes: list[str] = []

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.update
    def note(self, text: str) -> int:
        """Keep `text`; how many notes the run has."""
        self.notes.append(text)
        return len(self.notes)

    @workflow.run
    async def run(self, n: int, hops: int) -> str:
        doubled = await workflow.execute_activity(
            flaky_double,
            n,
            start_to_close_timeout=timedelta(seconds=3),
            heartbeat_timeout=timedelta(seconds=3),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )
        await workflow.sleep(0.3)
        if hops:  # the first run waits for its signal
            await workflow.wait_condition(lambda: self.released)
        child = await workflow.execute_child_workflow(
            Child.run, doubled, id=f"{workflow.info().workflow_id}-child-{hops}"
        )
        if hops:
            workflow.continue_as_new(args=[n, hops - 1])
        return f"{n}:{child}"


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[Mixed, Child],
        activities=[flaky_double],
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def _history(cluster: Cluster, namespace: str, run: tuple[str, str]) -> list[bytes]:
    events: list[bytes] = []
    token = b""
    while True:
        page = await cluster.client.workflow_service.get_workflow_execution_history(
            rr.GetWorkflowExecutionHistoryRequest(
                namespace=namespace,
                execution=common_pb.WorkflowExecution(workflow_id=run[0], run_id=run[1]),
                next_page_token=token,
            )
        )
        events += [e.SerializeToString(deterministic=True) for e in page.history.events]
        token = page.next_page_token
        if not token:
            return events


async def _runs(cluster: Cluster, namespace: str) -> list[tuple[str, str]]:
    runs: list[tuple[str, str]] = []
    token = b""
    while True:
        listed = await cluster.client.workflow_service.list_workflow_executions(
            rr.ListWorkflowExecutionsRequest(
                namespace=namespace, page_size=1000, next_page_token=token
            )
        )
        runs += [(e.execution.workflow_id, e.execution.run_id) for e in listed.executions]
        token = listed.next_page_token
        if not token:
            return sorted(runs)


async def _histories_equal(
    clusters: Clusters, namespace: str, timeout: float = REPLICATED_S
) -> list[tuple[str, str]]:
    """The namespace's runs, once both clusters list the same and each history on B equals A's
    event by event (within `timeout` seconds)."""

    async def same(run: tuple[str, str]) -> bool:
        return await _history(clusters.b, namespace, run) == await _history(
            clusters.a, namespace, run
        )

    async def equal() -> list[tuple[str, str]] | None:
        runs = await _runs(clusters.a, namespace)
        if runs != await _runs(clusters.b, namespace):
            return None
        return runs if all(await _bounded([same(run) for run in runs])) else None

    return await eventually(equal, timeout)


def _versions(history: list[bytes]) -> set[int]:
    return {history_pb.HistoryEvent.FromString(e).version for e in history}


async def _start_mixed(client: Client, task_queue: str, ids: list[str]) -> None:
    for i, workflow_id in enumerate(ids):
        await _start_one(client, task_queue, workflow_id, i)


async def _start_one(client: Client, task_queue: str, workflow_id: str, n: int) -> None:
    await client.start_workflow(
        Mixed.run,
        args=[n, 1],
        id=workflow_id,
        task_queue=task_queue,
        task_timeout=timedelta(seconds=4),
    )


async def _bounded(calls: list[Awaitable[T]], limit: int = 20) -> list[T]:
    """Await `calls` with at most `limit` of them running at a time; their results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


SCALE = 200  # the acceptance 3
CAUGHT_UP_S = 120.0  # B's catch-up after its restart, on a loaded two-core machine


async def test_histories_replicate_event_by_event_and_survive_a_standby_crash(
    clusters: Clusters,
) -> None:
    """SCALE mixed workflows on A (an activity failing its first attempt and heartbeating, a
    timer, an update, a signal, a child, continue-as-new), started concurrently; B is killed
    with SIGKILL mid-run and restarted; every run (the children and continued runs included)
    has the same history on B as on A."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    task_queue = unique("mixed")
    ids = [unique("wf") for _ in range(SCALE)]
    began = time.monotonic()
    async with _worker(a, task_queue):
        await _bounded([_start_one(a, task_queue, w, i) for i, w in enumerate(ids)])
        notes = await _bounded(
            [a.get_workflow_handle(w).execute_update(Mixed.note, w) for w in ids[::2]]
        )
        await asyncio.to_thread(clusters.b.server.kill)
        notes += await _bounded(
            [a.get_workflow_handle(w).execute_update(Mixed.note, w) for w in ids[1::2]]
        )
        assert set(notes) == {1}  # each run's first note
        await _bounded([a.get_workflow_handle(w).signal(Mixed.release) for w in ids])
        await asyncio.to_thread(clusters.b.server.start)
        results = await _bounded([a.get_workflow_handle(w).result() for w in ids])
    completed = time.monotonic()
    assert results == [f"{i}:{2 * i + 1}" for i in range(SCALE)]
    runs = await _histories_equal(clusters, namespace, CAUGHT_UP_S)
    log.info(
        "%d workflows: completed on A in %.1f s, replicated to B %.1f s later",
        SCALE,
        completed - began,
        time.monotonic() - completed,
    )
    assert len(runs) == SCALE * 4  # two runs each, a child per run
    histories = await _bounded([_history(clusters.b, namespace, run) for run in runs])
    assert all(_versions(history) == {1} for history in histories)


async def test_failover_and_failback_with_running_workflows(clusters: Clusters) -> None:
    """Workers poll both clusters; workflows waiting on a signal are failed over to B, signalled
    there, and complete on B exactly once; then the same after a failback to A (version 11).
    B's events after the failover carry version 2, A's after the failback 11, and the
    histories end equal on both clusters."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    task_queue = unique("failover")
    first, second = [unique("wf") for _ in range(6)], [unique("wf") for _ in range(6)]
    async with _worker(a, task_queue), _worker(b, task_queue):
        await _start_mixed(a, task_queue, first)
        await _start_mixed(a, task_queue, second)
        await _released_once(a, first[:3])
        await clusters.a.cli.ok(
            "operator", "namespace", "update", "-n", namespace, "--active-cluster", "B"
        )
        await _replicated(clusters.b, namespace, 2)
        await _released_once(b, first[3:])
        await _released_once(b, second[:3])
        first_results = [await b.get_workflow_handle(w).result() for w in first]
        await clusters.b.cli.ok(
            "operator", "namespace", "update", "-n", namespace, "--active-cluster", "A"
        )
        await _replicated(clusters.a, namespace, 11)
        await _released_once(a, second[3:])
        second_results = [await a.get_workflow_handle(w).result() for w in second]
    assert first_results == [f"{i}:{2 * i + 1}" for i in range(6)]
    assert second_results == [f"{i}:{2 * i + 1}" for i in range(6)]
    runs = await _histories_equal(clusters, namespace)
    completed = workflow_pb2.WORKFLOW_EXECUTION_STATUS_COMPLETED
    for workflow_id in first + second:
        described = await a.get_workflow_handle(workflow_id).describe()
        assert described.raw_description.workflow_execution_info.status == completed
    versions = set().union(*[_versions(await _history(clusters.a, namespace, r)) for r in runs])
    assert versions == {1, 2, 11}


async def test_executions_from_before_replication_are_back_filled(clusters: Clusters) -> None:
    """Workflows started in a local namespace on A, two completed and two waiting for their
    signal; the namespace is promoted, then given cluster B: B gets every run with A's
    history (back-filled), and the waiting ones, failed over to B, complete there."""
    name = unique("local")
    await clusters.a.cli.ok("operator", "namespace", "create", "-n", name)
    a = await Client.connect(clusters.a.server.address, namespace=name)
    task_queue = unique("backfill")
    ids = [unique("wf") for _ in range(4)]
    completed, waiting = ids[:2], ids[2:]
    async with _worker(a, task_queue):
        await _start_mixed(a, task_queue, ids)
        await _released_once(a, completed)
        assert [await a.get_workflow_handle(w).result() for w in completed] == ["0:1", "1:3"]
        for workflow_id in waiting:
            await eventually(lambda w=workflow_id: _waits_for_its_signal(a, w), REPLICATED_S)
    await clusters.a.cli.ok("operator", "namespace", "update", "-n", name, "--promote-global")
    await clusters.a.cli.ok(
        "operator", "namespace", "update", "-n", name, "--cluster", "A", "--cluster", "B"
    )
    await _replicated(clusters.b, name, 1)
    runs = await _histories_equal(clusters, name)
    assert len(runs) == 2 * 4 + 2  # the completed: two runs and two children; the waiting: one
    await clusters.a.cli.ok("operator", "namespace", "update", "-n", name, "--active-cluster", "B")
    await _replicated(clusters.b, name, 2)
    b = await Client.connect(clusters.b.server.address, namespace=name)
    async with _worker(b, task_queue):
        await _released_once(b, waiting)
        assert [await b.get_workflow_handle(w).result() for w in waiting] == ["2:5", "3:7"]
    await _histories_equal(clusters, name)


async def _waits_for_its_signal(client: Client, workflow_id: str) -> bool | None:
    """Whether the workflow's first run has fired its timer and completed the workflow task
    after it (it now waits for its signal)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    types = [e.event_type for e in history.events]
    fired = EventType.EVENT_TYPE_TIMER_FIRED
    if fired not in types or types[-1] != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        return None
    return True


async def _released_once(client: Client, ids: list[str]) -> None:
    """Signal each workflow until the signal lands (a freshly active cluster may briefly still
    answer NamespaceNotActive for its namespace)."""
    for workflow_id in ids:

        async def signalled(workflow_id: str = workflow_id) -> bool | None:
            try:
                await client.get_workflow_handle(workflow_id).signal(Mixed.release)
            except Exception:
                return None
            return True

        await eventually(signalled, REPLICATED_S)


async def _metric(clusters: MeteredClusters, cluster: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples on `cluster`'s /metrics (those with `labels`)."""
    found = await scrape(clusters.metrics_ports[cluster])
    return sum(
        value
        for sample, sample_labels, value in found
        if sample == name and labels.items() <= sample_labels.items()
    )


async def test_lag_and_latency_are_metrics(clusters: MeteredClusters) -> None:
    """B paused with SIGSTOP: A's `replication_tasks_lag` for B rises above 0; after SIGCONT it
    is back to 0, and B has counted the applied tasks and their latency."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    b_process = clusters.b.server.proc
    assert b_process is not None
    applied_before = await _metric(clusters, "B", "replication_tasks_applied")
    b_process.send_signal(signal.SIGSTOP)
    try:
        await _start_mixed(a, unique("lag"), [unique("wf") for _ in range(3)])

        async def lagging() -> bool | None:
            return True if await _metric(clusters, "A", "replication_tasks_lag") > 0 else None

        await eventually(lagging, REPLICATED_S)
    finally:
        b_process.send_signal(signal.SIGCONT)

    async def caught_up() -> bool | None:
        return True if await _metric(clusters, "A", "replication_tasks_lag") == 0 else None

    await eventually(caught_up, REPLICATED_S)
    assert await _metric(clusters, "B", "replication_tasks_applied") >= applied_before + 3
    assert await _metric(clusters, "B", "replication_latency_count") >= 3


async def _on_b(clusters: MeteredClusters, sql: str, *args: object) -> None:
    """Run a statement on B's database, beside the running server (the injected fault)."""
    await run_sql(clusters.b.server, sql, *args)


async def test_a_failing_task_goes_to_the_dlq_and_merges(clusters: MeteredClusters) -> None:
    """An unreadable execution row planted on B (while B is stopped) makes one workflow's tasks
    fail there: they go to the DLQ while the others replicate; with the row removed, merging
    the DLQ (`aion replication dlq merge`) makes every history equal. A hidden branch planted
    as set aside (as after 10 failed re-applies) is counted until the merge retries it."""
    namespace = await _register_global(clusters)
    namespace_id = (await clusters.a.describe(namespace)).namespace_info.id
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    faulty, *others = [unique("wf") for _ in range(3)]
    await asyncio.to_thread(clusters.b.server.stop)
    try:
        await _start_mixed(a, unique("dlq"), [faulty, *others])
        run_id = (await a.get_workflow_handle(faulty).describe()).run_id
        planted = (
            "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, state, "
            "db_version) VALUES (0, ?, ?, ?, ?, 1)"
        )
        await _on_b(clusters, planted, namespace_id, faulty, run_id, b"not a snapshot")
    finally:
        await asyncio.to_thread(clusters.b.server.start)

    async def set_aside() -> bool | None:
        listed = await _dlq(clusters, "list")
        return True if any(t["workflow_id"] == faulty for t in listed["tasks"]) else None

    await eventually(set_aside, REPLICATED_S)
    assert await _metric(clusters, "B", "replication_dlq_non_empty", source_cluster="A") == 1
    hidden = (
        "INSERT INTO hidden_history_events (shard_id, namespace_id, workflow_id, run_id, branch, "
        "event_id, data, reapplied, set_aside_time_ns) VALUES (0, ?, ?, ?, '2@v1', 2, ?, ?, 1)"
    )
    scheduled = history_pb.HistoryEvent(
        event_id=2, event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    )
    await _on_b(
        clusters, hidden, namespace_id, faulty, run_id, scheduled.SerializeToString(), False
    )
    set_aside_gauge = ("B", "aion_replication_branches_set_aside")
    label = namespace.replace("-", "_")  # as the exposition spells it
    assert await _metric(clusters, *set_aside_gauge, namespace=label) == 1
    for workflow_id in others:  # the shard went on
        await eventually(
            lambda w=workflow_id: _described_on_b(clusters, namespace, w), REPLICATED_S
        )
    await _on_b(clusters, "DELETE FROM executions WHERE run_id = ?", run_id)
    merged = await _dlq(clusters, "merge")
    assert merged["merged"] >= 1 and merged["failing"] == 0
    assert (await _dlq(clusters, "list"))["tasks"] == []
    assert await _metric(clusters, "B", "replication_dlq_non_empty", source_cluster="A") == 0
    assert await _metric(clusters, *set_aside_gauge, namespace=label) == 0

    async def reapplied() -> bool | None:
        branches = "branches", "-n", namespace, "-w", faulty, "-r", run_id
        [branch] = (await _replication_command(clusters.b, *branches))["branches"]
        return True if branch["reapplied"] and not branch["set_aside"] else None

    await eventually(reapplied, REPLICATED_S)
    await _histories_equal(clusters, namespace)


async def test_writes_refused_on_the_standby_are_counted(clusters: MeteredClusters) -> None:
    """A start on B, where the namespace is standby, answers NamespaceNotActive and counts in
    B's `service_errors_namespace_not_active` by namespace and operation."""
    namespace = await _register_global(clusters)
    # The exposition spells label values as the reference's Prometheus reporter does.
    labels = {"namespace": namespace.replace("-", "_"), "operation": "StartWorkflowExecution"}
    start = start_request(namespace)
    for _ in range(2):
        with pytest.raises(RPCError) as refused:
            await clusters.b.client.workflow_service.start_workflow_execution(start)
        assert refused.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert await _metric(clusters, "B", "service_errors_namespace_not_active", **labels) == 2
    assert await _metric(clusters, "A", "service_errors_namespace_not_active", **labels) == 0


async def _described_on_b(
    clusters: MeteredClusters, namespace: str, workflow_id: str
) -> bool | None:
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    try:
        await b.get_workflow_handle(workflow_id).describe()
    except Exception:
        return None
    return True


async def _dlq(clusters: MeteredClusters, action: str) -> Any:
    """`aion replication dlq ACTION` on B: its JSON answer."""
    return await _replication_command(clusters.b, "dlq", action)


async def _replication_command(cluster: Cluster, *args: str) -> Any:
    """`aion replication ARGS` on `cluster`: its JSON answer."""
    code, out, err = await aion_command("replication", *args, "--address", cluster.server.address)
    assert code == 0, err
    return json.loads(out)


async def test_replication_status_per_shard(clusters: MeteredClusters) -> None:
    """`aion replication status`: on B, per shard of A, the task id applied, when, the DLQ size
    and A's highest task id with the lag (0 once caught up); on A, per shard, what B has
    acknowledged, equal to the shard's highest task id once B has pulled again."""
    namespace = await _register_global(clusters)
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    await _start_mixed(a, unique("status"), [unique("wf") for _ in range(4)])
    await _histories_equal(clusters, namespace)
    shards = range(4)  # each cluster's default shard count

    async def caught_up_on_b() -> list[dict[str, Any]] | None:
        answer = await _replication_command(clusters.b, "status")
        assert answer["cluster"] == "B"
        rows = [r for r in answer["receiving"] if r["source_cluster"] == "A"]
        assert [r["shard_id"] for r in rows] == list(shards)
        if any(r["lag"] or r["applied_task_id"] != r["source_max_task_id"] for r in rows):
            return None
        return rows

    receiving = await eventually(caught_up_on_b, REPLICATED_S)
    applied = [r for r in receiving if r["applied_task_id"] > 0]
    assert applied and all(r["applied_time"] for r in applied)
    assert all(r["dlq_size"] == 0 for r in receiving)

    async def acknowledged_on_a() -> list[dict[str, Any]] | None:
        answer = await _replication_command(clusters.a, "status")
        rows = [r for r in answer["sending"] if r["target_cluster"] == "B"]
        assert [r["shard_id"] for r in rows] == list(shards)
        if any(r["lag"] or r["acked_task_id"] != r["max_task_id"] for r in rows):
            return None
        return rows

    sending = await eventually(acknowledged_on_a, REPLICATED_S)
    by_shard = {r["shard_id"]: r["acked_task_id"] for r in sending}
    assert all(by_shard[r["shard_id"]] >= r["applied_task_id"] for r in receiving)
