"""WorkflowService: validates each request, resolves its namespace and calls the operation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeAlias

import grpc
from temporalio.api.enums.v1 import deployment_pb2, task_queue_pb2
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.api.workflowservice.v1 import service_pb2_grpc

from aion import errors
from aion.common.timeutil import ts
from aion.common.versions import version_key
from aion.frontend.rpc import deadline_seconds, rpc
from aion.history.api import (
    activity_tasks,
    cross_shard,
    describe_workflow,
    get_workflow_history,
    pause_activity,
    query_workflow,
    request_cancel_workflow,
    reset_activity,
    reset_workflow,
    respond_workflow_task_completed,
    respond_workflow_task_failed,
    signal_workflow,
    start_workflow,
    sticky,
    terminate_workflow,
    unpause_activity,
    update_with_start,
    update_workflow,
    update_workflow_options,
)
from aion.history.engine import HistoryEngine
from aion.matching import QueryTask
from aion.namespaces import CLUSTER_NAME, Namespace, NamespaceRegistry, namespace_capabilities
from aion.schedules import api as schedules
from aion.versioning import api as versioning
from aion.visibility import listing
from aion.visibility.search_attributes import SearchAttributeError, system_and_preallocated

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
SERVER_VERSION = "1.32.0"
MAX_POLL_S = 60.0
MAX_ID_LENGTH = 1000
VERSIONED_MODE = deployment_pb2.WORKER_VERSIONING_MODE_VERSIONED
WORKFLOW_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_ACTIVITY


def _require(value: str, what: str) -> None:
    if not value:
        raise errors.InvalidArgument(f"{what} is not set on request.")


def _require_task_queue(name: str) -> None:
    if not name:
        raise errors.InvalidArgument("missing task queue name")
    if len(name) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("task queue name exceeds length limit")


def _require_activity_target(request: Any) -> None:
    _require(request.execution.workflow_id, "WorkflowId")
    if request.WhichOneof("activity") is None:
        raise errors.InvalidArgument(
            "Either Activity.Id or Activity.Type should be set on request."
        )


def _validate_update(request: rr.UpdateWorkflowExecutionRequest) -> None:
    """Temporal's checks on an update request; fills in the update id and wait stage."""
    _require(request.workflow_execution.workflow_id, "WorkflowId")
    update = request.request
    if not update.HasField("meta"):
        raise errors.InvalidArgument("Update meta is not set on request.")
    if len(update.meta.update_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("UpdateId length exceeds limit.")
    if not update.meta.update_id:
        update.meta.update_id = str(uuid.uuid4())
    if not update.HasField("input"):
        raise errors.InvalidArgument("Update input is not set on request.")
    if not update.input.name:
        raise errors.InvalidArgument("Update name is not set on request.")
    stage = request.wait_policy.lifecycle_stage
    if stage == update_workflow.UNSPECIFIED:
        request.wait_policy.lifecycle_stage = update_workflow.COMPLETED
    elif stage == update_workflow.ADMITTED:
        raise errors.PermissionDenied(
            "UpdateWorkflowExecution issued asynchronously and waiting on update admitted is"
            " not supported."
        )


class WorkflowService(service_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, engine: HistoryEngine, namespaces: NamespaceRegistry) -> None:
        self.engine = engine
        self.namespaces = namespaces

    # ---- cluster and namespaces ---------------------------------------------------------
    @rpc
    async def GetSystemInfo(
        self, request: rr.GetSystemInfoRequest, context: Ctx
    ) -> rr.GetSystemInfoResponse:
        return rr.GetSystemInfoResponse(
            server_version=SERVER_VERSION,
            capabilities=rr.GetSystemInfoResponse.Capabilities(
                signal_and_query_header=True,
                internal_error_differentiation=True,
                activity_failure_include_heartbeat=True,
                supports_schedules=True,
                encoded_failure_attributes=True,
                # Workers then stamp completed workflow tasks with their build id.
                build_id_based_versioning=True,
                upsert_memo=True,
                eager_workflow_start=True,
                sdk_metadata=True,
                count_group_by_execution_status=True,
            ),
        )

    @rpc
    async def GetClusterInfo(
        self, request: rr.GetClusterInfoRequest, context: Ctx
    ) -> rr.GetClusterInfoResponse:
        return rr.GetClusterInfoResponse(
            supported_clients={
                "temporal-go": "<2.0.0",
                "temporal-java": "<2.0.0",
                "temporal-typescript": "<2.0.0",
                "temporal-php": "<2.0.0",
                "temporal-cli": "<2.0.0",
                "temporal-ui": "<3.0.0",
                "temporal-server": "<2.0.0",
            },
            server_version=SERVER_VERSION,
            cluster_id=self.engine.host_id,
            cluster_name=CLUSTER_NAME,
            history_shard_count=self.engine.num_shards,
            persistence_store=self.engine.store.name,
            visibility_store=self.engine.store.name,
            initial_failover_version=1,
            failover_version_increment=10,
        )

    @rpc
    async def RegisterNamespace(
        self, request: rr.RegisterNamespaceRequest, context: Ctx
    ) -> rr.RegisterNamespaceResponse:
        await self.namespaces.register(request)
        return rr.RegisterNamespaceResponse()

    @rpc
    async def DescribeNamespace(
        self, request: rr.DescribeNamespaceRequest, context: Ctx
    ) -> rr.DescribeNamespaceResponse:
        if request.id:
            try:
                ns = self.namespaces.by_id(request.id)
            except KeyError:
                raise errors.namespace_not_found(request.id) from None
        else:
            ns = self.namespaces.get(request.namespace)
        return self._describe(ns.description)

    def _describe(self, description: rr.DescribeNamespaceResponse) -> rr.DescribeNamespaceResponse:
        response = rr.DescribeNamespaceResponse()
        response.CopyFrom(description)
        aliases = self.namespaces.search_attributes.aliases(description.namespace_info.id)
        response.config.custom_search_attribute_aliases.update(aliases)
        response.namespace_info.capabilities.CopyFrom(namespace_capabilities())
        response.namespace_info.supports_schedules = False
        return response

    @rpc
    async def ListNamespaces(
        self, request: rr.ListNamespacesRequest, context: Ctx
    ) -> rr.ListNamespacesResponse:
        return rr.ListNamespacesResponse(
            namespaces=[self._describe(ns.description) for ns in self.namespaces.all()]
        )

    @rpc
    async def UpdateNamespace(
        self, request: rr.UpdateNamespaceRequest, context: Ctx
    ) -> rr.UpdateNamespaceResponse:
        ns = await self.namespaces.update(request)
        d = self._describe(ns.description)
        return rr.UpdateNamespaceResponse(
            namespace_info=d.namespace_info,
            config=d.config,
            replication_config=d.replication_config,
            failover_version=d.failover_version,
            is_global_namespace=d.is_global_namespace,
        )

    @rpc
    async def GetSearchAttributes(
        self, request: rr.GetSearchAttributesRequest, context: Ctx
    ) -> rr.GetSearchAttributesResponse:
        return rr.GetSearchAttributesResponse(keys=system_and_preallocated())  # type: ignore[arg-type]

    def _check_search_attributes(self, ns: Namespace, request: Any) -> None:
        """A request's search attributes, checked as Temporal's frontend does."""
        if not request.HasField("search_attributes"):
            return
        try:
            self.namespaces.search_attributes.validate(ns.id, ns.name, request.search_attributes)
        except SearchAttributeError as e:
            raise errors.InvalidArgument(str(e)) from None

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
        await versioning.registry(self.engine).register(
            ns.id, options.deployment_name, options.build_id, request.task_queue.name, task_type
        )
        return version_key(options.deployment_name, options.build_id)

    # ---- workflows ----------------------------------------------------------------------
    @rpc
    async def StartWorkflowExecution(
        self, request: rr.StartWorkflowExecutionRequest, context: Ctx
    ) -> rr.StartWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        self._validate_start(ns, request)
        return await start_workflow.start_workflow(self.engine, ns, request)

    def _validate_start(self, ns: Namespace, request: rr.StartWorkflowExecutionRequest) -> None:
        _require(request.workflow_id, "WorkflowId")
        if len(request.workflow_id) > MAX_ID_LENGTH:
            raise errors.InvalidArgument("WorkflowId length exceeds limit.")
        _require(request.workflow_type.name, "WorkflowType")
        _require_task_queue(request.task_queue.name)
        for name in ("workflow_execution_timeout", "workflow_run_timeout", "workflow_task_timeout"):
            value = getattr(request, name)
            if value.seconds < 0 or value.nanos < 0:
                raise errors.InvalidArgument(f"Invalid {name.replace('_', ' ')}.")
        if len(request.request_id) > MAX_ID_LENGTH:
            raise errors.InvalidArgument("RequestId length exceeds limit.")
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        self._check_search_attributes(ns, request)

    @rpc
    async def SignalWithStartWorkflowExecution(
        self, request: rr.SignalWithStartWorkflowExecutionRequest, context: Ctx
    ) -> rr.SignalWithStartWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.workflow_id, "WorkflowId")
        _require(request.workflow_type.name, "WorkflowType")
        _require_task_queue(request.task_queue.name)
        _require(request.signal_name, "SignalName")
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        self._check_search_attributes(ns, request)
        return await start_workflow.signal_with_start_workflow(self.engine, ns, request)

    @rpc
    async def SignalWorkflowExecution(
        self, request: rr.SignalWorkflowExecutionRequest, context: Ctx
    ) -> rr.SignalWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.workflow_execution.workflow_id, "WorkflowId")
        _require(request.signal_name, "SignalName")
        await signal_workflow.signal_workflow(self.engine, ns, request)
        return rr.SignalWorkflowExecutionResponse()

    @rpc
    async def RequestCancelWorkflowExecution(
        self, request: rr.RequestCancelWorkflowExecutionRequest, context: Ctx
    ) -> rr.RequestCancelWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.workflow_execution.workflow_id, "WorkflowId")
        await request_cancel_workflow.request_cancel_workflow(self.engine, ns, request)
        return rr.RequestCancelWorkflowExecutionResponse()

    @rpc
    async def TerminateWorkflowExecution(
        self, request: rr.TerminateWorkflowExecutionRequest, context: Ctx
    ) -> rr.TerminateWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.workflow_execution.workflow_id, "WorkflowId")
        await terminate_workflow.terminate_workflow(self.engine, ns, request)
        return rr.TerminateWorkflowExecutionResponse()

    @rpc
    async def ResetWorkflowExecution(
        self, request: rr.ResetWorkflowExecutionRequest, context: Ctx
    ) -> rr.ResetWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.workflow_execution.workflow_id, "WorkflowId")
        return await reset_workflow.reset_workflow(self.engine, ns, request)

    @rpc
    async def DescribeWorkflowExecution(
        self, request: rr.DescribeWorkflowExecutionRequest, context: Ctx
    ) -> rr.DescribeWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.execution.workflow_id, "WorkflowId")
        response = await describe_workflow.describe_workflow(self.engine, ns, request)
        info = response.workflow_execution_info
        if info.HasField("search_attributes"):
            shown = self.namespaces.search_attributes.present(ns.id, info.search_attributes)
            if shown.indexed_fields:
                info.search_attributes.CopyFrom(shown)
            else:
                info.ClearField("search_attributes")
        return response

    @rpc
    async def GetWorkflowExecutionHistory(
        self, request: rr.GetWorkflowExecutionHistoryRequest, context: Ctx
    ) -> rr.GetWorkflowExecutionHistoryResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.execution.workflow_id, "WorkflowId")
        return await get_workflow_history.get_workflow_history(
            self.engine, ns, request, deadline_seconds(context)
        )

    @rpc
    async def QueryWorkflow(
        self, request: rr.QueryWorkflowRequest, context: Ctx
    ) -> rr.QueryWorkflowResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.execution.workflow_id, "WorkflowId")
        _require(request.query.query_type, "QueryType")
        return await query_workflow.query_workflow(
            self.engine, ns, request, deadline_seconds(context, 30)
        )

    @rpc
    async def ListWorkflowExecutions(
        self, request: rr.ListWorkflowExecutionsRequest, context: Ctx
    ) -> rr.ListWorkflowExecutionsResponse:
        ns = self.namespaces.get(request.namespace)
        return await listing.list_workflows(
            self.engine.store, ns, request, self.namespaces.search_attributes
        )

    @rpc
    async def CountWorkflowExecutions(
        self, request: rr.CountWorkflowExecutionsRequest, context: Ctx
    ) -> rr.CountWorkflowExecutionsResponse:
        ns = self.namespaces.get(request.namespace)
        return await listing.count_workflows(
            self.engine.store, ns, request, self.namespaces.search_attributes
        )

    # ---- updates ------------------------------------------------------------------------
    @rpc
    async def UpdateWorkflowExecution(
        self, request: rr.UpdateWorkflowExecutionRequest, context: Ctx
    ) -> rr.UpdateWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        _validate_update(request)
        return await update_workflow.update_workflow(
            self.engine, ns, request, deadline_seconds(context)
        )

    @rpc
    async def PollWorkflowExecutionUpdate(
        self, request: rr.PollWorkflowExecutionUpdateRequest, context: Ctx
    ) -> rr.PollWorkflowExecutionUpdateResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.update_ref.workflow_execution.workflow_id, "WorkflowId")
        _require(request.update_ref.update_id, "UpdateId")
        return await update_workflow.poll_update(
            self.engine, ns, request, deadline_seconds(context)
        )

    @rpc
    async def ExecuteMultiOperation(
        self, request: rr.ExecuteMultiOperationRequest, context: Ctx
    ) -> rr.ExecuteMultiOperationResponse:
        ns = self.namespaces.get(request.namespace)
        ops = request.operations
        if (
            len(ops) != 2
            or not ops[0].HasField("start_workflow")
            or not ops[1].HasField("update_workflow")
        ):
            raise errors.InvalidArgument("Operations have to be exactly [Start, Update].")
        start, update = ops[0].start_workflow, ops[1].update_workflow
        try:
            self._validate_start(ns, start)
            if start.namespace != request.namespace:
                raise errors.InvalidArgument(
                    "Operation namespace did not match request's namespace."
                )
            if start.cron_schedule:
                raise errors.InvalidArgument("CronSchedule is not allowed.")
            if start.request_eager_execution:
                raise errors.InvalidArgument("RequestEagerExecution is not supported.")
            if start.HasField("workflow_start_delay"):
                raise errors.InvalidArgument("WorkflowStartDelay is not supported.")
        except errors.ServiceError as e:
            raise errors.multi_operation_failed(e, None) from None
        try:
            if update.namespace != request.namespace:
                raise errors.InvalidArgument(
                    "Operation namespace did not match request's namespace."
                )
            if update.workflow_execution.workflow_id != start.workflow_id:
                raise errors.InvalidArgument(
                    "WorkflowId is not consistent with previous operation(s)."
                )
            if update.workflow_execution.run_id:
                raise errors.InvalidArgument("RunId is not allowed.")
            if update.first_execution_run_id:
                raise errors.InvalidArgument("FirstExecutionRunId is not allowed.")
            _validate_update(update)
        except errors.ServiceError as e:
            raise errors.multi_operation_failed(None, e) from None
        return await update_with_start.update_with_start(
            self.engine, ns, start, update, deadline_seconds(context)
        )

    # ---- schedules ----------------------------------------------------------------------
    @rpc
    async def CreateSchedule(
        self, request: rr.CreateScheduleRequest, context: Ctx
    ) -> rr.CreateScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        self._check_search_attributes(ns, request)
        self._check_search_attributes(ns, request.schedule.action.start_workflow)
        return await schedules.create_schedule(self.engine, ns, request)

    @rpc
    async def DescribeSchedule(
        self, request: rr.DescribeScheduleRequest, context: Ctx
    ) -> rr.DescribeScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.describe_schedule(self.engine, ns, request)

    @rpc
    async def UpdateSchedule(
        self, request: rr.UpdateScheduleRequest, context: Ctx
    ) -> rr.UpdateScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        self._check_search_attributes(ns, request)
        self._check_search_attributes(ns, request.schedule.action.start_workflow)
        return await schedules.update_schedule(self.engine, ns, request)

    @rpc
    async def PatchSchedule(
        self, request: rr.PatchScheduleRequest, context: Ctx
    ) -> rr.PatchScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.patch_schedule(self.engine, ns, request)

    @rpc
    async def DeleteSchedule(
        self, request: rr.DeleteScheduleRequest, context: Ctx
    ) -> rr.DeleteScheduleResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.delete_schedule(self.engine, ns, request)

    @rpc
    async def ListSchedules(
        self, request: rr.ListSchedulesRequest, context: Ctx
    ) -> rr.ListSchedulesResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.list_schedules(self.engine, ns, request)

    @rpc
    async def CountSchedules(
        self, request: rr.CountSchedulesRequest, context: Ctx
    ) -> rr.CountSchedulesResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.count_schedules(self.engine, ns, request)

    @rpc
    async def ListScheduleMatchingTimes(
        self, request: rr.ListScheduleMatchingTimesRequest, context: Ctx
    ) -> rr.ListScheduleMatchingTimesResponse:
        ns = self.namespaces.get(request.namespace)
        return await schedules.list_schedule_matching_times(self.engine, ns, request)

    # ---- workflow tasks -----------------------------------------------------------------
    @rpc
    async def PollWorkflowTaskQueue(
        self, request: rr.PollWorkflowTaskQueueRequest, context: Ctx
    ) -> rr.PollWorkflowTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        _require_task_queue(request.task_queue.name)
        sticky_poll = request.task_queue.kind == task_queue_pb2.TASK_QUEUE_KIND_STICKY
        version = await self._poller_version(ns, request, WORKFLOW_QUEUE, sticky_poll)
        loop = asyncio.get_running_loop()
        until = loop.time() + min(MAX_POLL_S, deadline_seconds(context) - 1.0)
        while (remaining := until - loop.time()) > 0:
            task = await self.engine.matching.poll(
                ns.id, request.task_queue.name, "workflow", remaining, request.identity, version
            )
            if task is None:
                break
            if isinstance(task, QueryTask):
                return await query_workflow.query_task_response(self.engine, task, sticky_poll)
            try:
                return await cross_shard.record_workflow_task_started(
                    self.engine, task, request.identity, str(uuid.uuid4())
                )
            except errors.NotFound:
                continue  # stale: started elsewhere, or its execution moved on
            except errors.Unavailable:
                self.engine.matching.retry_later(task)
                continue
            except BaseException:
                # Not recorded (or recorded and then stale on redelivery): never lose the task.
                self.engine.matching.requeue(task)
                raise
        return rr.PollWorkflowTaskQueueResponse()

    @rpc
    async def RespondWorkflowTaskCompleted(
        self, request: rr.RespondWorkflowTaskCompletedRequest, context: Ctx
    ) -> rr.RespondWorkflowTaskCompletedResponse:
        _require(request.task_token.decode(errors="replace"), "TaskToken")
        return await respond_workflow_task_completed.respond_workflow_task_completed(
            self.engine, request
        )

    @rpc
    async def RespondWorkflowTaskFailed(
        self, request: rr.RespondWorkflowTaskFailedRequest, context: Ctx
    ) -> rr.RespondWorkflowTaskFailedResponse:
        _require(request.task_token.decode(errors="replace"), "TaskToken")
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
        _require(request.execution.workflow_id, "WorkflowId")
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
        if request.sticky_task_queue:
            await sticky.shutdown_sticky_queue(self.engine, ns, request.sticky_task_queue)
        return rr.ShutdownWorkerResponse()

    @rpc
    async def DescribeTaskQueue(
        self, request: rr.DescribeTaskQueueRequest, context: Ctx
    ) -> rr.DescribeTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        _require_task_queue(request.task_queue.name)
        kind = (
            "activity"
            if request.task_queue_type == task_queue_pb2.TASK_QUEUE_TYPE_ACTIVITY
            else "workflow"
        )
        matching = self.engine.matching
        name = request.task_queue.name
        response = rr.DescribeTaskQueueResponse(
            pollers=[
                taskqueue_pb.PollerInfo(
                    identity=who, last_access_time=ts(at), rate_per_second=100000
                )
                for who, at in sorted(matching.recent_pollers(ns.id, name, kind).items())
            ]
        )
        backlog = matching.backlog_count(ns.id, name, kind)
        if request.report_stats:
            response.stats.approximate_backlog_count = backlog
        if request.include_task_queue_status:
            response.task_queue_status.backlog_count_hint = backlog
            response.task_queue_status.rate_per_second = 100000
        return response

    # ---- activity tasks -----------------------------------------------------------------
    @rpc
    async def PollActivityTaskQueue(
        self, request: rr.PollActivityTaskQueueRequest, context: Ctx
    ) -> rr.PollActivityTaskQueueResponse:
        ns = self.namespaces.get(request.namespace)
        _require_task_queue(request.task_queue.name)
        version = await self._poller_version(ns, request, ACTIVITY_QUEUE, False)
        loop = asyncio.get_running_loop()
        until = loop.time() + min(MAX_POLL_S, deadline_seconds(context) - 1.0)
        while (remaining := until - loop.time()) > 0:
            task = await self.engine.matching.poll(
                ns.id, request.task_queue.name, "activity", remaining, request.identity, version
            )
            if task is None:
                break
            assert not isinstance(task, QueryTask)
            try:
                return await cross_shard.record_activity_task_started(
                    self.engine, task, request.identity, str(uuid.uuid4())
                )
            except errors.NotFound:
                continue
            except errors.Unavailable:
                self.engine.matching.retry_later(task)
                continue
            except BaseException:
                self.engine.matching.requeue(task)
                raise
        return rr.PollActivityTaskQueueResponse()

    @rpc
    async def RecordActivityTaskHeartbeat(
        self, request: rr.RecordActivityTaskHeartbeatRequest, context: Ctx
    ) -> rr.RecordActivityTaskHeartbeatResponse:
        return await activity_tasks.record_heartbeat(self.engine, request)

    @rpc
    async def RecordActivityTaskHeartbeatById(
        self, request: rr.RecordActivityTaskHeartbeatByIdRequest, context: Ctx
    ) -> rr.RecordActivityTaskHeartbeatByIdResponse:
        ns = self.namespaces.get(request.namespace)
        return await activity_tasks.record_heartbeat_by_id(self.engine, ns, request)

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
        ns = self.namespaces.get(request.namespace)
        await activity_tasks.respond_completed_by_id(self.engine, ns, request)
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
        ns = self.namespaces.get(request.namespace)
        await activity_tasks.respond_failed_by_id(self.engine, ns, request)
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
        ns = self.namespaces.get(request.namespace)
        await activity_tasks.respond_canceled_by_id(self.engine, ns, request)
        return rr.RespondActivityTaskCanceledByIdResponse()

    @rpc
    async def PauseActivity(
        self, request: rr.PauseActivityRequest, context: Ctx
    ) -> rr.PauseActivityResponse:
        _require_activity_target(request)
        ns = self.namespaces.get(request.namespace)
        await pause_activity.pause_activity(self.engine, ns, request)
        return rr.PauseActivityResponse()

    @rpc
    async def UnpauseActivity(
        self, request: rr.UnpauseActivityRequest, context: Ctx
    ) -> rr.UnpauseActivityResponse:
        _require_activity_target(request)
        ns = self.namespaces.get(request.namespace)
        await unpause_activity.unpause_activity(self.engine, ns, request)
        return rr.UnpauseActivityResponse()

    @rpc
    async def ResetActivity(
        self, request: rr.ResetActivityRequest, context: Ctx
    ) -> rr.ResetActivityResponse:
        _require_activity_target(request)
        ns = self.namespaces.get(request.namespace)
        await reset_activity.reset_activity(self.engine, ns, request)
        return rr.ResetActivityResponse()

    # ---- worker deployments -------------------------------------------------------------
    @rpc
    async def UpdateWorkflowExecutionOptions(
        self, request: rr.UpdateWorkflowExecutionOptionsRequest, context: Ctx
    ) -> rr.UpdateWorkflowExecutionOptionsResponse:
        ns = self.namespaces.get(request.namespace)
        _require(request.workflow_execution.workflow_id, "WorkflowId")
        return await update_workflow_options.update_workflow_options(self.engine, ns, request)

    @rpc
    async def DescribeWorkerDeployment(
        self, request: rr.DescribeWorkerDeploymentRequest, context: Ctx
    ) -> rr.DescribeWorkerDeploymentResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.describe_worker_deployment(self.engine, ns, request)

    @rpc
    async def ListWorkerDeployments(
        self, request: rr.ListWorkerDeploymentsRequest, context: Ctx
    ) -> rr.ListWorkerDeploymentsResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.list_worker_deployments(self.engine, ns, request)

    @rpc
    async def SetWorkerDeploymentCurrentVersion(
        self, request: rr.SetWorkerDeploymentCurrentVersionRequest, context: Ctx
    ) -> rr.SetWorkerDeploymentCurrentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.set_current_version(self.engine, ns, request)

    @rpc
    async def SetWorkerDeploymentRampingVersion(
        self, request: rr.SetWorkerDeploymentRampingVersionRequest, context: Ctx
    ) -> rr.SetWorkerDeploymentRampingVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.set_ramping_version(self.engine, ns, request)

    @rpc
    async def DescribeWorkerDeploymentVersion(
        self, request: rr.DescribeWorkerDeploymentVersionRequest, context: Ctx
    ) -> rr.DescribeWorkerDeploymentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.describe_version(self.engine, ns, request)

    @rpc
    async def UpdateWorkerDeploymentVersionMetadata(
        self, request: rr.UpdateWorkerDeploymentVersionMetadataRequest, context: Ctx
    ) -> rr.UpdateWorkerDeploymentVersionMetadataResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.update_version_metadata(self.engine, ns, request)

    @rpc
    async def DeleteWorkerDeploymentVersion(
        self, request: rr.DeleteWorkerDeploymentVersionRequest, context: Ctx
    ) -> rr.DeleteWorkerDeploymentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.delete_version(self.engine, ns, request)

    @rpc
    async def DeleteWorkerDeployment(
        self, request: rr.DeleteWorkerDeploymentRequest, context: Ctx
    ) -> rr.DeleteWorkerDeploymentResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.delete_deployment(self.engine, ns, request)

    @rpc
    async def UpdateWorkerBuildIdCompatibility(
        self, request: rr.UpdateWorkerBuildIdCompatibilityRequest, context: Ctx
    ) -> rr.UpdateWorkerBuildIdCompatibilityResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_SETS_DISABLED)

    @rpc
    async def GetWorkerBuildIdCompatibility(
        self, request: rr.GetWorkerBuildIdCompatibilityRequest, context: Ctx
    ) -> rr.GetWorkerBuildIdCompatibilityResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_SETS_DISABLED)

    @rpc
    async def UpdateWorkerVersioningRules(
        self, request: rr.UpdateWorkerVersioningRulesRequest, context: Ctx
    ) -> rr.UpdateWorkerVersioningRulesResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_RULES_DISABLED)

    @rpc
    async def GetWorkerVersioningRules(
        self, request: rr.GetWorkerVersioningRulesRequest, context: Ctx
    ) -> rr.GetWorkerVersioningRulesResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_RULES_DISABLED)

    @rpc
    async def GetWorkerTaskReachability(
        self, request: rr.GetWorkerTaskReachabilityRequest, context: Ctx
    ) -> rr.GetWorkerTaskReachabilityResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_RULES_DISABLED)
