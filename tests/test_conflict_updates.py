"""Updates across a conflict between clusters and across failovers, ports of Temporal's
history_replication_signals_and_updates tests: an update of the losing branch is re-applied
on the winner durably (a WorkflowExecutionUpdateAdmitted event, which a restart keeps and the
worker takes the request from), not when the winner knows its id (accepted or admitted there),
and an update accepted before a failover completes after the failback."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import update_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.update.v1 import message_pb2 as update_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client, WorkflowUpdateStage
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique
from tests.test_conflict_resolution import (
    ET,
    Collector,
    _branches,
    _connect,
    _events,
    _reconnect,
    _settled,
    collector_workers,
)
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    _register_global,
    _replicated,
    clusters,  # noqa: F401 (the fixture: clusters A and B, connected both ways)
    eventually,
)
from tests.test_history_replication import REPLICATED_S, _histories_equal
from tests.test_xdc_failover import _fail_over, _poll_task

REAPPLY = update_pb2.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY
ADMITTED = update_pb2.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED


@workflow.defn
class Gated:
    """Its `add` updates wait until the gate opens; it returns their values once finished."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.open = False
        self.finished = False

    @workflow.signal
    def open_gate(self) -> None:
        self.open = True

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.update
    async def add(self, value: str) -> str:
        await workflow.wait_condition(lambda: self.open)
        self.values.append(value)
        return value

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.finished and workflow.all_handlers_finished())
        return self.values


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[Gated, Collector],
        workflow_runner=UnsandboxedWorkflowRunner(),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )


async def _split(pair: Clusters, namespace: str) -> None:
    """Cut replication both ways and make B active (version 2) while A still is (version 1)."""
    await _connect(pair.a, pair.b, False)
    await pair.b.cli.ok("operator", "namespace", "update", "-n", namespace, "--active-cluster", "B")
    await _replicated(pair.b, namespace, 2)
    await _connect(pair.b, pair.a, False)


async def _until_event(
    cluster: Cluster, namespace: str, run: tuple[str, str], event_type: int
) -> history_pb.HistoryEvent:
    """The run's first event of `event_type` on `cluster`, once it is there."""

    async def found() -> history_pb.HistoryEvent | None:
        events = await _events(cluster, namespace, run)
        return next((e for e in events if e.event_type == event_type), None)

    return await eventually(found, REPLICATED_S)


async def _admitted(client: Client, workflow_id: str, update_id: str) -> None:
    """Wait until the update is admitted on the client's cluster."""

    async def admitted() -> bool | None:
        try:
            response = await client.workflow_service.poll_workflow_execution_update(
                rr.PollWorkflowExecutionUpdateRequest(
                    namespace=client.namespace,
                    update_ref=update_pb.UpdateRef(
                        workflow_execution=common_pb.WorkflowExecution(workflow_id=workflow_id),
                        update_id=update_id,
                    ),
                    wait_policy=update_pb.WaitPolicy(lifecycle_stage=ADMITTED),
                )
            )
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            return None
        return True if response.stage == ADMITTED else None

    await eventually(admitted, REPLICATED_S)


async def _reapplied(cluster: Cluster, namespace: str, workflow_id: str) -> None:
    """Wait until the run's hidden branch on `cluster` has been re-applied."""

    async def reapplied() -> bool | None:
        branches = (await _branches(cluster, namespace, workflow_id))["branches"]
        return True if branches and branches[0]["reapplied"] else None

    await eventually(reapplied, REPLICATED_S)


def _accepted(events: list[history_pb.HistoryEvent]) -> list[tuple[str, int]]:
    """(update id, version) of each accepted update."""
    return [
        (e.workflow_execution_update_accepted_event_attributes.protocol_instance_id, e.version)
        for e in events
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def test_no_reapply_of_an_update_whose_id_the_winner_has_accepted_or_admitted(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """A accepts updates "accepted" and "admitted"; B accepts its own "accepted" (its handler
    waits) and admits its own "admitted" (no worker runs there): neither of A's is re-applied,
    and B's complete with B's values."""
    namespace = await _register_global(clusters)
    a = Client(clusters.a.client.service_client, namespace=namespace)
    b = Client(clusters.b.client.service_client, namespace=namespace)
    task_queue, workflow_id = unique("conflict"), unique("wf")
    on_a, on_b = a.get_workflow_handle(workflow_id), b.get_workflow_handle(workflow_id)
    async with _worker(a, task_queue):
        started = await a.start_workflow(Gated.run, id=workflow_id, task_queue=task_queue)
        run = (workflow_id, started.result_run_id or "")
        await _settled(clusters.a, namespace, run, 0)
        await _histories_equal(clusters, namespace)
        await _split(clusters, namespace)
        for update_id in ("accepted", "admitted"):
            await on_a.start_update(
                Gated.add,
                f"A-{update_id}",
                id=update_id,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
    async with _worker(b, task_queue):
        accepted_on_b = await on_b.start_update(
            Gated.add, "B-accepted", id="accepted", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
    admitted_on_b = asyncio.create_task(on_b.execute_update(Gated.add, "B-admitted", id="admitted"))
    await _admitted(b, workflow_id, "admitted")

    await _reconnect(clusters, namespace)
    await _reapplied(clusters.a, namespace, workflow_id)
    await _histories_equal(clusters, namespace)
    async with _worker(b, task_queue):
        await on_b.signal(Gated.open_gate)
        assert await accepted_on_b.result() == "B-accepted"
        assert await admitted_on_b == "B-admitted"
        await on_b.signal(Gated.finish)
        assert sorted(await on_b.result()) == ["B-accepted", "B-admitted"]
    await _histories_equal(clusters, namespace)
    events = await _events(clusters.b, namespace, run)
    assert _accepted(events) == [("accepted", 2), ("admitted", 2)]
    assert ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED not in [e.event_type for e in events]


async def test_update_accepted_before_failover_completes_after_failback(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """Accepted on A (its handler waits), failed over to B and back to A: the handler completes
    on A, the caller gets the result, and both clusters hold the same history."""
    namespace = await _register_global(clusters)
    a = Client(clusters.a.client.service_client, namespace=namespace)
    b = Client(clusters.b.client.service_client, namespace=namespace)
    task_queue, workflow_id = unique("failback"), unique("wf")
    async with _worker(a, task_queue), _worker(b, task_queue):
        handle = await a.start_workflow(Gated.run, id=workflow_id, task_queue=task_queue)
        update = await handle.start_update(
            Gated.add, "x", id="across", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        await _histories_equal(clusters, namespace)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        await b.get_workflow_handle(workflow_id).signal(Gated.finish)  # written on B
        await _histories_equal(clusters, namespace)
        await _fail_over(clusters.b, clusters.a, namespace, 11)
        await handle.signal(Gated.open_gate)
        assert await update.result() == "x"
        assert await handle.result() == ["x"]
    await _histories_equal(clusters, namespace)
    events = [e async for e in handle.fetch_history_events()]
    completed = [
        e for e in events if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
    ]
    assert [
        (e.version, e.workflow_execution_update_completed_event_attributes.meta.update_id)
        for e in completed
    ] == [(11, "across")]


async def test_reapplied_update_is_admitted_durably_and_survives_a_restart(
    clusters: Clusters,  # noqa: F811 (the fixture imported above)
) -> None:
    """Temporal's TestConflictResolutionReappliesUpdates: the update A accepted is written on B
    as an UpdateAdmitted event (origin REAPPLY, after B's started workflow task) and a workflow
    task is scheduled; B's server
    restarts before any worker runs there; then a worker on B accepts the update from history
    (its accepted event names the admitted one and carries no request) and completes it; a new
    worker replays the history. (Last in the module: it restarts B.)"""
    namespace = await _register_global(clusters)
    a = Client(clusters.a.client.service_client, namespace=namespace)
    task_queue, workflow_id = unique("readmit"), unique("wf")
    async with collector_workers([a], task_queue)[0]:
        handle = await a.start_workflow(Collector.run, id=workflow_id, task_queue=task_queue)
        run = (workflow_id, handle.result_run_id or "")
        await _settled(clusters.a, namespace, run, 0)
        await _histories_equal(clusters, namespace)
        await _split(clusters, namespace)
        await handle.execute_update(Collector.add_by_update, "from-A", id="from-A")
    b = Client(clusters.b.client.service_client, namespace=namespace)
    await b.get_workflow_handle(workflow_id).signal(Collector.add, "from-B")
    held = await _poll_task(clusters.b, namespace, task_queue)

    # Re-applied while B's workflow task is started: the admitted event waits in the buffer.
    await _reconnect(clusters, namespace)
    await _reapplied(clusters.a, namespace, workflow_id)
    await clusters.b.client.workflow_service.respond_workflow_task_completed(
        rr.RespondWorkflowTaskCompletedRequest(
            namespace=namespace, task_token=held.task_token, identity="B"
        )
    )
    admitted = await _until_event(
        clusters.b, namespace, run, ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED
    )
    after_signal = [e.event_type for e in await _events(clusters.b, namespace, run)][4:]
    assert after_signal == [
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        ET.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
        ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ]
    attributes = admitted.workflow_execution_update_admitted_event_attributes
    assert (attributes.request.meta.update_id, attributes.origin) == ("from-A", REAPPLY)
    assert admitted.version == 2
    await _histories_equal(clusters, namespace)

    clusters.b.server.kill()  # a crash: nothing but what was committed survives
    await asyncio.to_thread(clusters.b.server.start)
    clusters.b.client = await Client.connect(clusters.b.server.address)
    b = Client(clusters.b.client.service_client, namespace=namespace)
    on_b = b.get_workflow_handle(workflow_id)
    async with collector_workers([b], task_queue)[0]:
        assert await on_b.get_update_handle("from-A").result() == ["from-B", "from-A"]
        await on_b.signal(Collector.add, "finish")
        assert await on_b.result() == ["from-B", "from-A", "finish"]
    await _histories_equal(clusters, namespace)
    events = await _events(clusters.b, namespace, run)
    [accepted] = [
        e.workflow_execution_update_accepted_event_attributes
        for e in events
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert accepted.accepted_request_sequencing_event_id == admitted.event_id
    assert not accepted.HasField("accepted_request")
    await Replayer(
        workflows=[Collector], workflow_runner=UnsandboxedWorkflowRunner()
    ).replay_workflow(await on_b.fetch_history())
