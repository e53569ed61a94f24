"""What a `Scheduler` keeps between wakeups (buffered starts, ongoing backfills) and what one
wakeup asks its caller to do (a `Decision`: workflows to start, cancel or terminate)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from temporalio.api.common.v1.message_pb2 import WorkflowExecution
from temporalio.api.workflowservice.v1.request_response_pb2 import StartWorkflowExecutionRequest


@dataclass
class BufferedStart:
    """An action waiting for its turn under the overlap policy."""

    nominal_time: dt.datetime
    actual_time: dt.datetime
    overlap_policy: int  # UNSPECIFIED means the schedule's policy at the time it is taken
    manual: bool  # trigger or backfill: ignores pause, remaining actions and catchup window


@dataclass
class Backfill:
    """The part of a BackfillRequest still to be turned into buffered starts."""

    start_time: dt.datetime  # exclusive
    end_time: dt.datetime  # inclusive
    overlap_policy: int


@dataclass(frozen=True)
class StartWorkflow:
    """A workflow to start now, as the StartWorkflowExecution request Temporal sends."""

    request: StartWorkflowExecutionRequest
    nominal_time: dt.datetime
    actual_time: dt.datetime
    manual: bool


@dataclass
class Decision:
    """What one wakeup asks the caller to do."""

    starts: list[StartWorkflow] = field(default_factory=list)
    cancel: list[WorkflowExecution] = field(default_factory=list)
    """Cancel these, then report them closed when they close."""
    terminate: list[WorkflowExecution] = field(default_factory=list)
    """Terminate these."""
    next_wakeup: dt.datetime | None = None
    """Call `process_time` again at this time (None: only when something happens: a patch,
    an update, or a started workflow closing)."""
    idle_since: dt.datetime | None = None
    """Set when the schedule has nothing more to do (not paused, and out of actions or of
    matching times): its last event. The caller deletes it a retention period later unless
    something happens meanwhile."""
