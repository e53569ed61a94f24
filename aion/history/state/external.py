"""The state machines of signals and cancel requests this workflow sends to other workflows:
initiated, then delivered or failed."""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.history.state.execution import ExternalRequest, external_request
from aion.history.state.machine import StateMachine
from aion.history.state.tasks import CANCEL_EXTERNAL, SIGNAL_EXTERNAL

ET = event_type_pb2.EventType


def _target(request: ExternalRequest) -> dict[str, Any]:
    """The fields every outcome event of `request` names it by."""
    return {
        "initiated_event_id": request.initiated_event_id,
        "namespace": request.namespace,
        "namespace_id": request.namespace_id,
        "workflow_execution": common_pb.WorkflowExecution(
            workflow_id=request.workflow_id, run_id=request.run_id
        ),
    }


class ExternalRequests(StateMachine):
    """Pending requests to other workflows (`state.signal_requests`, `state.cancel_requests`)."""

    def initiate_signal(
        self,
        wt_completed_id: int,
        attrs: history_pb.SignalExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> ExternalRequest:
        return self._initiate(
            wt_completed_id,
            attrs,
            ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            "signal_external_workflow_execution_initiated_event_attributes",
            self.s.signal_requests,
            SIGNAL_EXTERNAL,
        )

    def signaled(self, request: ExternalRequest, control: str) -> None:
        self._history.append(
            ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            "external_workflow_execution_signaled_event_attributes",
            history_pb.ExternalWorkflowExecutionSignaledEventAttributes(
                control=control, **_target(request)
            ),
        )
        del self.s.signal_requests[request.initiated_event_id]

    def signal_failed(self, request: ExternalRequest, cause: int, control: str) -> None:
        self._history.append(
            ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            "signal_external_workflow_execution_failed_event_attributes",
            history_pb.SignalExternalWorkflowExecutionFailedEventAttributes(
                cause=cause,  # type: ignore[arg-type]
                control=control,
                **_target(request),
            ),
        )
        del self.s.signal_requests[request.initiated_event_id]

    def initiate_cancel(
        self,
        wt_completed_id: int,
        attrs: history_pb.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> ExternalRequest:
        return self._initiate(
            wt_completed_id,
            attrs,
            ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            "request_cancel_external_workflow_execution_initiated_event_attributes",
            self.s.cancel_requests,
            CANCEL_EXTERNAL,
        )

    def _initiate(
        self,
        wt_completed_id: int,
        attrs: history_pb.SignalExternalWorkflowExecutionInitiatedEventAttributes
        | history_pb.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
        event_type: int,
        attr_field: str,
        pending: dict[int, ExternalRequest],
        transfer_kind: str,
    ) -> ExternalRequest:
        """Record the request, keep it pending, and deliver it once this transition commits."""
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self._history.append(event_type, attr_field, attrs)
        request = external_request(self.s.run_id, event.event_id, attrs)
        pending[request.initiated_event_id] = request
        self._tasks.transfer(transfer_kind, id=request.initiated_event_id)
        return request

    def cancel_requested(self, request: ExternalRequest) -> None:
        self._history.append(
            ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            "external_workflow_execution_cancel_requested_event_attributes",
            history_pb.ExternalWorkflowExecutionCancelRequestedEventAttributes(**_target(request)),
        )
        del self.s.cancel_requests[request.initiated_event_id]

    def cancel_failed(self, request: ExternalRequest, cause: int, control: str) -> None:
        self._history.append(
            ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            "request_cancel_external_workflow_execution_failed_event_attributes",
            history_pb.RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                cause=cause,  # type: ignore[arg-type]
                control=control,
                **_target(request),
            ),
        )
        del self.s.cancel_requests[request.initiated_event_id]
