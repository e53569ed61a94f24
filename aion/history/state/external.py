"""The state machines of signals and cancel requests this workflow sends to other workflows:
initiated, then delivered or failed."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.history.state.builder import HistoryBuilder
from aion.history.state.execution import ExecutionState, ExternalRequest, external_request
from aion.history.state.tasks import CANCEL_EXTERNAL, SIGNAL_EXTERNAL, TaskGenerator

ET = event_type_pb2.EventType


class ExternalRequests:
    """Pending requests to other workflows (`state.signal_requests`, `state.cancel_requests`)."""

    def __init__(
        self, state: ExecutionState, history: HistoryBuilder, tasks: TaskGenerator
    ) -> None:
        self.s = state
        self._history = history
        self._tasks = tasks

    def initiate_signal(
        self,
        wt_completed_id: int,
        attrs: history_pb.SignalExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> ExternalRequest:
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self._history.append(
            ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            "signal_external_workflow_execution_initiated_event_attributes",
            attrs,
        )
        request = external_request(self.s.run_id, event.event_id, attrs)
        self.s.signal_requests[request.initiated_event_id] = request
        self._tasks.transfer(SIGNAL_EXTERNAL, id=request.initiated_event_id)
        return request

    def signaled(self, request: ExternalRequest, control: str) -> None:
        self._history.append(
            ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            "external_workflow_execution_signaled_event_attributes",
            history_pb.ExternalWorkflowExecutionSignaledEventAttributes(
                initiated_event_id=request.initiated_event_id,
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
                control=control,
            ),
        )
        del self.s.signal_requests[request.initiated_event_id]

    def signal_failed(self, request: ExternalRequest, cause: int, control: str) -> None:
        self._history.append(
            ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            "signal_external_workflow_execution_failed_event_attributes",
            history_pb.SignalExternalWorkflowExecutionFailedEventAttributes(
                cause=cause,  # type: ignore[arg-type]
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
                initiated_event_id=request.initiated_event_id,
                control=control,
            ),
        )
        del self.s.signal_requests[request.initiated_event_id]

    def initiate_cancel(
        self,
        wt_completed_id: int,
        attrs: history_pb.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> ExternalRequest:
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self._history.append(
            ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            "request_cancel_external_workflow_execution_initiated_event_attributes",
            attrs,
        )
        request = external_request(self.s.run_id, event.event_id, attrs)
        self.s.cancel_requests[request.initiated_event_id] = request
        self._tasks.transfer(CANCEL_EXTERNAL, id=request.initiated_event_id)
        return request

    def cancel_requested(self, request: ExternalRequest) -> None:
        self._history.append(
            ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            "external_workflow_execution_cancel_requested_event_attributes",
            history_pb.ExternalWorkflowExecutionCancelRequestedEventAttributes(
                initiated_event_id=request.initiated_event_id,
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
            ),
        )
        del self.s.cancel_requests[request.initiated_event_id]

    def cancel_failed(self, request: ExternalRequest, cause: int, control: str) -> None:
        self._history.append(
            ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            "request_cancel_external_workflow_execution_failed_event_attributes",
            history_pb.RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                cause=cause,  # type: ignore[arg-type]
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
                initiated_event_id=request.initiated_event_id,
                control=control,
            ),
        )
        del self.s.cancel_requests[request.initiated_event_id]
