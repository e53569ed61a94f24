"""WorkflowService RPCs on workflow executions: start, signal, cancel, terminate, reset,
describe, history, query, list and count, and updates (with update-with-start)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.durations import check_start_durations
from aion.frontend.rpc import deadline_seconds, rpc
from aion.frontend.workflow_service.base import (
    MAX_ID_LENGTH,
    Ctx,
    ServiceBase,
    require,
    require_task_queue,
    validate_update,
)
from aion.history.api import (
    delete_workflow,
    describe_workflow,
    get_workflow_history,
    get_workflow_history_reverse,
    query_workflow,
    request_cancel_workflow,
    reset_workflow,
    signal_workflow,
    start_workflow,
    terminate_workflow,
    unpause_workflow,
    update_with_start,
    update_workflow,
)
from aion.namespaces import Namespace
from aion.visibility import listing


class WorkflowRpcs(ServiceBase):
    """The life of workflow executions, their updates, and listing them."""

    @rpc
    async def StartWorkflowExecution(
        self, request: rr.StartWorkflowExecutionRequest, context: Ctx
    ) -> rr.StartWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        self._validate_start(ns, request)
        return await start_workflow.start_workflow(self.engine, ns, request)

    def _validate_start(self, ns: Namespace, request: rr.StartWorkflowExecutionRequest) -> None:
        require(request.workflow_id, "WorkflowId")
        if len(request.workflow_id) > MAX_ID_LENGTH:
            raise errors.InvalidArgument("WorkflowId length exceeds limit.")
        require(request.workflow_type.name, "WorkflowType")
        require_task_queue(request.task_queue.name)
        check_start_durations(request)
        if len(request.request_id) > MAX_ID_LENGTH:
            raise errors.InvalidArgument("RequestId length exceeds limit.")
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        self._check_search_attributes(ns, request)
        self._check_pinned_version(ns, request)

    @rpc
    async def SignalWithStartWorkflowExecution(
        self, request: rr.SignalWithStartWorkflowExecutionRequest, context: Ctx
    ) -> rr.SignalWithStartWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.workflow_id, "WorkflowId")
        require(request.workflow_type.name, "WorkflowType")
        require_task_queue(request.task_queue.name)
        require(request.signal_name, "SignalName")
        check_start_durations(request)
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        self._check_search_attributes(ns, request)
        self._check_pinned_version(ns, request)
        return await start_workflow.signal_with_start_workflow(self.engine, ns, request)

    @rpc
    async def SignalWorkflowExecution(
        self, request: rr.SignalWorkflowExecutionRequest, context: Ctx
    ) -> rr.SignalWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.workflow_execution.workflow_id, "WorkflowId")
        require(request.signal_name, "SignalName")
        return await signal_workflow.signal_workflow(self.engine, ns, request)

    @rpc
    async def RequestCancelWorkflowExecution(
        self, request: rr.RequestCancelWorkflowExecutionRequest, context: Ctx
    ) -> rr.RequestCancelWorkflowExecutionResponse:
        await self._in_namespace(
            request_cancel_workflow.request_cancel_workflow,
            request,
            request.workflow_execution.workflow_id,
        )
        return rr.RequestCancelWorkflowExecutionResponse()

    @rpc
    async def TerminateWorkflowExecution(
        self, request: rr.TerminateWorkflowExecutionRequest, context: Ctx
    ) -> rr.TerminateWorkflowExecutionResponse:
        await self._in_namespace(
            terminate_workflow.terminate_workflow, request, request.workflow_execution.workflow_id
        )
        return rr.TerminateWorkflowExecutionResponse()

    @rpc
    async def DeleteWorkflowExecution(
        self, request: rr.DeleteWorkflowExecutionRequest, context: Ctx
    ) -> rr.DeleteWorkflowExecutionResponse:
        return await self._in_namespace(
            delete_workflow.delete_workflow, request, request.workflow_execution.workflow_id
        )

    @rpc
    async def ResetWorkflowExecution(
        self, request: rr.ResetWorkflowExecutionRequest, context: Ctx
    ) -> rr.ResetWorkflowExecutionResponse:
        return await self._in_namespace(
            reset_workflow.reset_workflow, request, request.workflow_execution.workflow_id
        )

    @rpc
    async def PauseWorkflowExecution(
        self, request: rr.PauseWorkflowExecutionRequest, context: Ctx
    ) -> rr.PauseWorkflowExecutionResponse:
        raise errors.Unimplemented(
            f"workflow pause is not enabled for namespace: {request.namespace}"
        )

    @rpc
    async def UnpauseWorkflowExecution(
        self, request: rr.UnpauseWorkflowExecutionRequest, context: Ctx
    ) -> rr.UnpauseWorkflowExecutionResponse:
        for value, what in ((request.reason, "reason"), (request.request_id, "request id")):
            if len(value) > MAX_ID_LENGTH:
                raise errors.InvalidArgument(f"{what} is too long.")
        if len(request.identity) > MAX_ID_LENGTH:
            raise errors.InvalidArgument("identity is too long.")
        await self._in_namespace(unpause_workflow.unpause_workflow, request, request.workflow_id)
        return rr.UnpauseWorkflowExecutionResponse()

    @rpc
    async def DescribeWorkflowExecution(
        self, request: rr.DescribeWorkflowExecutionRequest, context: Ctx
    ) -> rr.DescribeWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.execution.workflow_id, "WorkflowId")
        response = await describe_workflow.describe_workflow(self.engine, ns, request)
        info = response.workflow_execution_info
        shown = self.namespaces.search_attributes.present(ns.id, info.search_attributes)
        info.search_attributes.CopyFrom(shown)  # present even when empty, as the reference's
        return response

    @rpc
    async def GetWorkflowExecutionHistory(
        self, request: rr.GetWorkflowExecutionHistoryRequest, context: Ctx
    ) -> rr.GetWorkflowExecutionHistoryResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.execution.workflow_id, "WorkflowId")
        return await get_workflow_history.get_workflow_history(
            self.engine, ns, request, deadline_seconds(context)
        )

    @rpc
    async def GetWorkflowExecutionHistoryReverse(
        self, request: rr.GetWorkflowExecutionHistoryReverseRequest, context: Ctx
    ) -> rr.GetWorkflowExecutionHistoryReverseResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.execution.workflow_id, "WorkflowId")
        return await get_workflow_history_reverse.get_workflow_history_reverse(
            self.engine, ns, request
        )

    @rpc
    async def QueryWorkflow(
        self, request: rr.QueryWorkflowRequest, context: Ctx
    ) -> rr.QueryWorkflowResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.execution.workflow_id, "WorkflowId")
        require(request.query.query_type, "QueryType")
        return await query_workflow.query_workflow(
            self.engine, ns, request, deadline_seconds(context, 30)
        )

    @rpc
    async def ListWorkflowExecutions(
        self, request: rr.ListWorkflowExecutionsRequest, context: Ctx
    ) -> rr.ListWorkflowExecutionsResponse:
        ns = self.namespaces.get(request.namespace)
        return await listing.list_workflows(
            self.store, ns.id, request, self.namespaces.search_attributes
        )

    @rpc
    async def CountWorkflowExecutions(
        self, request: rr.CountWorkflowExecutionsRequest, context: Ctx
    ) -> rr.CountWorkflowExecutionsResponse:
        ns = self.namespaces.get(request.namespace)
        return await listing.count_workflows(
            self.store, ns.id, request, self.namespaces.search_attributes
        )

    # ---- updates ------------------------------------------------------------------------
    @rpc
    async def UpdateWorkflowExecution(
        self, request: rr.UpdateWorkflowExecutionRequest, context: Ctx
    ) -> rr.UpdateWorkflowExecutionResponse:
        ns = self.namespaces.get(request.namespace)
        validate_update(request)
        return await update_workflow.update_workflow(
            self.engine, ns, request, deadline_seconds(context)
        )

    @rpc
    async def PollWorkflowExecutionUpdate(
        self, request: rr.PollWorkflowExecutionUpdateRequest, context: Ctx
    ) -> rr.PollWorkflowExecutionUpdateResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.update_ref.workflow_execution.workflow_id, "WorkflowId")
        require(request.update_ref.update_id, "UpdateId")
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
        # Each operation is checked on its own; a failed check is that operation's status, the
        # other one's is "aborted" (Temporal's frontend converts both before failing the call).
        start_error = _checked(lambda: self._validate_multi_op_start(ns, request, start))
        update_error = _checked(lambda: _validate_multi_op_update(request, update))
        if (
            start_error is None
            and update_error is None
            and update.workflow_execution.workflow_id != start.workflow_id
        ):
            update_error = errors.InvalidArgument(
                "WorkflowId is not consistent with previous operation(s)."
            )
        if start_error is not None or update_error is not None:
            raise errors.multi_operation_failed(
                start_error or errors.operation_aborted(),
                update_error or errors.operation_aborted(),
            )
        return await update_with_start.update_with_start(
            self.engine, ns, start, update, deadline_seconds(context)
        )

    def _validate_multi_op_start(
        self,
        ns: Namespace,
        request: rr.ExecuteMultiOperationRequest,
        start: rr.StartWorkflowExecutionRequest,
    ) -> None:
        if start.namespace and start.namespace != request.namespace:
            raise errors.InvalidArgument("Operation namespace did not match request's namespace.")
        self._validate_start(ns, start)
        if start.cron_schedule:
            raise errors.InvalidArgument("CronSchedule is not allowed.")
        if start.request_eager_execution:
            raise errors.InvalidArgument("RequestEagerExecution is not supported.")
        if start.HasField("workflow_start_delay") and (
            start.workflow_start_delay.seconds or start.workflow_start_delay.nanos
        ):
            raise errors.InvalidArgument("WorkflowStartDelay is not supported.")


def _validate_multi_op_update(
    request: rr.ExecuteMultiOperationRequest, update: rr.UpdateWorkflowExecutionRequest
) -> None:
    if update.namespace and update.namespace != request.namespace:
        raise errors.InvalidArgument("Operation namespace did not match request's namespace.")
    validate_update(update)
    if update.first_execution_run_id:
        raise errors.InvalidArgument("FirstExecutionRunId is not allowed.")
    if update.workflow_execution.run_id:
        raise errors.InvalidArgument("RunId is not allowed.")


def _checked(check: Callable[[], None]) -> errors.ServiceError | None:
    """The error a check raises, or None."""
    try:
        check()
    except errors.ServiceError as e:
        return e
    return None
