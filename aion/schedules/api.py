"""The schedule operations of WorkflowService: create, describe, update, patch, delete, list,
count and matching times. Each acts on the process owning the schedule's shard (the frontend
forwards the call there otherwise)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from temporalio.api.enums.v1 import task_queue_pb2
from temporalio.api.schedule.v1 import message_pb2 as schedule_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.durations import check_start_durations
from aion.common.timeutil import clamp_times
from aion.common.tokens import page
from aion.namespaces import Namespace
from aion.schedules.runtime import ScheduleRuntime
from aion.schedules.scheduler import ScheduleConflict, Scheduler
from aion.schedules.spec import CompiledSpec, InvalidSpec, describe_form, jitter_seed
from aion.visibility.query import ListQuery, QueryError, parse_query
from aion.visibility.search_attributes import (
    PREDEFINED_SEARCH_ATTRIBUTES,
    SearchAttributeRegistry,
)

TaskQueueKind = task_queue_pb2.TaskQueueKind

LIST_ACTIONS = 5  # recent and future actions a ListSchedules entry shows
DEFAULT_PAGE_SIZE = 1000
PAUSED = "TemporalSchedulePaused"


def _check(schedule: schedule_pb.Schedule) -> None:
    """Temporal's checks on a schedule a request carries (and its defaults filled in)."""
    try:
        CompiledSpec.from_proto(schedule.spec)
    except InvalidSpec as e:
        raise errors.InvalidArgument(e.message) from None
    if not schedule.action.HasField("start_workflow"):
        raise errors.InvalidArgument("Schedule action is not set on request.")
    start = schedule.action.start_workflow
    if not start.workflow_type.name:
        raise errors.InvalidArgument("WorkflowType is not set on request.")
    if not start.task_queue.name:
        raise errors.InvalidArgument("missing task queue name")
    if not start.task_queue.kind:
        start.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    check_start_durations(start)


def _token(s: Scheduler) -> bytes:
    """The conflict token as the reference writes it: the number in 8 bytes, big-endian."""
    return s.conflict_token.to_bytes(8, "big")


def _read_token(token: bytes) -> int:
    """A conflict token from a client (0: none given)."""
    if len(token) == 8:
        return int.from_bytes(token, "big")
    return int(token) if token.isdigit() else 0


async def create_schedule(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.CreateScheduleRequest
) -> rr.CreateScheduleResponse:
    if not req.schedule_id:
        raise errors.InvalidArgument("ScheduleId is not set on request.")
    _check(req.schedule)
    clamp_times(req)  # for the schedule's JSON form
    s = Scheduler.create(
        ns.name,
        ns.id,
        req.schedule_id,
        req.schedule,
        runtime.now(),
        req.initial_patch if req.HasField("initial_patch") else None,
    )
    s.memo = req.memo if req.HasField("memo") else None
    s.search_attributes = req.search_attributes if req.HasField("search_attributes") else None
    await runtime.create(s)
    return rr.CreateScheduleResponse(conflict_token=_token(s))


async def describe_schedule(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.DescribeScheduleRequest
) -> rr.DescribeScheduleResponse:
    attributes = runtime.search_attributes

    def describe(s: Scheduler) -> rr.DescribeScheduleResponse:
        schedule, info, _ = s.describe()
        schedule.spec.CopyFrom(describe_form(schedule.spec))
        start = schedule.action.start_workflow
        if start.HasField("search_attributes"):
            start.search_attributes.CopyFrom(attributes.present(ns.id, start.search_attributes))
        response = rr.DescribeScheduleResponse(
            schedule=schedule, info=info, conflict_token=_token(s)
        )
        _copy_memo_and_attributes(s, response, attributes)
        return response

    return await runtime.read(ns.id, req.schedule_id, describe)


def _copy_memo_and_attributes(
    s: Scheduler,
    target: rr.DescribeScheduleResponse | schedule_pb.ScheduleListEntry,
    attributes: SearchAttributeRegistry,
) -> None:
    """The schedule's own memo, and its search attributes typed as describe shows them."""
    if s.memo is not None:
        target.memo.CopyFrom(s.memo)
    if s.search_attributes is not None:
        target.search_attributes.CopyFrom(attributes.present(s.namespace_id, s.search_attributes))


async def update_schedule(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.UpdateScheduleRequest
) -> rr.UpdateScheduleResponse:
    _check(req.schedule)
    clamp_times(req.schedule)
    token = _read_token(req.conflict_token)

    def update(s: Scheduler) -> None:
        try:
            s.update(req.schedule, runtime.now(), token)
        except ScheduleConflict:
            return  # as Temporal: a stale update is dropped
        if req.HasField("search_attributes"):
            s.search_attributes = req.search_attributes

    await runtime.change(ns.id, req.schedule_id, update)
    return rr.UpdateScheduleResponse()


async def patch_schedule(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.PatchScheduleRequest
) -> rr.PatchScheduleResponse:
    clamp_times(req.patch)
    await runtime.change(ns.id, req.schedule_id, lambda s: s.patch(req.patch, runtime.now()))
    return rr.PatchScheduleResponse()


async def delete_schedule(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.DeleteScheduleRequest
) -> rr.DeleteScheduleResponse:
    await runtime.delete(ns.id, req.schedule_id)
    return rr.DeleteScheduleResponse()


async def list_schedule_matching_times(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.ListScheduleMatchingTimesRequest
) -> rr.ListScheduleMatchingTimesResponse:
    schedule = await runtime.read(ns.id, req.schedule_id, lambda s: s.schedule)
    clamp_times(req)
    spec = CompiledSpec.from_proto(schedule.spec)
    times = spec.matching_times(
        req.start_time.ToDatetime(dt.UTC),
        req.end_time.ToDatetime(dt.UTC),
        seed=jitter_seed(ns.id, req.schedule_id),
    )
    response = rr.ListScheduleMatchingTimesResponse()
    for t in times:
        response.start_time.add().FromDatetime(t)
    return response


async def list_schedules(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.ListSchedulesRequest
) -> rr.ListSchedulesResponse:
    """The namespace's schedules matching the query, by schedule id, read from the store (any
    process can answer)."""
    matched = await _matching(runtime, ns, req.query)
    size = req.maximum_page_size if req.maximum_page_size > 0 else DEFAULT_PAGE_SIZE
    shown, following = page(matched, req.next_page_token, size)
    response = rr.ListSchedulesResponse(next_page_token=following)
    for s in shown:
        entry = response.schedules.add(schedule_id=s.schedule_id, info=_list_info(s))
        _copy_memo_and_attributes(s, entry, runtime.search_attributes)
    return response


async def count_schedules(
    runtime: ScheduleRuntime, ns: Namespace, req: rr.CountSchedulesRequest
) -> rr.CountSchedulesResponse:
    return rr.CountSchedulesResponse(count=len(await _matching(runtime, ns, req.query)))


async def _matching(runtime: ScheduleRuntime, ns: Namespace, text: str) -> list[Scheduler]:
    attributes = runtime.search_attributes
    query = _schedule_query(text, attributes.types(ns.id))
    saved = await runtime.saved(ns.id)
    schedules = sorted(saved, key=lambda s: s.schedule_id)
    if query.where is None:
        return schedules
    return [s for s in schedules if query.matches(_query_record(s, attributes, ns.id))]


def _schedule_query(text: str, types: dict[str, int]) -> ListQuery:
    """Schedules filter on custom attributes, TemporalSchedulePaused and ScheduleId only."""
    try:
        query = parse_query(text, types)
    except QueryError as e:
        raise errors.InvalidArgument(str(e)) from None
    for name, alias in query.columns:
        if name in PREDEFINED_SEARCH_ATTRIBUTES and name != PAUSED and alias != "ScheduleId":
            raise errors.InvalidArgument(
                f'invalid query filter for schedules: cannot filter on "{name}"'
            )
    return query


def _query_record(s: Scheduler, attributes: SearchAttributeRegistry, ns_id: str) -> dict[str, Any]:
    record: dict[str, Any] = {"WorkflowId": s.schedule_id, PAUSED: s.schedule.state.paused}
    if s.search_attributes is not None:
        record.update(attributes.query_values(ns_id, s.search_attributes))
    return record


def _list_info(s: Scheduler) -> schedule_pb.ScheduleListInfo:
    schedule, info, _ = s.describe()
    spec = describe_form(schedule.spec)
    listed = schedule_pb.ScheduleListInfo(
        spec=spec,
        workflow_type=schedule.action.start_workflow.workflow_type,
        notes=schedule.state.notes,
        paused=schedule.state.paused,
        recent_actions=info.recent_actions[-LIST_ACTIONS:],
        future_action_times=info.future_action_times[:LIST_ACTIONS],
    )
    return listed
