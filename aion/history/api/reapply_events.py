"""Re-apply the events of a hidden branch (one that lost a conflict between clusters) on the
winning branch, as Temporal's ReapplyEvents does: its signals, updates, cancel requests and
terminations happen again on the run, at this (the active) cluster's version. A signal keeps
its request id, so applying a branch twice signals once.

An update admitted or accepted on the hidden branch is admitted again durably, as Temporal does:
a WorkflowExecutionUpdateAdmitted event (origin REAPPLY) holds its original request and a
workflow task is scheduled; the worker finds the request in history and accepts or rejects it
there, and a restart before it does loses nothing. It is not re-applied when the run already
knows its id (admitted, accepted or completed there), nor for an accepted event without the
request (an admitted event before it on the hidden branch carries it)."""

from __future__ import annotations

from temporalio.api.enums.v1 import event_type_pb2, update_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.update.v1 import message_pb2 as update_pb

from aion.history.api.request_cancel_workflow import deliver_cancel
from aion.history.api.signal_workflow import deliver_signal
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import MutableState

ET = event_type_pb2.EventType
REAPPLY = update_pb2.UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY
REAPPLIED = (
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
)


def reapplicable(events: list[bytes]) -> list[history_pb.HistoryEvent]:
    """The events of a branch that are re-applied, in order."""
    parsed = (history_pb.HistoryEvent.FromString(e) for e in events)
    return [e for e in parsed if e.event_type in REAPPLIED]


async def reapply_events(
    engine: HistoryEngine, key: ExecutionKey, events: list[history_pb.HistoryEvent]
) -> None:
    """Apply `events` again on the run `key` if it still runs (a closed run takes none, where
    Temporal would reset it to re-apply them); NamespaceNotActive unless it is active here."""

    def reapply(ms: MutableState) -> None:
        for event in events:
            if not ms.running:
                return
            if event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signal = event.workflow_execution_signaled_event_attributes
                deliver_signal(
                    ms,
                    signal.signal_name,
                    signal.input if signal.HasField("input") else None,
                    signal.header if signal.HasField("header") else None,
                    signal.identity,
                    signal.request_id or f"reapplied-{event.event_id}@v{event.version}",
                )
            elif event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
                admitted = event.workflow_execution_update_admitted_event_attributes
                _readmit(ms, admitted.request, admitted.origin)
            elif event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                accepted = event.workflow_execution_update_accepted_event_attributes
                if accepted.HasField("accepted_request"):
                    _readmit(ms, accepted.accepted_request, REAPPLY)
            elif event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
                cancel = event.workflow_execution_cancel_requested_event_attributes
                deliver_cancel(ms, cancel.cause, cancel.identity)
            else:
                terminated = event.workflow_execution_terminated_event_attributes
                details = terminated.details if terminated.HasField("details") else None
                ms.terminate(terminated.reason, details, terminated.identity)

    if events:
        await engine.update_execution(key, reapply)


def _readmit(
    ms: MutableState,
    request: update_pb.Request,
    origin: update_pb2.UpdateAdmittedEventOrigin.ValueType,
) -> None:
    if ms.updates.find(request.meta.update_id) is None:
        ms.updates.admit_durably(request, origin)
