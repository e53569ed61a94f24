"""Workflow task commands: one handler per command type, each validating then appending events.

A handler that rejects its command raises `CommandError` with the cause Temporal records; the whole
workflow task then fails and none of its commands take effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import command_type_pb2, event_type_pb2, task_queue_pb2, workflow_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as cause_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb

from aion.common.durations import validate_and_cap
from aion.common.payloads import json_payload
from aion.common.timeutil import SECOND, dur, ns_of
from aion.history import continuation, cron, retry
from aion.history.mutable_state import ActivityInfo, MutableState

CT = command_type_pb2.CommandType
Cause = cause_pb.WorkflowTaskFailedCause
ET = event_type_pb2.EventType

MAX_ID_LENGTH = 1000
ACTIVITY_NOT_STARTED_CANCEL_DETAILS = "ACTIVITY_ID_NOT_STARTED"


class CommandError(Exception):
    """A command Temporal would reject: fails the workflow task with `cause`; with `terminate`
    (a payload past its size limit) the workflow is terminated too, with the message as the
    reason."""

    def __init__(self, cause: Cause.ValueType, detail: str = "", terminate: bool = False) -> None:
        name = Cause.Name(cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
        camel = "".join(part.capitalize() for part in name.split("_"))
        self.message = f"{camel}: {detail}" if detail else camel
        super().__init__(self.message)
        self.cause = cause
        self.terminate = terminate


@dataclass
class CommandContext:
    ms: MutableState
    completed_event_id: int
    identity: str
    had_buffered_events: bool
    resolve_namespace: Callable[[str], str | None] = lambda name: None
    # (namespace id, namespace name, attributes): raises ValueError with Temporal's message.
    validate_search_attributes: Callable[[str, str, common_pb.SearchAttributes], None] = (
        lambda namespace_id, namespace, attributes: None
    )
    # (attributes): their sizes within the limits, else ValueError with Temporal's message.
    validate_search_attribute_sizes: Callable[[common_pb.SearchAttributes], None] = (
        lambda attributes: None
    )
    # Activities canceled before they started: their Canceled events follow all command events.
    canceled_before_start: list[tuple[ActivityInfo, common_pb.Payloads]] = field(
        default_factory=list
    )
    # Activities the worker asked to run eagerly (same task queue as the workflow).
    eager_activities: list[ActivityInfo] = field(default_factory=list)
    # Applies the protocol message (update acceptance or response) a command names.
    apply_message: Callable[[str], None] = lambda message_id: None


def handle_commands(ctx: CommandContext, commands: list[command_pb.Command]) -> None:
    for command in commands:
        if not ctx.ms.running:
            raise CommandError(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                "commands after the workflow closed",
            )
        handler = HANDLERS.get(command.command_type)
        if handler is None:
            name = CT.Name(command.command_type)
            raise CommandError(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_UNSPECIFIED,
                f"{name} is not supported by this server yet",
            )
        written = ctx.ms.history.written
        handler(ctx, command)
        event = ctx.ms.history.first_written_since(written)
        if event is not None:
            # The command's summary, details and group markers travel on the event it produced.
            if command.HasField("user_metadata"):
                event.user_metadata.CopyFrom(command.user_metadata)
            event.event_group_markers.extend(command.event_group_markers)
    if ctx.ms.running:
        for ai, details in ctx.canceled_before_start:
            ctx.ms.activities.cancel(ai, details, ctx.identity)


def check_blob_size(ms: MutableState, size: int, cause: Cause.ValueType, message: str) -> None:
    """A payload past limit.blobSize.error: the workflow task fails and the workflow is
    terminated, as Temporal does."""
    if ms.env.limits.blob_too_large(size, message):
        raise CommandError(cause, message, terminate=True)


def _check_memo_size(
    ms: MutableState, memo: common_pb.Memo, cause: Cause.ValueType, message: str
) -> None:
    if ms.env.limits.memo_too_large(memo.ByteSize(), message):
        raise CommandError(cause, message, terminate=True)


def _check_search_attribute_sizes(
    ctx: CommandContext, attributes: common_pb.SearchAttributes, cause: Cause.ValueType
) -> None:
    try:
        ctx.validate_search_attribute_sizes(attributes)
    except ValueError as e:
        raise CommandError(cause, str(e), terminate=True) from None


def _check_pending(count: int, limit: int, cause: Cause.ValueType, what: str) -> None:
    """One more pending `what` past its per-workflow limit (0: none) fails the workflow task."""
    if limit > 0 and count >= limit:
        raise CommandError(
            cause, f"the number of {what}, {count}, has reached the per-workflow limit of {limit}"
        )


def _map_size(fields: Mapping[str, common_pb.Payload]) -> int:
    """The size Temporal measures a map of payloads by: its keys and its payloads' data."""
    return sum(len(key) + len(value.data) for key, value in fields.items())


def _schedule_activity(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command_pb.ScheduleActivityTaskCommandAttributes()
    attrs.CopyFrom(command.schedule_activity_task_command_attributes)
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    if not attrs.activity_id:
        raise CommandError(bad, "activityId is not set")
    if not attrs.activity_type.name:
        raise CommandError(bad, "activityType is not set")
    if len(attrs.activity_id) > MAX_ID_LENGTH:
        raise CommandError(bad, "activityId exceeds length limit.")
    if not attrs.task_queue.name:
        attrs.task_queue.name = ctx.ms.s.task_queue
    attrs.task_queue.kind = task_queue_pb2.TASK_QUEUE_KIND_NORMAL
    try:
        retry.normalize_policy(attrs.retry_policy)
    except ValueError as e:
        raise CommandError(bad, str(e)) from None
    normalize_activity_timeouts(attrs, ctx.ms.s.run_timeout_ns, bad)
    ms = ctx.ms
    check_blob_size(
        ms,
        attrs.input.ByteSize(),
        bad,
        "ScheduleActivityTaskCommandAttributes.Input exceeds size limit.",
    )
    _check_pending(
        len(ms.s.activities),
        ms.env.limits.pending_activities,
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED,
        "pending activities",
    )
    if attrs.activity_id in ms.s.activity_ids:
        raise CommandError(bad, f"Activity with ActivityID {attrs.activity_id} already exists")
    ai = ctx.ms.activities.schedule(ctx.completed_event_id, attrs)
    if attrs.request_eager_execution and attrs.task_queue.name == ctx.ms.s.task_queue:
        ctx.eager_activities.append(ai)


ACTIVITY_TIMEOUTS = (
    ("schedule_to_close_timeout", "ScheduleToCloseTimeout"),
    ("schedule_to_start_timeout", "ScheduleToStartTimeout"),
    ("start_to_close_timeout", "StartToCloseTimeout"),
    ("heartbeat_timeout", "HeartbeatTimeout"),
)


def normalize_activity_timeouts(
    attrs: command_pb.ScheduleActivityTaskCommandAttributes,
    run_timeout_ns: int,
    bad: Cause.ValueType,
) -> None:
    """Fill in missing timeouts from the ones given and cap them at the run timeout."""
    for name, title in ACTIVITY_TIMEOUTS:
        if problem := validate_and_cap(getattr(attrs, name)):
            raise CommandError(bad, f"invalid {title}: {problem}")
    s2c = ns_of(attrs.schedule_to_close_timeout)
    s2s = ns_of(attrs.schedule_to_start_timeout)
    st2c = ns_of(attrs.start_to_close_timeout)
    hb = ns_of(attrs.heartbeat_timeout)
    if s2c > 0:
        s2s = min(s2s, s2c) if s2s > 0 else s2c
        st2c = min(st2c, s2c) if st2c > 0 else s2c
    elif st2c > 0:
        s2c = run_timeout_ns
        if s2s <= 0:
            s2s = run_timeout_ns
    else:
        raise CommandError(
            bad,
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
            f"ActivityId={attrs.activity_id} ActivityType={attrs.activity_type.name}",
        )
    if run_timeout_ns > 0:
        s2c, s2s = min(s2c, run_timeout_ns), min(s2s, run_timeout_ns)
        st2c, hb = min(st2c, run_timeout_ns), min(hb, run_timeout_ns)
    hb = min(hb, st2c)
    attrs.schedule_to_close_timeout.CopyFrom(dur(s2c))
    attrs.schedule_to_start_timeout.CopyFrom(dur(s2s))
    attrs.start_to_close_timeout.CopyFrom(dur(st2c))
    attrs.heartbeat_timeout.CopyFrom(dur(hb))


def _buffered_event(ms: MutableState, match: Callable[[history_pb.HistoryEvent], bool]) -> bool:
    return any(match(e) for e in ms.s.buffered_events)


def _request_cancel_activity(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.request_cancel_activity_task_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES
    if attrs.scheduled_event_id <= 0:
        raise CommandError(bad, "ScheduledEventId is not set on RequestCancelActivityTaskCommand.")
    ms = ctx.ms
    ai = ms.s.activities.get(attrs.scheduled_event_id)
    if ai is None:
        # Finished while this task ran: the finish event is buffered; record the request only.
        finished = _buffered_event(
            ms,
            lambda e: _activity_close_scheduled_id(e) == attrs.scheduled_event_id,
        )
        if not finished:
            raise CommandError(
                bad, f"invalid activity scheduled event id: {attrs.scheduled_event_id}"
            )
        ms.activities.request_cancel(ctx.completed_event_id, attrs.scheduled_event_id)
        return
    ms.activities.request_cancel(ctx.completed_event_id, ai.scheduled_event_id)
    if not ai.started_time_ns:
        details = common_pb.Payloads(payloads=[json_payload(ACTIVITY_NOT_STARTED_CANCEL_DETAILS)])
        ctx.canceled_before_start.append((ai, details))


def _activity_close_scheduled_id(event: history_pb.HistoryEvent) -> int:
    for attr in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(attr):
            return int(getattr(event, attr).scheduled_event_id)
    return 0


def _start_timer(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.start_timer_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES
    if not attrs.timer_id:
        raise CommandError(bad, "TimerId is not set on StartTimerCommand.")
    if len(attrs.timer_id) > MAX_ID_LENGTH:
        raise CommandError(bad, "TimerId on StartTimerCommand exceeds length limit.")
    if problem := validate_and_cap(attrs.start_to_fire_timeout):
        raise CommandError(
            bad,
            f"An invalid StartToFireTimeout is set on StartTimerCommand: {problem}."
            f" TimerId={attrs.timer_id}",
        )
    if attrs.timer_id in ctx.ms.s.timers:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID,
            f"invalid history builder state for action: add-timer-started-event, TimerId={attrs.timer_id}",
        )
    ctx.ms.timers.start(ctx.completed_event_id, attrs)


def _cancel_timer(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.cancel_timer_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES
    if not attrs.timer_id:
        raise CommandError(bad, "TimerId is not set on CancelTimerCommand.")
    timer = ctx.ms.timers.cancelable(attrs.timer_id)
    if timer is None:
        raise CommandError(
            bad, f"invalid history builder state for action: cancel timer {attrs.timer_id}"
        )
    ctx.ms.timers.cancel(ctx.completed_event_id, timer, ctx.identity)


def _check_no_unhandled_events(ctx: CommandContext) -> None:
    if ctx.had_buffered_events:
        raise CommandError(Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND)


def _complete_workflow(ctx: CommandContext, command: command_pb.Command) -> None:
    _check_no_unhandled_events(ctx)
    attrs = command.complete_workflow_execution_command_attributes
    # The reference names this cause for a result past the blob size limit.
    check_blob_size(
        ctx.ms,
        attrs.result.ByteSize(),
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
        "CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit.",
    )
    result = attrs.result if attrs.HasField("result") else None
    continuation.complete(ctx.ms, ctx.completed_event_id, result)


def _fail_workflow(ctx: CommandContext, command: command_pb.Command) -> None:
    _check_no_unhandled_events(ctx)
    attrs = command.fail_workflow_execution_command_attributes
    if not attrs.HasField("failure"):
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
            "Failure is not set on FailWorkflowExecutionCommand.",
        )
    check_blob_size(
        ctx.ms,
        attrs.failure.ByteSize(),
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
        "FailWorkflowExecutionCommandAttributes.Failure exceeds size limit.",
    )
    continuation.fail(ctx.ms, ctx.completed_event_id, attrs.failure)


def _cancel_workflow(ctx: CommandContext, command: command_pb.Command) -> None:
    _check_no_unhandled_events(ctx)
    attrs = command.cancel_workflow_execution_command_attributes
    ctx.ms.cancel(ctx.completed_event_id, attrs.details if attrs.HasField("details") else None)


def _record_marker(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.record_marker_command_attributes
    if not attrs.marker_name:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
            "MarkerName is not set on RecordMarkerCommand.",
        )
    check_blob_size(
        ctx.ms,
        sum(len(key) + value.ByteSize() for key, value in attrs.details.items()),
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
        "RecordMarkerCommandAttributes.Details exceeds size limit.",
    )
    ctx.ms.record_marker(ctx.completed_event_id, attrs)


def _upsert_search_attributes(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.upsert_workflow_search_attributes_command_attributes
    if not attrs.search_attributes.indexed_fields:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES,
            "IndexedFields is empty on command.",
        )
    try:
        ctx.validate_search_attributes(
            ctx.ms.s.namespace_id, ctx.ms.s.namespace, attrs.search_attributes
        )
    except ValueError as e:
        raise CommandError(Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES, str(e)) from None
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
    fields = attrs.search_attributes.indexed_fields
    check_blob_size(
        ctx.ms,
        _map_size(fields),
        bad,
        "UpsertWorkflowSearchAttributesCommandAttributes exceeds size limit.",
    )
    merged = common_pb.SearchAttributes(
        indexed_fields=_upserted(ctx.ms.s.search_attributes, fields)
    )
    _check_search_attribute_sizes(ctx, merged, bad)
    ctx.ms.upsert_search_attributes(ctx.completed_event_id, attrs.search_attributes)


def _upserted(
    current: common_pb.SearchAttributes | common_pb.Memo | None,
    fields: Mapping[str, common_pb.Payload],
) -> dict[str, common_pb.Payload]:
    """The payloads of a memo or search attributes with `fields` upserted into them."""
    merged: dict[str, common_pb.Payload] = {}
    if isinstance(current, common_pb.SearchAttributes):
        merged.update(current.indexed_fields)
    elif current is not None:
        merged.update(current.fields)
    merged.update(fields)
    return merged


def _modify_properties(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.modify_workflow_properties_command_attributes
    if not attrs.upserted_memo.fields:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES,
            "UpsertedMemo is not set on command.",
        )
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES
    fields = attrs.upserted_memo.fields
    check_blob_size(
        ctx.ms,
        _map_size(fields),
        bad,
        "ModifyWorkflowPropertiesCommandAttributes exceeds size limit.",
    )
    merged = common_pb.Memo(fields=_upserted(ctx.ms.s.memo, fields))
    _check_memo_size(
        ctx.ms, merged, bad, "ModifyWorkflowPropertiesCommandAttributes. Memo exceeds size limit."
    )
    ctx.ms.modify_properties(ctx.completed_event_id, attrs.upserted_memo)


def _check_run_options(attrs: Any, bad: Cause.ValueType, durations: tuple[str, ...]) -> None:
    """Retry policy, cron schedule and timeouts of a command that starts a run."""
    if attrs.HasField("retry_policy"):
        try:
            retry.normalize_policy(attrs.retry_policy)
        except ValueError as e:
            raise CommandError(bad, str(e)) from None
    if attrs.cron_schedule:
        try:
            cron.parse(attrs.cron_schedule)
        except cron.CronError as e:
            raise CommandError(bad, str(e)) from None
    for name in durations:
        if problem := validate_and_cap(getattr(attrs, name)):
            title = name.title().replace("_", "")
            raise CommandError(bad, f"Invalid {title}: {problem}.")


def _continue_as_new(ctx: CommandContext, command: command_pb.Command) -> None:
    _check_no_unhandled_events(ctx)
    attrs = command.continue_as_new_workflow_execution_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES
    _check_run_options(
        attrs, bad, ("workflow_run_timeout", "workflow_task_timeout", "backoff_start_interval")
    )
    if attrs.HasField("search_attributes"):
        try:
            ctx.validate_search_attributes(
                ctx.ms.s.namespace_id, ctx.ms.s.namespace, attrs.search_attributes
            )
        except ValueError as e:
            raise CommandError(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES,
                f"invalid SearchAttributes on ContinueAsNewWorkflowExecutionCommand: {e}. "
                f"WorkflowType={attrs.workflow_type.name} TaskQueue={attrs.task_queue.name}",
            ) from None
    check_blob_size(
        ctx.ms,
        attrs.input.ByteSize(),
        bad,
        "ContinueAsNewWorkflowExecutionCommandAttributes. Input exceeds size limit.",
    )
    _check_memo_size(
        ctx.ms,
        attrs.memo,
        bad,
        "ContinueAsNewWorkflowExecutionCommandAttributes. Memo exceeds size limit.",
    )
    _check_search_attribute_sizes(ctx, attrs.search_attributes, bad)
    continuation.continue_as_new(ctx.ms, ctx.completed_event_id, attrs)


def _target_namespace(ctx: CommandContext, name: str, bad: Cause.ValueType) -> tuple[str, str]:
    """(id, name) of a command's target namespace; empty means the workflow's own."""
    if not name or name == ctx.ms.s.namespace:
        return ctx.ms.s.namespace_id, ctx.ms.s.namespace
    namespace_id = ctx.resolve_namespace(name)
    if namespace_id is None:
        raise CommandError(bad, f"Namespace {name} is not found.")
    return namespace_id, name


def _start_child(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.start_child_workflow_execution_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES
    if not attrs.workflow_id:
        raise CommandError(bad, "Required field WorkflowId is not set on command.")
    if not attrs.workflow_type.name:
        raise CommandError(bad, "Required field WorkflowType is not set on command.")
    if len(attrs.workflow_id) > MAX_ID_LENGTH:
        raise CommandError(bad, "WorkflowId on command exceeds length limit.")
    namespace_id, namespace = _target_namespace(ctx, attrs.namespace, bad)
    _check_run_options(
        attrs, bad, ("workflow_execution_timeout", "workflow_run_timeout", "workflow_task_timeout")
    )
    if attrs.HasField("search_attributes"):
        try:
            ctx.validate_search_attributes(namespace_id, namespace, attrs.search_attributes)
        except ValueError as e:
            raise CommandError(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES,
                f"invalid SearchAttributes on StartChildWorkflowCommand: {e}. "
                f"WorkflowId={attrs.workflow_id} WorkflowType={attrs.workflow_type.name} "
                f"Namespace={namespace}",
            ) from None
    ms = ctx.ms
    check_blob_size(
        ms,
        attrs.input.ByteSize(),
        bad,
        "StartChildWorkflowExecutionCommandAttributes. Input exceeds size limit.",
    )
    _check_memo_size(
        ms, attrs.memo, bad, "StartChildWorkflowExecutionCommandAttributes.Memo exceeds size limit."
    )
    _check_search_attribute_sizes(ctx, attrs.search_attributes, bad)
    _check_pending(
        len(ms.s.children),
        ms.env.limits.pending_child_executions,
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED,
        "pending child workflow executions",
    )
    event = history_pb.StartChildWorkflowExecutionInitiatedEventAttributes(
        namespace=namespace,
        namespace_id=namespace_id,
        workflow_id=attrs.workflow_id,
        workflow_type=attrs.workflow_type,
        task_queue=taskqueue_pb.TaskQueue(
            name=attrs.task_queue.name or ctx.ms.s.task_queue,
            kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL,
        ),
        workflow_execution_timeout=attrs.workflow_execution_timeout,
        workflow_run_timeout=attrs.workflow_run_timeout,
        workflow_task_timeout=attrs.workflow_task_timeout
        if ns_of(attrs.workflow_task_timeout)
        else dur(10 * SECOND),
        parent_close_policy=attrs.parent_close_policy or workflow_pb2.PARENT_CLOSE_POLICY_TERMINATE,
        control=attrs.control,
        workflow_id_reuse_policy=attrs.workflow_id_reuse_policy,
        cron_schedule=attrs.cron_schedule,
        inherit_build_id=attrs.inherit_build_id,
    )
    for name in ("input", "header", "memo", "search_attributes", "retry_policy", "priority"):
        if attrs.HasField(name):
            getattr(event, name).CopyFrom(getattr(attrs, name))
    ctx.ms.children.initiate(ctx.completed_event_id, event, namespace_id)


def _signal_external(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.signal_external_workflow_execution_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES
    if not attrs.execution.workflow_id:
        raise CommandError(bad, "WorkflowId is not set on command.")
    if not attrs.signal_name:
        raise CommandError(bad, "SignalName is not set on command.")
    namespace_id, namespace = _target_namespace(ctx, attrs.namespace, bad)
    ms = ctx.ms
    _check_pending(
        len(ms.s.signal_requests),
        ms.env.limits.pending_signals,
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_SIGNALS_LIMIT_EXCEEDED,
        "pending signals to external workflows",
    )
    check_blob_size(
        ms,
        attrs.input.ByteSize(),
        bad,
        "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit.",
    )
    event = history_pb.SignalExternalWorkflowExecutionInitiatedEventAttributes(
        namespace=namespace,
        namespace_id=namespace_id,
        workflow_execution=attrs.execution,
        signal_name=attrs.signal_name,
        control=attrs.control,
        child_workflow_only=attrs.child_workflow_only,
    )
    for name in ("input", "header"):
        if attrs.HasField(name):
            getattr(event, name).CopyFrom(getattr(attrs, name))
    ctx.ms.external.initiate_signal(ctx.completed_event_id, event)


def _request_cancel_external(ctx: CommandContext, command: command_pb.Command) -> None:
    attrs = command.request_cancel_external_workflow_execution_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES
    if not attrs.workflow_id:
        raise CommandError(bad, "WorkflowId is not set on command.")
    namespace_id, namespace = _target_namespace(ctx, attrs.namespace, bad)
    _check_pending(
        len(ctx.ms.s.cancel_requests),
        ctx.ms.env.limits.pending_cancel_requests,
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED,
        "pending requests to cancel external workflows",
    )
    event = history_pb.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
        namespace=namespace,
        namespace_id=namespace_id,
        workflow_execution=common_pb.WorkflowExecution(
            workflow_id=attrs.workflow_id, run_id=attrs.run_id
        ),
        control=attrs.control,
        child_workflow_only=attrs.child_workflow_only,
        reason=attrs.reason,
    )
    ctx.ms.external.initiate_cancel(ctx.completed_event_id, event)


def _protocol_message(ctx: CommandContext, command: command_pb.Command) -> None:
    ctx.apply_message(command.protocol_message_command_attributes.message_id)


HANDLERS: dict[int, Callable[[CommandContext, command_pb.Command], None]] = {
    CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: _schedule_activity,
    CT.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK: _request_cancel_activity,
    CT.COMMAND_TYPE_START_TIMER: _start_timer,
    CT.COMMAND_TYPE_CANCEL_TIMER: _cancel_timer,
    CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION: _complete_workflow,
    CT.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION: _fail_workflow,
    CT.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION: _cancel_workflow,
    CT.COMMAND_TYPE_RECORD_MARKER: _record_marker,
    CT.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: _upsert_search_attributes,
    CT.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES: _modify_properties,
    CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: _continue_as_new,
    CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: _start_child,
    CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: _signal_external,
    CT.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: _request_cancel_external,
    CT.COMMAND_TYPE_PROTOCOL_MESSAGE: _protocol_message,
}
