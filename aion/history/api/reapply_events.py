"""Re-apply the events of a hidden branch (one that lost a conflict between clusters) on the
winning branch, as Temporal's ReapplyEvents does: its signals, updates, cancel requests and
terminations happen again on the workflow id's current run (reset first if it is closed), at
this (the active) cluster's version. A signal keeps its request id, so applying a branch twice
signals once.

An update admitted or accepted on the hidden branch is admitted again durably, as Temporal does:
a WorkflowExecutionUpdateAdmitted event (origin REAPPLY) holds its original request and a
workflow task is scheduled; the worker finds the request in history and accepts or rejects it
there, and a restart before it does loses nothing. It is not re-applied when the run already
knows its id (admitted, accepted or completed there), nor for an accepted event without the
request (an admitted event before it on the hidden branch carries it)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from temporalio.api.enums.v1 import event_type_pb2, update_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.update.v1 import message_pb2 as update_pb

from aion.history.api.request_cancel_workflow import deliver_cancel
from aion.history.api.reset_workflow import reset_run
from aion.history.api.signal_workflow import deliver_signal
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import MutableState
from aion.history.replication import REAPPLIED

log = logging.getLogger(__name__)

ET = event_type_pb2.EventType
REAPPLY = update_pb2.UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY
# Temporal's reason for a reset that re-applies events on a closed run.
EVENTS_REAPPLICATION = "events-reapplication"


def reapplicable(events: list[bytes]) -> list[history_pb.HistoryEvent]:
    """The events of a branch that are re-applied, in order."""
    parsed = (history_pb.HistoryEvent.FromString(e) for e in events)
    return [e for e in parsed if e.event_type in REAPPLIED]


async def reapply_events(
    engine: HistoryEngine, key: ExecutionKey, events: list[history_pb.HistoryEvent]
) -> None:
    """Apply `events` again on the current run of `key`'s workflow id (whichever run they were
    written on), as Temporal's ReapplyEvents; a closed current run is reset to take them
    (`_reset_and_reapply`). NamespaceNotActive unless the namespace is active here."""

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

    def reapply_if_running(ms: MutableState) -> bool:
        if not ms.running:
            return False
        reapply(ms)
        return True

    if not events:
        return
    current = await engine.resolve(key[0], key[1], "")
    if not await engine.update_execution(current, reapply_if_running):
        await _reset_and_reapply(engine, current, reapply)


async def _reset_and_reapply(
    engine: HistoryEngine, key: ExecutionKey, reapply: Callable[[MutableState], None]
) -> None:
    """Reset the closed run `key` to its last completed workflow task, as Temporal chooses the
    point, with `reapply` applied on the new run; without such a task the events are dropped
    (logged), as Temporal does."""
    base = await engine.get_execution(key)
    started = base.s.last_completed_wt_started_event_id
    if not started:
        log.warning(
            "cannot reapply events to finished run %s of %s: it has no completed workflow task",
            key[2],
            key[1],
        )
        return
    current = await engine.current_execution(key[0], key[1])
    run_id = await reset_run(
        engine, base, current, started + 1, EVENTS_REAPPLICATION, "", True, reapply
    )
    log.info("reset %s to run %s to reapply events", key[1], run_id)


def _readmit(
    ms: MutableState,
    request: update_pb.Request,
    origin: update_pb2.UpdateAdmittedEventOrigin.ValueType,
) -> None:
    if ms.updates.find(request.meta.update_id) is None:
        ms.updates.admit_durably(request, origin)
