"""Workflow Update: the in-memory registry of an execution's in-flight updates.

An update lives only in memory until the workflow accepts it: admission writes nothing, and a
rejected update leaves no trace. Acceptance and completion are history events written by
`MutableState`; the durable `UpdateRecord`s in the execution state point at them, so accepted and
completed updates survive a restart and duplicate update ids find the first outcome.

The registry belongs to one cached `MutableState`. When that state is dropped (a failed commit,
eviction) its in-flight updates are aborted with `UpdateAborted`, which callers retry: the retry
admits the update again, as Temporal's internal retries do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TypeVar

from temporalio.api.enums.v1 import failed_cause_pb2 as enums_pb
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.protocol.v1 import message_pb2 as protocol_pb
from temporalio.api.update.v1 import message_pb2 as update_pb

from aion import errors

T = TypeVar("T")
MAX_IN_FLIGHT_UPDATES = 10
MAX_TOTAL_UPDATES = 2000


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
class UpdateRecord:
    """What the execution state keeps of an accepted update: pointers into history."""

    accepted_event_id: int
    completed_event_id: int = 0


@dataclass
class Update:
    """One update: its request and the futures its callers wait on."""

    update_id: str
    request: update_pb.Request | None
    accepted_event_id: int = 0
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


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


class UpdateRegistry:
    """The in-flight updates of one execution (admitted, or accepted and not yet completed)."""

    def __init__(self) -> None:
        self.in_flight: dict[str, Update] = {}

    def admitted(self) -> list[Update]:
        """Updates the workflow has not accepted yet, in admission order."""
        return [u for u in self.in_flight.values() if not u.is_accepted]

    def check_limits(self, total_updates: int) -> None:
        if len(self.in_flight) >= MAX_IN_FLIGHT_UPDATES:
            raise errors.ResourceExhausted(
                "limit on number of concurrent in-flight updates has been reached"
                f" ({MAX_IN_FLIGHT_UPDATES})",
                details_pb.ResourceExhaustedFailure(
                    cause=enums_pb.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
                    scope=enums_pb.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                ),
            )
        if total_updates + len(self.admitted()) >= MAX_TOTAL_UPDATES:
            raise errors.FailedPrecondition(
                "The limit on the total number of distinct updates in this workflow has been"
                f" reached ({MAX_TOTAL_UPDATES}). Make sure any duplicate updates share an Update"
                " ID so the server can deduplicate them, and consider rejecting updates that you"
                " aren't going to process. You can also Continue-as-New to avoid this; we"
                " recommend you check Continue-as-New Suggested in your Workflow."
            )

    def clear(self, error: Exception) -> None:
        """Abort every in-flight update (the state that held them is gone)."""
        for update in self.in_flight.values():
            update.abort(error)
        self.in_flight.clear()
