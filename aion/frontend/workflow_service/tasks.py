"""WorkflowService RPCs of workers: polling and answering workflow and activity tasks,
sticky queues, and pausing or resetting activities."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import deployment_pb2, task_queue_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors, metrics
from aion.common.versions import version_key
from aion.frontend.rpc import deadline_seconds, rpc
from aion.frontend.workflow_service.base import (
    Ctx,
    ResponseT,
    ServiceBase,
    check_activity_execution,
    require,
    require_activity_target,
    require_task_queue,
)
from aion.history.api import (
    activity_tasks,
    cross_shard,
    pause_activity,
    query_workflow,
    reset_activity,
    respond_workflow_task_completed,
    respond_workflow_task_failed,
    sticky,
    unpause_activity,
    update_activity_options,
)
from aion.history.engine import HistoryEngine
from aion.matching import QueryTask
from aion.namespaces import Namespace
from aion.persistence import QueueTask, StoreUnavailableError

MAX_POLL_S = 60.0
VERSIONED_MODE = deployment_pb2.WORKER_VERSIONING_MODE_VERSIONED
WORKFLOW_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_ACTIVITY


class TaskRpcs(ServiceBase):
    """What workers call: task polls and answers, and operator actions on activities."""

    async def _poller_version(
        self, ns: Namespace, request: Any, task_type: int, sticky: bool
    ) -> str:
        """The worker deployment version a poll serves ("" for an unversioned worker), which
        its first poll of a queue registers."""
        options = request.deployment_options
        if options.worker_versioning_mode != VERSIONED_MODE:
            return ""
        if not options.deployment_name or not options.build_id:
            raise errors.InvalidArgument("Deployment name and build id must be set together.")
        if "." in options.deployment_name or ":" in options.deployment_name:
            raise errors.InvalidArgument("deployment name cannot contain '.' or ':'")
        if sticky:
            return ""  # a sticky queue is one worker's own
        await self.deployments.register(
            ns.id, options.deployment_name, options.build_id, request.task_queue.name, task_type
        )
        return version_key(options.deployment_name, options.build_id)

    async def _poll(
        self,
        ns: Namespace,
        request: Any,
        context: Ctx,
        kind: str,
        version: str,
        start: Callable[[HistoryEngine, QueueTask, str, str], Awaitable[ResponseT]],
        answer_query: Callable[[QueryTask], Awaitable[ResponseT]] | None = None,
    ) -> ResponseT | None:
        """Long-poll the request's task queue until a task is started (its response), or None
        when the poll's time is up. Only workflow task queues carry queries (`answer_query`)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + min(MAX_POLL_S, deadline_seconds(context) - 1.0)
        while (remaining := until - loop.time()) > 0:
            task = await self.matching.poll(
                ns.id,
                request.task_queue.name,
                kind,
                remaining,
                request.identity,
                version,
                request.task_queue.normal_name,
            )
            if task is None:
                break
            if isinstance(task, QueryTask):
                assert answer_query is not None
                return await answer_query(task)
            try:
                response = await start(self.engine, task, request.identity, str(uuid.uuid4()))
            except errors.NotFound:
                continue  # stale: started elsewhere, or its execution moved on
            except (errors.Unavailable, StoreUnavailableError):
                self.matching.retry_later(task)
                continue
            except errors.FailedPrecondition:
                self.matching.requeue(task)
                if self.namespaces.is_standby(ns.id):
                    return None  # failed over while this poll waited: the task stays queued
                raise
            except BaseException:
                # Not recorded (or recorded and then stale on redelivery): never lose the task.
                self.matching.requeue(task)
                raise
            if task.create_time_ns and metrics.enabled():
                queue = request.task_queue
                sticky = queue.kind == task_queue_pb2.TASK_QUEUE_KIND_STICKY
                metrics.schedule_to_start(
                    ns.name, queue.normal_name if sticky else queue.name, kind, sticky
                ).observe((time.time_ns() - task.create_time_ns) / 1e9)
            return response
        return None

    @rpc
    async def PollWorkflowTaskQueue(
        self, request: rr.PollWorkflowTaskQueueRequest, context: Ctx
    ) -> rr.PollWorkflowTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        sticky_poll = request.task_queue.kind == task_queue_pb2.TASK_QUEUE_KIND_STICKY
        version = await self._poller_version(ns, request, WORKFLOW_QUEUE, sticky_poll)
        response = await self._poll(
            ns,
            request,
            context,
            "workflow",
            version,
            cross_shard.record_workflow_task_started,
            lambda task: query_workflow.query_task_response(self.engine, task, sticky_poll),
        )
        return rr.PollWorkflowTaskQueueResponse() if response is None else response

    @rpc
    async def RespondWorkflowTaskCompleted(
        self, request: rr.RespondWorkflowTaskCompletedRequest, context: Ctx
    ) -> rr.RespondWorkflowTaskCompletedResponse:
        require(request.task_token.decode(errors="replace"), "TaskToken")
        return await respond_workflow_task_completed.respond_workflow_task_completed(
            self.engine, request
        )

    @rpc
    async def RespondWorkflowTaskFailed(
        self, request: rr.RespondWorkflowTaskFailedRequest, context: Ctx
    ) -> rr.RespondWorkflowTaskFailedResponse:
        require(request.task_token.decode(errors="replace"), "TaskToken")
        return await respond_workflow_task_failed.respond_workflow_task_failed(self.engine, request)

    @rpc
    async def RespondQueryTaskCompleted(
        self, request: rr.RespondQueryTaskCompletedRequest, context: Ctx
    ) -> rr.RespondQueryTaskCompletedResponse:
        query_workflow.respond_query_task_completed(self.engine, request)
        return rr.RespondQueryTaskCompletedResponse()

    @rpc
    async def ResetStickyTaskQueue(
        self, request: rr.ResetStickyTaskQueueRequest, context: Ctx
    ) -> rr.ResetStickyTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.execution.workflow_id, "WorkflowId")
        key = await self.engine.resolve(
            ns.id, request.execution.workflow_id, request.execution.run_id
        )
        await sticky.reset_sticky_task_queue(self.engine, key)
        return rr.ResetStickyTaskQueueResponse()

    @rpc
    async def ShutdownWorker(
        self, request: rr.ShutdownWorkerRequest, context: Ctx
    ) -> rr.ShutdownWorkerResponse:
        ns = self.namespaces.get(request.namespace)
        if request.HasField("worker_heartbeat"):  # its last one, status SHUTDOWN
            self.matching.workers.record(ns.id, [request.worker_heartbeat])
        if request.sticky_task_queue:
            await sticky.shutdown_sticky_queue(self.engine, ns, request.sticky_task_queue)
        return rr.ShutdownWorkerResponse()

    # ---- activity tasks -----------------------------------------------------------------
    @rpc
    async def PollActivityTaskQueue(
        self, request: rr.PollActivityTaskQueueRequest, context: Ctx
    ) -> rr.PollActivityTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        version = await self._poller_version(ns, request, ACTIVITY_QUEUE, False)
        response = await self._poll(
            ns, request, context, "activity", version, cross_shard.record_activity_task_started
        )
        return rr.PollActivityTaskQueueResponse() if response is None else response

    @rpc
    async def RecordActivityTaskHeartbeat(
        self, request: rr.RecordActivityTaskHeartbeatRequest, context: Ctx
    ) -> rr.RecordActivityTaskHeartbeatResponse:
        return await activity_tasks.record_heartbeat(self.engine, request)

    @rpc
    async def RecordActivityTaskHeartbeatById(
        self, request: rr.RecordActivityTaskHeartbeatByIdRequest, context: Ctx
    ) -> rr.RecordActivityTaskHeartbeatByIdResponse:
        return await self._in_namespace(activity_tasks.record_heartbeat_by_id, request)

    @rpc
    async def RespondActivityTaskCompleted(
        self, request: rr.RespondActivityTaskCompletedRequest, context: Ctx
    ) -> rr.RespondActivityTaskCompletedResponse:
        await activity_tasks.respond_completed(self.engine, request)
        return rr.RespondActivityTaskCompletedResponse()

    @rpc
    async def RespondActivityTaskCompletedById(
        self, request: rr.RespondActivityTaskCompletedByIdRequest, context: Ctx
    ) -> rr.RespondActivityTaskCompletedByIdResponse:
        await self._in_namespace(activity_tasks.respond_completed_by_id, request)
        return rr.RespondActivityTaskCompletedByIdResponse()

    @rpc
    async def RespondActivityTaskFailed(
        self, request: rr.RespondActivityTaskFailedRequest, context: Ctx
    ) -> rr.RespondActivityTaskFailedResponse:
        await activity_tasks.respond_failed(self.engine, request)
        return rr.RespondActivityTaskFailedResponse()

    @rpc
    async def RespondActivityTaskFailedById(
        self, request: rr.RespondActivityTaskFailedByIdRequest, context: Ctx
    ) -> rr.RespondActivityTaskFailedByIdResponse:
        await self._in_namespace(activity_tasks.respond_failed_by_id, request)
        return rr.RespondActivityTaskFailedByIdResponse()

    @rpc
    async def RespondActivityTaskCanceled(
        self, request: rr.RespondActivityTaskCanceledRequest, context: Ctx
    ) -> rr.RespondActivityTaskCanceledResponse:
        await activity_tasks.respond_canceled(self.engine, request)
        return rr.RespondActivityTaskCanceledResponse()

    @rpc
    async def RespondActivityTaskCanceledById(
        self, request: rr.RespondActivityTaskCanceledByIdRequest, context: Ctx
    ) -> rr.RespondActivityTaskCanceledByIdResponse:
        await self._in_namespace(activity_tasks.respond_canceled_by_id, request)
        return rr.RespondActivityTaskCanceledByIdResponse()

    @rpc
    async def PauseActivity(
        self, request: rr.PauseActivityRequest, context: Ctx
    ) -> rr.PauseActivityResponse:
        require_activity_target(request)
        await self._in_namespace(pause_activity.pause_activity, request)
        return rr.PauseActivityResponse()

    @rpc
    async def UnpauseActivity(
        self, request: rr.UnpauseActivityRequest, context: Ctx
    ) -> rr.UnpauseActivityResponse:
        require_activity_target(request)
        await self._in_namespace(unpause_activity.unpause_activity, request)
        return rr.UnpauseActivityResponse()

    @rpc
    async def ResetActivity(
        self, request: rr.ResetActivityRequest, context: Ctx
    ) -> rr.ResetActivityResponse:
        require_activity_target(request)
        await self._in_namespace(reset_activity.reset_activity, request)
        return rr.ResetActivityResponse()

    # ---- the *ActivityExecution RPCs (`temporal activity ...` of CLI 1.9): on a workflow's
    # activity they are PauseActivity, UnpauseActivity, ResetActivity, UpdateActivityOptions.
    @rpc
    async def PauseActivityExecution(
        self, request: rr.PauseActivityExecutionRequest, context: Ctx
    ) -> rr.PauseActivityExecutionResponse:
        check_activity_execution(request)
        await self._in_namespace(
            pause_activity.pause_activity,
            rr.PauseActivityRequest(
                **_workflow_activity(request),
                reason=request.reason,
                request_id=request.request_id or str(uuid.uuid4()),
            ),
        )
        return rr.PauseActivityExecutionResponse()

    @rpc
    async def UnpauseActivityExecution(
        self, request: rr.UnpauseActivityExecutionRequest, context: Ctx
    ) -> rr.UnpauseActivityExecutionResponse:
        check_activity_execution(request)
        await self._in_namespace(
            unpause_activity.unpause_activity,
            rr.UnpauseActivityRequest(
                **_workflow_activity(request),
                jitter=request.jitter if request.HasField("jitter") else None,
            ),
        )
        return rr.UnpauseActivityExecutionResponse()

    @rpc
    async def ResetActivityExecution(
        self, request: rr.ResetActivityExecutionRequest, context: Ctx
    ) -> rr.ResetActivityExecutionResponse:
        check_activity_execution(request)
        await self._in_namespace(
            reset_activity.reset_activity,
            rr.ResetActivityRequest(
                **_workflow_activity(request),
                reset_heartbeat=request.reset_heartbeat,
                keep_paused=request.keep_paused,
                restore_original_options=request.restore_original_options,
                jitter=request.jitter if request.HasField("jitter") else None,
            ),
        )
        return rr.ResetActivityExecutionResponse()

    @rpc
    async def UpdateActivityOptions(
        self, request: rr.UpdateActivityOptionsRequest, context: Ctx
    ) -> rr.UpdateActivityOptionsResponse:
        require_activity_target(request)
        return await self._in_namespace(update_activity_options.update_activity_options, request)

    @rpc
    async def UpdateActivityExecutionOptions(
        self, request: rr.UpdateActivityExecutionOptionsRequest, context: Ctx
    ) -> rr.UpdateActivityExecutionOptionsResponse:
        check_activity_execution(request)
        response = await self._in_namespace(
            update_activity_options.update_activity_options,
            rr.UpdateActivityOptionsRequest(
                **_workflow_activity(request),
                activity_options=(
                    request.activity_options if request.HasField("activity_options") else None
                ),
                update_mask=request.update_mask if request.HasField("update_mask") else None,
                restore_original=request.restore_original,
            ),
        )
        return rr.UpdateActivityExecutionOptionsResponse(activity_options=response.activity_options)


def _workflow_activity(request: Any) -> dict[str, Any]:
    """The fields an *ActivityExecution request on a workflow's activity shares with the older
    per-workflow activity requests (namespace, execution, activity id, identity)."""
    return {
        "namespace": request.namespace,
        "execution": common_pb.WorkflowExecution(
            workflow_id=request.workflow_id, run_id=request.run_id
        ),
        "id": request.activity_id,
        "identity": request.identity,
    }
