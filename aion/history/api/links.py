"""Links to a workflow's events, returned with starts, signals and updates (as Temporal does,
for callers such as Nexus operations that point back at what their call did)."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2

from aion.history.engine import ExecutionKey

EventType = event_type_pb2.EventType


def to_event(namespace: str, key: ExecutionKey, event_id: int, event_type: int) -> common_pb.Link:
    """A link to one event of the run."""
    return common_pb.Link(
        workflow_event=common_pb.Link.WorkflowEvent(
            namespace=namespace,
            workflow_id=key[1],
            run_id=key[2],
            event_ref=common_pb.Link.WorkflowEvent.EventReference(
                event_id=event_id,
                event_type=event_type,  # type: ignore[arg-type]
            ),
        )
    )


def to_request(
    namespace: str, key: ExecutionKey, request_id: str, event_type: int
) -> common_pb.Link:
    """A link to the event a request (by its id) added to the run."""
    return common_pb.Link(
        workflow_event=common_pb.Link.WorkflowEvent(
            namespace=namespace,
            workflow_id=key[1],
            run_id=key[2],
            request_id_ref=common_pb.Link.WorkflowEvent.RequestIdReference(
                request_id=request_id,
                event_type=event_type,  # type: ignore[arg-type]
            ),
        )
    )


STARTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
