"""Activity tasks: start, complete, fail, cancel and heartbeat (by task token or by id)."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import dur, ts
from aion.common.tokens import TaskToken
from aion.history.api.activities import ensure_workflow_task, fail_attempt
from aion.history.api.workflow_tasks import StaleTaskError
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.failures import server_failure, truncate
from aion.history.mutable_state import ActivityInfo, MutableState
from aion.namespaces import Namespace
from aion.persistence import QueueTask

# Temporal's messages for a payload past limit.blobSize.error in an activity's outcome.
RESULT_TOO_LARGE = "Complete result exceeds size limit."
FAILURE_TOO_LARGE = "Failure exceeds size limit."
CANCEL_DETAILS_TOO_LARGE = "Cancel details exceed size limit."
HEARTBEAT_TOO_LARGE = "Heartbeat details exceed size limit."


async def record_activity_task_started(
    engine: HistoryEngine, ns: Namespace, task: QueueTask, identity: str, request_id: str
) -> rr.PollActivityTaskQueueResponse:
    key = (task.namespace_id, task.workflow_id, task.run_id)

    def record(ms: MutableState) -> rr.PollActivityTaskQueueResponse:
        ms.tasks.queue_task_done(task.task_id)
        ai = ms.s.activities.get(task.scheduled_event_id)
        if not ms.running or ai is None or ai.stamp != task.stamp or ai.started_time_ns:
            raise StaleTaskError()
        ms.activities.start(ai, request_id, identity)
        return activity_task_response(ms, ns, ai)

    try:
        return await engine.update_execution(key, record)
    except (StaleTaskError, errors.NotFound):
        await engine.drop_task(task)
        raise StaleTaskError() from None


def activity_task_response(
    ms: MutableState, ns: Namespace, ai: ActivityInfo
) -> rr.PollActivityTaskQueueResponse:
    token = TaskToken(
        namespace_id=ms.s.namespace_id,
        workflow_id=ms.s.workflow_id,
        run_id=ms.s.run_id,
        scheduled_event_id=ai.scheduled_event_id,
        attempt=ai.attempt,
        stamp=ai.stamp,
        activity_id=ai.activity_id,
    )
    response = rr.PollActivityTaskQueueResponse(
        task_token=token.encode(),
        workflow_namespace=ns.name,
        workflow_type=common_pb.WorkflowType(name=ms.s.workflow_type),
        workflow_execution=ms.execution(),
        activity_type=common_pb.ActivityType(name=ai.activity_type),
        activity_id=ai.activity_id,
        scheduled_time=ts(ai.scheduled_time_ns),
        current_attempt_scheduled_time=ts(ai.attempt_scheduled_time_ns),
        started_time=ts(ai.started_time_ns),
        attempt=ai.attempt,
        schedule_to_close_timeout=dur(ai.schedule_to_close_ns),
        start_to_close_timeout=dur(ai.start_to_close_ns),
        heartbeat_timeout=dur(ai.heartbeat_ns),
    )
    if ai.input is not None:
        response.input.CopyFrom(ai.input)
    if ai.header is not None:
        response.header.CopyFrom(ai.header)
    if ai.retry_policy is not None:
        response.retry_policy.CopyFrom(ai.retry_policy)
    if ai.heartbeat_details is not None:
        response.heartbeat_details.CopyFrom(ai.heartbeat_details)
    return response


async def _activity_by_token(
    engine: HistoryEngine, task_token: bytes
) -> tuple[ExecutionKey, Callable[[MutableState], ActivityInfo]]:
    token = TaskToken.decode(task_token)
    key = (token.namespace_id, token.workflow_id, token.run_id)

    def find(ms: MutableState) -> ActivityInfo:
        if not ms.running:
            raise errors.workflow_completed()
        ai = ms.s.activities.get(token.scheduled_event_id)
        if ai is None or not ai.started_time_ns or (token.stamp and ai.stamp != token.stamp):
            raise errors.NotFound("Activity task not found.")
        return ai

    return key, find


async def _activity_by_id(
    engine: HistoryEngine, ns: Namespace, workflow_id: str, run_id: str, activity_id: str
) -> tuple[ExecutionKey, Callable[[MutableState], ActivityInfo]]:
    if not workflow_id:
        raise errors.InvalidArgument("WorkflowId is not set on request.")
    if not activity_id:
        raise errors.InvalidArgument("ActivityId is not set on request.")
    key = await engine.resolve(ns.id, workflow_id, run_id)

    def find(ms: MutableState) -> ActivityInfo:
        if not ms.running:
            raise errors.workflow_completed()
        scheduled_id = ms.s.activity_ids.get(activity_id)
        ai = ms.s.activities.get(scheduled_id) if scheduled_id else None
        if ai is None:
            raise errors.NotFound("Activity task not found.")
        return ai

    return key, find


async def _finish(
    engine: HistoryEngine,
    key: ExecutionKey,
    find: Callable[[MutableState], ActivityInfo],
    act: Callable[[MutableState, ActivityInfo], bool],
    by_id: bool,
) -> None:
    def apply(ms: MutableState) -> None:
        ai = find(ms)
        if by_id and not ai.started_time_ns:
            # Completion by id of an activity no worker holds: it counts as this attempt.
            ms.activities.start(ai, "", "")
        if act(ms, ai):
            ensure_workflow_task(ms)

    await engine.update_execution(key, apply)


def _completed(
    result: common_pb.Payloads | None, identity: str
) -> Callable[[MutableState, ActivityInfo], bool]:
    def act(ms: MutableState, ai: ActivityInfo) -> bool:
        ms.activities.complete(ai, result, identity)
        return True

    return act


def _failed(
    failure: failure_pb.Failure, details: common_pb.Payloads | None, identity: str
) -> Callable[[MutableState, ActivityInfo], bool]:
    def act(ms: MutableState, ai: ActivityInfo) -> bool:
        if details is not None and details.payloads:
            ms.activities.keep_details(ai, details)
        return fail_attempt(ms, ai, failure, identity)

    return act


def _canceled(
    details: common_pb.Payloads | None, identity: str
) -> Callable[[MutableState, ActivityInfo], bool]:
    def act(ms: MutableState, ai: ActivityInfo) -> bool:
        if not ai.cancel_requested:
            raise errors.InvalidArgument("Activity cancellation was not requested.")
        ms.activities.cancel(ai, details, identity)
        return True

    return act


def _opt(msg: object, field: str) -> object:
    return getattr(msg, field) if msg.HasField(field) else None  # type: ignore[attr-defined]


def _too_large(engine: HistoryEngine, blob: Message, what: str) -> bool:
    return engine.limits.blob_too_large(blob.ByteSize(), what)


def _completion(
    engine: HistoryEngine,
    req: rr.RespondActivityTaskCompletedRequest | rr.RespondActivityTaskCompletedByIdRequest,
) -> Callable[[MutableState, ActivityInfo], bool]:
    """Complete the activity; a result past limit.blobSize.error fails it instead (for good),
    as Temporal does."""
    if _too_large(engine, req.result, "activity result"):
        return _failed(server_failure(RESULT_TOO_LARGE, True), None, req.identity)
    return _completed(_opt(req, "result"), req.identity)  # type: ignore[arg-type]


def _failure(
    engine: HistoryEngine,
    req: rr.RespondActivityTaskFailedRequest | rr.RespondActivityTaskFailedByIdRequest,
) -> Callable[[MutableState, ActivityInfo], bool]:
    """Fail the attempt; a failure past limit.blobSize.error is replaced by the server's, with
    the worker's cut down as its cause, and heartbeat details past it are dropped."""
    failure = req.failure
    if _too_large(engine, failure, "activity failure"):
        cause = truncate(failure, engine.limits.blob_size_warn)
        failure = server_failure(FAILURE_TOO_LARGE, True)
        failure.cause.CopyFrom(cause)
    details = req.last_heartbeat_details if req.HasField("last_heartbeat_details") else None
    if details is not None and _too_large(engine, details, "heartbeat details"):
        details = None
    return _failed(failure, details, req.identity)


def _cancellation(
    engine: HistoryEngine,
    req: rr.RespondActivityTaskCanceledRequest | rr.RespondActivityTaskCanceledByIdRequest,
) -> Callable[[MutableState, ActivityInfo], bool]:
    """Cancel the activity; details past limit.blobSize.error fail it instead."""
    if _too_large(engine, req.details, "cancellation details"):
        return _failed(server_failure(CANCEL_DETAILS_TOO_LARGE, True), None, req.identity)
    return _canceled(_opt(req, "details"), req.identity)  # type: ignore[arg-type]


async def respond_completed(
    engine: HistoryEngine, req: rr.RespondActivityTaskCompletedRequest
) -> None:
    key, find = await _activity_by_token(engine, req.task_token)
    await _finish(engine, key, find, _completion(engine, req), False)


async def respond_completed_by_id(
    engine: HistoryEngine, ns: Namespace, req: rr.RespondActivityTaskCompletedByIdRequest
) -> None:
    key, find = await _activity_by_id(engine, ns, req.workflow_id, req.run_id, req.activity_id)
    await _finish(engine, key, find, _completion(engine, req), True)


async def respond_failed(engine: HistoryEngine, req: rr.RespondActivityTaskFailedRequest) -> None:
    key, find = await _activity_by_token(engine, req.task_token)
    await _finish(engine, key, find, _failure(engine, req), False)


async def respond_failed_by_id(
    engine: HistoryEngine, ns: Namespace, req: rr.RespondActivityTaskFailedByIdRequest
) -> None:
    key, find = await _activity_by_id(engine, ns, req.workflow_id, req.run_id, req.activity_id)
    await _finish(engine, key, find, _failure(engine, req), True)


async def respond_canceled(
    engine: HistoryEngine, req: rr.RespondActivityTaskCanceledRequest
) -> None:
    key, find = await _activity_by_token(engine, req.task_token)
    await _finish(engine, key, find, _cancellation(engine, req), False)


async def respond_canceled_by_id(
    engine: HistoryEngine, ns: Namespace, req: rr.RespondActivityTaskCanceledByIdRequest
) -> None:
    key, find = await _activity_by_id(engine, ns, req.workflow_id, req.run_id, req.activity_id)
    await _finish(engine, key, find, _cancellation(engine, req), True)


async def heartbeat(
    engine: HistoryEngine,
    key: ExecutionKey,
    find: Callable[[MutableState], ActivityInfo],
    details: common_pb.Payloads | None,
) -> rr.RecordActivityTaskHeartbeatResponse:
    def beat(ms: MutableState) -> rr.RecordActivityTaskHeartbeatResponse:
        ai = find(ms)
        ms.activities.heartbeat(ai, details)
        return rr.RecordActivityTaskHeartbeatResponse(
            cancel_requested=ai.cancel_requested,
            activity_paused=ai.paused,
            activity_reset=ai.reset_requested,
        )

    return await engine.update_execution(key, beat)


async def _heartbeat_too_large(
    engine: HistoryEngine,
    key: ExecutionKey,
    find: Callable[[MutableState], ActivityInfo],
    req: rr.RecordActivityTaskHeartbeatRequest | rr.RecordActivityTaskHeartbeatByIdRequest,
) -> bool:
    """Heartbeat details past limit.blobSize.error fail the activity for good, as Temporal
    does; the worker is told it is canceled."""
    if not _too_large(engine, req.details, "heartbeat details"):
        return False
    act = _failed(server_failure(HEARTBEAT_TOO_LARGE, True), None, req.identity)
    await _finish(engine, key, find, act, False)
    return True


async def record_heartbeat(
    engine: HistoryEngine, req: rr.RecordActivityTaskHeartbeatRequest
) -> rr.RecordActivityTaskHeartbeatResponse:
    key, find = await _activity_by_token(engine, req.task_token)
    if await _heartbeat_too_large(engine, key, find, req):
        return rr.RecordActivityTaskHeartbeatResponse(cancel_requested=True)
    return await heartbeat(engine, key, find, _opt(req, "details"))  # type: ignore[arg-type]


async def record_heartbeat_by_id(
    engine: HistoryEngine, ns: Namespace, req: rr.RecordActivityTaskHeartbeatByIdRequest
) -> rr.RecordActivityTaskHeartbeatByIdResponse:
    key, find = await _activity_by_id(engine, ns, req.workflow_id, req.run_id, req.activity_id)
    if await _heartbeat_too_large(engine, key, find, req):
        return rr.RecordActivityTaskHeartbeatByIdResponse(cancel_requested=True)
    response = await heartbeat(engine, key, find, _opt(req, "details"))  # type: ignore[arg-type]
    return rr.RecordActivityTaskHeartbeatByIdResponse(
        cancel_requested=response.cancel_requested,
        activity_paused=response.activity_paused,
        activity_reset=response.activity_reset,
    )
