"""The Workflow Update state machine: admitted (in memory), accepted, completed; or rejected.

An update lives only in memory until the workflow accepts it: admission writes nothing, and a
rejected update leaves no trace. Acceptance and completion are history events; the durable
`UpdateRecord`s in the execution state point at them, so accepted and completed updates survive a
restart and duplicate update ids find the first outcome.

An update re-applied from a branch that lost a conflict between clusters is admitted durably, as
Temporal does: a WorkflowExecutionUpdateAdmitted event holds its request and its record points
at it. The worker finds the request in history (no task carries it as a message), and its
accepted event does not repeat it.

The in-flight updates belong to one cached `MutableState`. When that state is dropped (a failed commit,
eviction) its in-flight updates are aborted with `UpdateAborted`, which callers retry: the retry
admits the update again, as Temporal's internal retries do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from temporalio.api.enums.v1 import event_type_pb2, update_pb2, workflow_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as enums_pb
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.protocol.v1 import message_pb2 as protocol_pb
from temporalio.api.update.v1 import message_pb2 as update_pb

from aion import errors
from aion.history.state.builder import BUFFERED_EVENT_ID, HistoryBuilder
from aion.history.state.execution import ExecutionState, UpdateRecord, WorkflowTaskInfo
from aion.history.state.workflow_task import WorkflowTasks

ET = event_type_pb2.EventType
RUNNING = workflow_pb2.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
T = TypeVar("T")


class UpdateAborted(Exception):
    """The update was dropped before it was accepted (registry cleared, workflow continuing):
    the caller admits it again."""


def _server_failure(message: str, failure_type: str) -> failure_pb.Failure:
    return failure_pb.Failure(
        message=message,
        source="Server",
        application_failure_info=failure_pb.ApplicationFailureInfo(
            type=failure_type, non_retryable=True
        ),
    )


def unprocessed_failure() -> failure_pb.Failure:
    return _server_failure(
        "Workflow Update is rejected because it wasn't processed by worker. Probably, Workflow"
        " Update is not supported by the worker.",
        "UnprocessedUpdate",
    )


def workflow_closed_failure() -> failure_pb.Failure:
    return _server_failure(
        "Workflow Update failed because the Workflow completed before the Update completed.",
        "AcceptedUpdateCompletedWorkflow",
    )


def aborted_by_close() -> errors.NotFound:
    return errors.NotFound("workflow update was aborted by closing workflow")


@dataclass
class Update:
    """One update: its request and the futures its callers wait on."""

    update_id: str
    request: update_pb.Request | None
    accepted_event_id: int = 0
    admitted_event_id: int = 0  # admitted durably: the request is in history, not here
    sent_stamp: int = 0  # stamp of the workflow task that carried it to the worker
    accepted: asyncio.Future[failure_pb.Failure | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    outcome: asyncio.Future[update_pb.Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def is_accepted(self) -> bool:
        return self.accepted_event_id != 0

    def request_message(self, sequencing_event_id: int) -> protocol_pb.Message:
        message = protocol_pb.Message(
            id=f"{self.update_id}/request",
            protocol_instance_id=self.update_id,
            event_id=sequencing_event_id,
        )
        assert self.request is not None
        message.body.Pack(self.request)
        return message

    # The setters below run after the transition that caused them has committed.
    def set_accepted(self) -> None:
        _resolve(self.accepted, None)

    def set_outcome(self, outcome: update_pb.Outcome) -> None:
        _resolve(self.outcome, outcome)
        _resolve(self.accepted, None)

    def set_rejected(self, failure: failure_pb.Failure) -> None:
        _resolve(self.outcome, update_pb.Outcome(failure=failure))
        _resolve(self.accepted, failure)

    def abort(self, error: Exception) -> None:
        for future in (self.accepted, self.outcome):
            if not future.done():
                future.set_exception(error)
                future.exception()  # nobody may be waiting: mark the exception retrieved


def _concurrent_limit(message: str) -> errors.ResourceExhausted:
    return errors.ResourceExhausted(
        message,
        details_pb.ResourceExhaustedFailure(
            cause=enums_pb.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
            scope=enums_pb.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
        ),
    )


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


class Updates:
    """The execution's in-flight updates (admitted, or accepted and not yet completed) and the
    transitions that record them. Callers' futures resolve through `effects`, after commit."""

    def __init__(
        self,
        state: ExecutionState,
        history: HistoryBuilder,
        workflow_task: WorkflowTasks,
        effects: list[Callable[[], None]],
    ) -> None:
        self.s = state
        self._history = history
        self._workflow_task = workflow_task
        self._effects = effects
        self.in_flight: dict[str, Update] = {}
        history.admitted_updates = self._admitted_count

    def admitted(self) -> list[Update]:
        """Updates admitted in memory the workflow has not accepted yet, in admission order:
        a workflow task must carry their requests."""
        return [u for u in self.in_flight.values() if not u.is_accepted and not u.admitted_event_id]

    def _check_limits(self, request: update_pb.Request) -> None:
        """history.maxInFlightUpdates, history.maxInFlightUpdatePayloads and
        history.maxTotalUpdates (0: no limit)."""
        limits = self._history.limits
        in_flight = limits.in_flight_updates
        if in_flight and len(self.in_flight) >= in_flight:
            raise _concurrent_limit(
                f"limit on number of concurrent in-flight updates has been reached ({in_flight})"
            )
        payloads = limits.in_flight_update_payloads
        if payloads:  # as Temporal, an accepted update's request no longer counts
            size = sum(
                len(u.update_id)
                + (u.request.ByteSize() if u.request is not None and not u.is_accepted else 0)
                for u in self.in_flight.values()
            )
            if size + request.ByteSize() >= payloads:
                raise _concurrent_limit(
                    "limit on total payload size of in-flight updates has been reached "
                    f"({payloads} bytes)"
                )
        total = limits.total_updates
        if total and len(self.s.updates) + self._admitted_count() >= total:
            raise errors.FailedPrecondition(
                "The limit on the total number of distinct updates in this workflow has been"
                f" reached ({total}). Make sure any duplicate updates share an Update"
                " ID so the server can deduplicate them, and consider rejecting updates that you"
                " aren't going to process. You can also Continue-as-New to avoid this; we"
                " recommend you check Continue-as-New Suggested in your Workflow."
            )

    def _admitted_count(self) -> int:
        return len(self.admitted())

    def clear(self, error: Exception) -> None:
        """Abort every in-flight update (the state that held them is gone)."""
        for update in self.in_flight.values():
            update.abort(error)
        self.in_flight.clear()

    def find(self, update_id: str) -> Update | UpdateRecord | None:
        """The in-flight update, or the record of a completed one, or None."""
        update = self.in_flight.get(update_id)
        if update is not None:
            return update
        record = self.s.updates.get(update_id)
        if record is None or record.completed_event_id:
            return record
        # Admitted durably or accepted before this state was loaded: track it again.
        update = Update(
            update_id,
            None,
            accepted_event_id=record.accepted_event_id,
            admitted_event_id=record.admitted_event_id,
        )
        if update.is_accepted:
            update.set_accepted()
        if self.s.status != RUNNING:  # the run closed first: it never completes
            if update.is_accepted:
                update.set_outcome(update_pb.Outcome(failure=workflow_closed_failure()))
            else:
                update.abort(aborted_by_close())
            return update
        self.in_flight[update_id] = update
        return update

    def admit(self, request: update_pb.Request) -> Update:
        """Admit a new update (nothing is written) and make sure a workflow task carries it."""
        self._check_limits(request)
        update = Update(request.meta.update_id, request)
        self.in_flight[update.update_id] = update
        if not self._workflow_task.pending:
            self._workflow_task.schedule(speculative=True)
        return update

    def admit_durably(
        self,
        request: update_pb.Request,
        origin: update_pb2.UpdateAdmittedEventOrigin.ValueType,
    ) -> None:
        """Admit an update admitted once already (on a branch that lost a conflict between
        clusters) with an UpdateAdmitted event, past the limits, and schedule a workflow task
        (the event waits in the buffer while one is started)."""
        event = self._history.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
            "workflow_execution_update_admitted_event_attributes",
            history_pb.WorkflowExecutionUpdateAdmittedEventAttributes(
                request=request, origin=origin
            ),
        )
        admitted_event_id = event.event_id or BUFFERED_EVENT_ID  # set when the buffer flushes
        self.s.updates[request.meta.update_id] = UpdateRecord(admitted_event_id=admitted_event_id)
        if not self._workflow_task.pending:
            self._workflow_task.schedule()

    def readmit(self, update_id: str, request: update_pb.Request) -> Update:
        """The registry was cleared after a task carried the update: the worker's copy of the
        request brings it back."""
        update = Update(update_id, request)
        self.in_flight[update_id] = update
        return update

    def deliver(self, wt: WorkflowTaskInfo) -> list[protocol_pb.Message]:
        """The request messages a started workflow task carries: every update not yet accepted."""
        messages = []
        for update in self.admitted():
            if update.request is None:
                continue
            update.sent_stamp = wt.stamp
            messages.append(update.request_message(wt.started_event_id - 1))
        return messages

    def accept(self, update: Update, acceptance: update_pb.Acceptance) -> None:
        """Write the accepted event: with the request, unless an admitted event holds it (the
        worker then names that event as the request's sequencing event)."""
        attrs = history_pb.WorkflowExecutionUpdateAcceptedEventAttributes(
            protocol_instance_id=update.update_id,
            accepted_request_message_id=f"{update.update_id}/request",
            accepted_request_sequencing_event_id=acceptance.accepted_request_sequencing_event_id,
        )
        if not update.admitted_event_id:
            request = update.request if update.request is not None else acceptance.accepted_request
            attrs.accepted_request.CopyFrom(request)
        event = self._history.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            "workflow_execution_update_accepted_event_attributes",
            attrs,
        )
        update.accepted_event_id = event.event_id
        record = self.s.updates.setdefault(update.update_id, UpdateRecord())
        record.accepted_event_id = event.event_id
        self._effects.append(update.set_accepted)

    def complete(self, update: Update, response: update_pb.Response) -> None:
        attrs = history_pb.WorkflowExecutionUpdateCompletedEventAttributes(
            meta=response.meta, accepted_event_id=update.accepted_event_id, outcome=response.outcome
        )
        event = self._history.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
            "workflow_execution_update_completed_event_attributes",
            attrs,
        )
        self.s.updates[update.update_id].completed_event_id = event.event_id
        del self.in_flight[update.update_id]
        self._effects.append(lambda: update.set_outcome(response.outcome))

    def reject(self, update: Update, failure: failure_pb.Failure) -> None:
        """A rejected update disappears: no event, no record (a durably admitted one keeps its
        admitted event); its callers get the failure."""
        del self.in_flight[update.update_id]
        if update.admitted_event_id:
            del self.s.updates[update.update_id]
        self._history.mutation.dirty = True
        self._effects.append(lambda: update.set_rejected(failure))

    def abort_on_close(self, continuing: bool) -> None:
        """The run closed: accepted updates fail; others are retried on the next run or end."""
        error: Exception = UpdateAborted() if continuing else aborted_by_close()
        for update in list(self.in_flight.values()):
            if update.is_accepted:
                outcome = update_pb.Outcome(failure=workflow_closed_failure())
                self._effects.append(lambda u=update, o=outcome: u.set_outcome(o))  # type: ignore[misc]
            else:
                self._effects.append(lambda u=update: u.abort(error))  # type: ignore[misc]
        self.in_flight.clear()
