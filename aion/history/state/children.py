"""The child workflow state machine, as the parent sees it: initiated, then started or failed to
start, then closed (completed, failed, canceled, terminated or timed out)."""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.history.state.builder import BUFFERED_EVENT_ID
from aion.history.state.execution import ChildInfo
from aion.history.state.machine import StateMachine
from aion.history.state.tasks import START_CHILD

ET = event_type_pb2.EventType


# A child's close event -> the parent's event type, its attributes, and the fields copied over.
_CLOSED_EVENTS: dict[str, tuple[int, str, type[Any], tuple[str, ...]]] = {
    "workflow_execution_completed_event_attributes": (
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        "child_workflow_execution_completed_event_attributes",
        history_pb.ChildWorkflowExecutionCompletedEventAttributes,
        ("result",),
    ),
    "workflow_execution_failed_event_attributes": (
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
        "child_workflow_execution_failed_event_attributes",
        history_pb.ChildWorkflowExecutionFailedEventAttributes,
        ("failure", "retry_state"),
    ),
    "workflow_execution_canceled_event_attributes": (
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
        "child_workflow_execution_canceled_event_attributes",
        history_pb.ChildWorkflowExecutionCanceledEventAttributes,
        ("details",),
    ),
    "workflow_execution_terminated_event_attributes": (
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
        "child_workflow_execution_terminated_event_attributes",
        history_pb.ChildWorkflowExecutionTerminatedEventAttributes,
        (),
    ),
    "workflow_execution_timed_out_event_attributes": (
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
        "child_workflow_execution_timed_out_event_attributes",
        history_pb.ChildWorkflowExecutionTimedOutEventAttributes,
        ("retry_state",),
    ),
}


class Children(StateMachine):
    """The execution's pending children (`state.children`, by initiated event id)."""

    def initiate(
        self,
        wt_completed_id: int,
        attrs: history_pb.StartChildWorkflowExecutionInitiatedEventAttributes,
        namespace_id: str,
    ) -> ChildInfo:
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self._history.append(
            ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            "start_child_workflow_execution_initiated_event_attributes",
            attrs,
        )
        child = ChildInfo(
            initiated_event_id=event.event_id,
            namespace=attrs.namespace,
            namespace_id=namespace_id,
            workflow_id=attrs.workflow_id,
            workflow_type=attrs.workflow_type.name,
            parent_close_policy=attrs.parent_close_policy,
            create_request_id=f"{self.s.run_id}:{event.event_id}",
        )
        self.s.children[child.initiated_event_id] = child
        self._tasks.transfer(START_CHILD, id=child.initiated_event_id)
        return child

    def started(self, child: ChildInfo, run_id: str, header: common_pb.Header | None) -> None:
        attrs = history_pb.ChildWorkflowExecutionStartedEventAttributes(
            namespace=child.namespace,
            namespace_id=child.namespace_id,
            initiated_event_id=child.initiated_event_id,
            workflow_execution=common_pb.WorkflowExecution(
                workflow_id=child.workflow_id, run_id=run_id
            ),
            workflow_type=common_pb.WorkflowType(name=child.workflow_type),
        )
        if header is not None:
            attrs.header.CopyFrom(header)
        event = self._history.append(
            ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
            "child_workflow_execution_started_event_attributes",
            attrs,
        )
        child.run_id = run_id
        # A buffered event has no id yet: the flush sets the real one.
        child.started_event_id = event.event_id or BUFFERED_EVENT_ID

    def start_failed(self, child: ChildInfo, cause: int) -> None:
        self._history.append(
            ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
            "start_child_workflow_execution_failed_event_attributes",
            history_pb.StartChildWorkflowExecutionFailedEventAttributes(
                namespace=child.namespace,
                namespace_id=child.namespace_id,
                workflow_id=child.workflow_id,
                workflow_type=common_pb.WorkflowType(name=child.workflow_type),
                cause=cause,  # type: ignore[arg-type]
                initiated_event_id=child.initiated_event_id,
            ),
        )
        del self.s.children[child.initiated_event_id]

    def closed(self, child: ChildInfo, close_event: history_pb.HistoryEvent) -> None:
        """Record how a child's run ended (its close event, translated for the parent)."""
        common: dict[str, Any] = {
            "namespace": child.namespace,
            "namespace_id": child.namespace_id,
            "workflow_execution": common_pb.WorkflowExecution(
                workflow_id=child.workflow_id, run_id=child.run_id
            ),
            "workflow_type": common_pb.WorkflowType(name=child.workflow_type),
            "initiated_event_id": child.initiated_event_id,
            "started_event_id": child.started_event_id,
        }
        kind = close_event.WhichOneof("attributes") or ""
        translation = _CLOSED_EVENTS.get(kind)
        if translation is None:
            return  # continued-as-new: the chain goes on; its last run reports
        event_type, attr_field, attrs_class, copied = translation
        source = getattr(close_event, kind)
        copied_fields = {name: getattr(source, name) for name in copied}
        self._history.append(event_type, attr_field, attrs_class(**copied_fields, **common))
        del self.s.children[child.initiated_event_id]

    def follow_chain(self, child: ChildInfo, run_id: str) -> None:
        """The child continued as new (or retried): its close is reported for its last run."""
        child.run_id = run_id
