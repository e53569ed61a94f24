"""UpdateActivityOptions: change a pending activity's task queue, timeouts and retry policy
(fields named by the update mask), or restore the options it was scheduled with."""

from __future__ import annotations

import re

from temporalio.api.activity.v1 import message_pb2 as activity_pb
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import failed_cause_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import dur, ns_of
from aion.history import retry
from aion.history.api.activities import select_activities
from aion.history.commands import CommandError, normalize_activity_timeouts
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import ActivityInfo, MutableState
from aion.namespaces import Namespace

BAD_ATTRIBUTES = failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
TIMEOUTS = (
    "schedule_to_close_timeout",
    "schedule_to_start_timeout",
    "start_to_close_timeout",
    "heartbeat_timeout",
)
RETRY_FIELDS = ("initial_interval", "backoff_coefficient", "maximum_interval", "maximum_attempts")


def _camel(path: str) -> str:
    """A field mask path as Temporal compares it (`retry_policy.initial_interval` and
    `retryPolicy.initialInterval` are the same path)."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


def current_options(ai: ActivityInfo) -> activity_pb.ActivityOptions:
    """The activity's options as they stand (what DescribeWorkflowExecution shows)."""
    options = activity_pb.ActivityOptions(
        schedule_to_close_timeout=dur(ai.schedule_to_close_ns),
        schedule_to_start_timeout=dur(ai.schedule_to_start_ns),
        start_to_close_timeout=dur(ai.start_to_close_ns),
        heartbeat_timeout=dur(ai.heartbeat_ns),
    )
    options.task_queue.name = ai.task_queue
    options.task_queue.normal_name = ai.task_queue
    options.retry_policy.SetInParent()
    if ai.retry_policy is not None:
        for name in RETRY_FIELDS:
            if name in ("backoff_coefficient", "maximum_attempts"):
                setattr(options.retry_policy, name, getattr(ai.retry_policy, name))
            else:
                getattr(options.retry_policy, name).CopyFrom(getattr(ai.retry_policy, name))
    options.priority.SetInParent()
    return options


def _merge(
    into: activity_pb.ActivityOptions, given: activity_pb.ActivityOptions, paths: set[str]
) -> None:
    """Temporal's merge of the masked fields of `given` into `into`."""
    if "taskQueue.name" in paths:
        if not given.HasField("task_queue"):
            raise errors.InvalidArgument("TaskQueue is not provided")
        into.task_queue.name = given.task_queue.name
        into.task_queue.normal_name = given.task_queue.name
    for name in TIMEOUTS:
        if _camel(name) in paths:
            getattr(into, name).CopyFrom(getattr(given, name))
    if "retryPolicy" in paths:
        if not given.HasField("retry_policy"):
            raise errors.InvalidArgument("RetryPolicy is not provided")
        into.retry_policy.CopyFrom(given.retry_policy)
    for name in RETRY_FIELDS:
        if f"retryPolicy.{_camel(name)}" not in paths:
            continue
        if not given.HasField("retry_policy"):
            raise errors.InvalidArgument("RetryPolicy is not provided")
        if name in ("backoff_coefficient", "maximum_attempts"):
            setattr(into.retry_policy, name, getattr(given.retry_policy, name))
        else:
            getattr(into.retry_policy, name).CopyFrom(getattr(given.retry_policy, name))
    if "priority" in paths:
        into.priority.CopyFrom(given.priority)


def _apply(ms: MutableState, ai: ActivityInfo, options: activity_pb.ActivityOptions) -> None:
    """Check and complete the options as a ScheduleActivityTask command's, then apply them."""
    attrs = command_pb.ScheduleActivityTaskCommandAttributes(
        activity_id=ai.activity_id,
        activity_type=common_pb.ActivityType(name=ai.activity_type),
        task_queue=options.task_queue,
        schedule_to_close_timeout=options.schedule_to_close_timeout,
        schedule_to_start_timeout=options.schedule_to_start_timeout,
        start_to_close_timeout=options.start_to_close_timeout,
        heartbeat_timeout=options.heartbeat_timeout,
    )
    if not attrs.task_queue.name:
        raise errors.InvalidArgument("TaskQueue is not set on request.")
    try:
        normalize_activity_timeouts(attrs, ms.s.run_timeout_ns, BAD_ATTRIBUTES)
        policy = common_pb.RetryPolicy()
        policy.CopyFrom(options.retry_policy)
        retry.normalize_policy(policy)
    except CommandError as e:
        raise errors.InvalidArgument(e.message.partition(": ")[2] or e.message) from None
    except ValueError as e:
        raise errors.InvalidArgument(str(e)) from None
    for name in TIMEOUTS:
        getattr(options, name).CopyFrom(getattr(attrs, name))
    if ai.retry_policy is not None:
        policy.non_retryable_error_types.extend(ai.retry_policy.non_retryable_error_types)
    timeouts = (
        ns_of(attrs.schedule_to_close_timeout),
        ns_of(attrs.schedule_to_start_timeout),
        ns_of(attrs.start_to_close_timeout),
        ns_of(attrs.heartbeat_timeout),
    )
    ms.activities.update_options(ai, attrs.task_queue.name, timeouts, policy)


async def update_activity_options(
    engine: HistoryEngine, ns: Namespace, req: rr.UpdateActivityOptionsRequest
) -> rr.UpdateActivityOptionsResponse:
    paths = {_camel(path) for path in req.update_mask.paths}
    if req.restore_original and paths:
        raise errors.InvalidArgument("Both UpdateMask and RestoreOriginal are provided")
    execution = req.execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)
    originals: dict[int, activity_pb.ActivityOptions] = {}
    if req.restore_original:  # the options each activity was scheduled with, from history
        for ai in select_activities(await engine.get_execution(key), req):
            (event,) = await engine.read_history(key, ai.scheduled_event_id, 1)
            scheduled = event.activity_task_scheduled_event_attributes
            original = activity_pb.ActivityOptions(
                task_queue=scheduled.task_queue, retry_policy=scheduled.retry_policy
            )
            for name in TIMEOUTS:
                getattr(original, name).CopyFrom(getattr(scheduled, name))
            originals[ai.scheduled_event_id] = original
    updated: list[activity_pb.ActivityOptions] = []

    def update(ms: MutableState) -> None:
        selected = select_activities(ms, req)
        if not req.restore_original:
            if not req.HasField("activity_options"):
                raise errors.InvalidArgument("ActivityOptions are not provided")
            if not req.HasField("update_mask"):
                raise errors.InvalidArgument("UpdateMask is not provided")
        updated.clear()
        for ai in selected:
            if req.restore_original:
                options = activity_pb.ActivityOptions()
                options.CopyFrom(originals.get(ai.scheduled_event_id) or current_options(ai))
            else:
                options = current_options(ai)
                _merge(options, req.activity_options, paths)
            _apply(ms, ai, options)
            updated.append(options)

    await engine.update_execution(key, update)
    return rr.UpdateActivityOptionsResponse(activity_options=updated[-1] if updated else None)
