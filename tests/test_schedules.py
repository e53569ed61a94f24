"""Schedules through the SDK, end to end on a real server: create, describe, list (with a
query, paged), trigger, pause and unpause, backfill, update, delete; every overlap policy,
pause on failure, limited actions; the started workflows carry the schedule's search
attributes; a schedule survives a restart and runs the actions it missed inside its catchup
window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import CountSchedulesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import Storage, unique

pytestmark = pytest.mark.timeout(120)

SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")


@workflow.defn
class Scheduled:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


def _schedule(task_queue: str, every: timedelta = timedelta(hours=1)) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            Scheduled.run, "world", id="scheduled", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
    )


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _actions(handle: ScheduleHandle) -> int:
    return (await handle.describe()).info.num_actions


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[Scheduled],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def test_trigger_pause_backfill_update_and_delete(client: Client) -> None:
    task_queue = unique("sched")
    schedule_id = unique("schedule")
    handle = await client.create_schedule(schedule_id, _schedule(task_queue))
    with pytest.raises(ScheduleAlreadyRunningError):
        await client.create_schedule(schedule_id, _schedule(task_queue))
    async with _worker(client, task_queue):
        described = await handle.describe()
        assert described.info.num_actions == 0
        assert len(described.info.next_action_times) == 10
        await handle.trigger()

        async def one_action() -> bool:
            return await _actions(handle) == 1

        await _eventually(one_action, "the triggered action")
        action = (await handle.describe()).info.recent_actions[0]
        run = client.get_workflow_handle(
            action.action.workflow_id, run_id=action.action.first_execution_run_id
        )  # type: ignore[attr-defined]
        assert await run.result() == "hello world"
        started = await run.describe()
        assert started.typed_search_attributes.get(SCHEDULED_BY) == schedule_id
        assert action.action.workflow_id.startswith("scheduled-")  # type: ignore[attr-defined]

        await handle.pause(note="for maintenance")
        described = await handle.describe()
        assert (
            described.schedule.state.paused and described.schedule.state.note == "for maintenance"
        )
        await handle.unpause(note="back")
        assert not (await handle.describe()).schedule.state.paused

        now = datetime.now(UTC).replace(microsecond=0)
        await handle.backfill(
            ScheduleBackfill(
                start_at=now - timedelta(hours=3),
                end_at=now - timedelta(minutes=1),
                overlap=ScheduleOverlapPolicy.ALLOW_ALL,
            )
        )

        async def backfilled() -> bool:
            return await _actions(handle) >= 3

        await _eventually(backfilled, "the backfilled actions")

        def longer(update: ScheduleUpdateInput) -> ScheduleUpdate:
            schedule = update.description.schedule
            schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))])
            return ScheduleUpdate(schedule=schedule)

        await handle.update(longer)
        spec = (await handle.describe()).schedule.spec
        assert spec.intervals == [ScheduleIntervalSpec(every=timedelta(days=1))]
        listed = [s.id async for s in await client.list_schedules()]
        assert schedule_id in listed
        await handle.delete()
    with pytest.raises(RPCError) as missing:
        await handle.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_an_interval_schedule_runs_on_its_own(client: Client) -> None:
    task_queue = unique("sched")
    handle = await client.create_schedule(
        unique("every-second"), _schedule(task_queue, every=timedelta(seconds=1))
    )
    async with _worker(client, task_queue):

        async def two_actions() -> bool:
            return await _actions(handle) >= 2

        await _eventually(two_actions, "two actions one second apart")
    await handle.delete()


async def test_a_schedule_survives_a_restart(storage: Storage) -> None:
    server = storage.server()
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        schedule_id = unique("durable")
        await client.create_schedule(schedule_id, _schedule(unique("sched")))
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.start)
        client = await Client.connect(server.address)
        described = await client.get_schedule_handle(schedule_id).describe()
        assert described.id == schedule_id
        assert len(described.info.next_action_times) == 10
    finally:
        await asyncio.to_thread(server.stop)


@workflow.defn
class Blocking:
    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: self.released)
        return name


@workflow.defn
class Failing:
    @workflow.run
    async def run(self, name: str) -> str:
        raise ApplicationError(f"{name} broke", non_retryable=True)


def _blocking_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[Blocking],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def _hourly(workflow_run: Any, task_queue: str, **policy: Any) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow_run, "x", id=unique("wf"), task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        policy=SchedulePolicy(**policy),
    )


async def test_overlap_skip_then_buffer_one(client: Client) -> None:
    task_queue = unique("sched")
    handle = await client.create_schedule(unique("overlap"), _hourly(Blocking.run, task_queue))
    async with _blocking_worker(client, task_queue):
        await handle.trigger()  # starts one; the schedule's policy is SKIP
        await handle.trigger()  # skipped: one is running
        described = await handle.describe()
        assert described.info.num_actions == 1
        assert described.info.num_actions_skipped_overlap == 1
        await handle.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ONE)  # waits for the first
        described = await handle.describe()
        assert described.info.num_actions == 1  # buffered, not started
        first = described.info.running_actions[0]
        await client.get_workflow_handle(
            first.workflow_id, run_id=first.first_execution_run_id
        ).signal(Blocking.release)

        async def second_started() -> bool:
            return await _actions(handle) == 2

        await _eventually(second_started, "the buffered start after the first closed")
        second = (await handle.describe()).info.running_actions[0]
        assert second.first_execution_run_id != first.first_execution_run_id
        await client.get_workflow_handle(second.workflow_id).signal(Blocking.release)
    await handle.delete()


async def test_a_failed_run_pauses_the_schedule(client: Client) -> None:
    task_queue = unique("sched")
    handle = await client.create_schedule(
        unique("fragile"), _hourly(Failing.run, task_queue, pause_on_failure=True)
    )
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Failing],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        await handle.trigger()

        async def paused() -> bool:
            return (await handle.describe()).schedule.state.paused

        await _eventually(paused, "the schedule to pause after the failure")
    note = (await handle.describe()).schedule.state.note
    assert note.startswith("paused due to workflow failure: ") and note.endswith(": x broke")
    await handle.delete()


async def test_limited_actions_run_out(client: Client) -> None:
    task_queue = unique("sched")
    schedule = _schedule(task_queue, every=timedelta(seconds=1))
    schedule.state = ScheduleState(limited_actions=True, remaining_actions=1)
    handle = await client.create_schedule(unique("limited"), schedule)
    async with _worker(client, task_queue):

        async def used_up() -> bool:
            return (await handle.describe()).schedule.state.remaining_actions == 0

        await _eventually(used_up, "the one allowed action")
    described = await handle.describe()
    assert described.info.num_actions == 1
    assert described.info.next_action_times == []  # nothing left to run
    await handle.delete()


async def test_list_filters_by_query_and_pages(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={"ScheduleTeam": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    team = SearchAttributeKey.for_keyword("ScheduleTeam")
    mine, task_queue = unique("team"), unique("sched")
    ids = [unique("listed") for _ in range(5)]
    for i, schedule_id in enumerate(ids):
        schedule = _schedule(task_queue)
        schedule.state = ScheduleState(paused=i == 0)
        await client.create_schedule(
            schedule_id,
            schedule,
            search_attributes=TypedSearchAttributes([SearchAttributePair(team, mine)]),
        )

    async def listed(query: str, page_size: int = 1000) -> list[str]:
        return [s.id async for s in await client.list_schedules(query, page_size=page_size)]

    assert sorted(await listed(f"ScheduleTeam = '{mine}'", page_size=2)) == sorted(ids)
    assert await listed(f"ScheduleTeam = '{mine}' AND TemporalSchedulePaused = true") == ids[:1]
    assert await listed(f"ScheduleId = '{ids[3]}'") == [ids[3]]
    count = await client.workflow_service.count_schedules(
        CountSchedulesRequest(namespace=client.namespace, query=f"ScheduleTeam = '{mine}'")
    )
    assert count.count == 5

    with pytest.raises(RPCError) as bad:
        await listed("WorkflowType = 'Scheduled'")
    assert bad.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert (
        bad.value.message == 'invalid query filter for schedules: cannot filter on "WorkflowType"'
    )
    for schedule_id in ids:
        await client.get_schedule_handle(schedule_id).delete()
    assert await listed(f"ScheduleTeam = '{mine}'") == []


async def test_search_attributes_are_checked_and_described_typed(client: Client) -> None:
    """Found by the SDK suite's test_schedule_workflow_search_attribute_update: attributes sent
    without their type metadata come back typed."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={"ScheduleTeam": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    team = SearchAttributeKey.for_keyword("ScheduleTeam")
    schedule = _schedule(unique("sched"))
    assert isinstance(schedule.action, ScheduleActionStartWorkflow)
    schedule.action.untyped_search_attributes = {"ScheduleTeam": ["untyped"]}
    handle = await client.create_schedule(unique("typed"), schedule)
    described = await handle.describe()
    assert isinstance(described.schedule.action, ScheduleActionStartWorkflow)
    assert described.schedule.action.typed_search_attributes[team] == "untyped"

    schedule.action.untyped_search_attributes = {"NoSuchAttribute": ["x"]}
    with pytest.raises(RPCError) as bad:
        await client.create_schedule(unique("untyped"), schedule)
    assert bad.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "has no mapping defined for search attribute NoSuchAttribute" in bad.value.message
    await handle.delete()


async def _backfill_hours(handle: ScheduleHandle, hours: int) -> None:
    """Backfill the last `hours` hourly actions (distinct nominal times, so distinct ids)."""
    end = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    await handle.backfill(ScheduleBackfill(start_at=end - timedelta(hours=hours), end_at=end))


async def _running(handle: ScheduleHandle, count: int) -> list[str]:
    """Wait until exactly `count` of the schedule's workflows run; their workflow ids."""
    described = None

    async def settled() -> bool:
        nonlocal described
        described = await handle.describe()
        return len(described.info.running_actions) == count

    await _eventually(settled, f"{count} running workflows")
    assert described is not None
    return [a.workflow_id for a in described.info.running_actions]


async def _release(client: Client, workflow_id: str) -> None:
    await client.get_workflow_handle(workflow_id).signal(Blocking.release)


async def test_overlap_allow_all_runs_every_action_at_once(client: Client) -> None:
    task_queue = unique("sched")
    handle = await client.create_schedule(
        unique("allow-all"),
        _hourly(Blocking.run, task_queue, overlap=ScheduleOverlapPolicy.ALLOW_ALL),
    )
    async with _blocking_worker(client, task_queue):
        await _backfill_hours(handle, 3)

        async def three_started() -> bool:
            return await _actions(handle) == 3

        await _eventually(three_started, "three actions")
        described = await handle.describe()
        assert described.info.running_actions == []  # as Temporal: ALLOW_ALL runs are not watched
        started = [a.action.workflow_id for a in described.info.recent_actions]  # type: ignore[attr-defined]
        for workflow_id in started:
            running = await client.get_workflow_handle(workflow_id).describe()
            assert running.status == WorkflowExecutionStatus.RUNNING
        for workflow_id in started:
            await _release(client, workflow_id)
            await client.get_workflow_handle(workflow_id).result()
    await handle.delete()


async def test_overlap_buffer_all_runs_every_action_in_turn(client: Client) -> None:
    task_queue = unique("sched")
    handle = await client.create_schedule(
        unique("buffer-all"),
        _hourly(Blocking.run, task_queue, overlap=ScheduleOverlapPolicy.BUFFER_ALL),
    )
    async with _blocking_worker(client, task_queue):
        await _backfill_hours(handle, 3)
        seen: list[str] = []
        for _ in range(3):
            described = None

            async def next_one_runs() -> bool:
                nonlocal described
                described = await handle.describe()
                running = [a.workflow_id for a in described.info.running_actions]
                return len(running) == 1 and running[0] not in seen

            await _eventually(next_one_runs, "the next buffered action")
            assert described is not None
            seen.append(described.info.running_actions[0].workflow_id)
            assert described.raw_description.info.buffer_size == 3 - len(seen)
            await _release(client, seen[-1])
        await _running(handle, 0)
        assert (await handle.describe()).info.num_actions == 3
    await handle.delete()


@pytest.mark.parametrize(
    ("policy", "status"),
    [
        (ScheduleOverlapPolicy.CANCEL_OTHER, WorkflowExecutionStatus.CANCELED),
        (ScheduleOverlapPolicy.TERMINATE_OTHER, WorkflowExecutionStatus.TERMINATED),
    ],
)
async def test_overlap_cancel_or_terminate_other_replaces_the_running_one(
    client: Client, policy: ScheduleOverlapPolicy, status: WorkflowExecutionStatus
) -> None:
    task_queue = unique("sched")
    handle = await client.create_schedule(
        unique("replace"), _hourly(Blocking.run, task_queue, overlap=policy)
    )
    async with _blocking_worker(client, task_queue):
        await handle.trigger()
        (first,) = await _running(handle, 1)
        await _backfill_hours(handle, 1)  # one more action: the first must make way

        async def replaced() -> bool:
            running = (await handle.describe()).info.running_actions
            return [a.workflow_id for a in running] not in ([], [first])

        await _eventually(replaced, "the next action to replace the running one")
        assert (await client.get_workflow_handle(first).describe()).status == status
        (second,) = await _running(handle, 1)
        await _release(client, second)
    await handle.delete()


async def test_missed_actions_inside_the_catchup_window_run_after_a_restart(
    storage: Storage,
) -> None:
    server = storage.server()
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        task_queue = unique("sched")
        schedule = _schedule(task_queue, every=timedelta(seconds=1))
        schedule.policy = SchedulePolicy(
            overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=timedelta(seconds=10)
        )
        handle = await client.create_schedule(unique("catchup"), schedule)
        await asyncio.to_thread(server.kill)
        down_at = datetime.now(UTC)
        # The server stays down long enough for some actions to fall out of the 10 s window.
        await asyncio.sleep(13)
        await asyncio.to_thread(server.start)
        up_at = datetime.now(UTC)
        client = await Client.connect(server.address)
        handle = client.get_schedule_handle(handle.id)

        async def caught_up() -> bool:
            info = (await handle.describe()).info
            return any(a.scheduled_at > up_at - timedelta(seconds=2) for a in info.recent_actions)

        await _eventually(caught_up, "the missed actions")
        info = (await handle.describe()).info
        missed = [a.scheduled_at for a in info.recent_actions if down_at < a.scheduled_at < up_at]
        assert missed, "actions due while the server was down ran after it came back"
        assert min(missed) >= up_at - timedelta(seconds=11), "none older than the window"
        assert info.num_actions_missed_catchup_window >= 1
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_schedule_with_nothing_left_to_do_is_deleted_after_its_retention(
    storage: Storage,
) -> None:
    server = storage.server(extra_args=["--dynamic-config-value", 'aion.scheduleRetention="1s"'])
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        task_queue = unique("sched")
        done = _schedule(task_queue, every=timedelta(seconds=1))
        done.state = ScheduleState(limited_actions=True, remaining_actions=1)
        handle = await client.create_schedule(unique("done"), done)
        paused = _schedule(task_queue)
        paused.state = ScheduleState(paused=True)
        kept = await client.create_schedule(unique("paused"), paused)

        async def gone() -> bool:
            try:
                await handle.describe()
            except RPCError as e:
                assert e.status == RPCStatusCode.NOT_FOUND
                return True
            return False

        await _eventually(gone, "the used-up schedule to be deleted")
        assert (await kept.describe()).schedule.state.paused
    finally:
        await asyncio.to_thread(server.stop)
