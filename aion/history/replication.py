"""History replication as the history engine sees it: the replication task a transition of an
execution in a global namespace active here writes, and the transition another cluster
replicated, as applied here (`HistoryEngine.apply_replicated`).

A replicated transition carries its events and the mutable state after it: the standby appends
the same events (same ids, versions, bytes) and takes the active cluster's state as its own, so
what is not in history (activity attempts, heartbeat details, pending retries) replicates too.
The timer and queue tasks the transition created are created here as well, under this
cluster's task ids; a standby's task processor does not act on them until the namespace is
active here (`aion.history.tasks.processor`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.history.state.execution import ExecutionState, VersionHistoryItem
from aion.persistence import (
    ExecutionTransaction,
    QueueTask,
    ReplicationAck,
    ReplicationTaskRecord,
    TimerTask,
)

ET = event_type_pb2.EventType
# The events of a losing branch or run that are applied again on the winner.
REAPPLIED = (
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
)


class ReplicationGap(Exception):
    """A replicated transition starts past the next event this cluster has: the events from
    `[next_event_id, until_event_id)` must be fetched from the source first."""

    def __init__(self, next_event_id: int, until_event_id: int) -> None:
        super().__init__(f"replicated events {next_event_id} to {until_event_id - 1} are missing")
        self.next_event_id = next_event_id
        self.until_event_id = until_event_id


class UnresolvableConflict(Exception):
    """Two histories of one run that conflict resolution cannot reconcile: they share no event
    (their first events already differ), so there is no common ancestor to keep and branch
    from. Temporal refuses the same ("no joint point found"); the task fails until the local
    run is repaired, and reaches the replication DLQ."""


@dataclass
class ReplicatedTransition:
    """A transition of another cluster's execution, with its events and this cluster's
    watermark once it is applied (None: a task merged from the DLQ moves no watermark)."""

    task: ReplicationTaskRecord
    events: list[bytes]
    ack: ReplicationAck | None
    parsed: list[history_pb.HistoryEvent] = field(init=False)

    def __post_init__(self) -> None:
        self.parsed = [history_pb.HistoryEvent.FromString(e) for e in self.events]


def replication_task(
    tx: ExecutionTransaction, task_id: int, version: int, now_ns: int
) -> ReplicationTaskRecord:
    """The replication task of a transition about to commit (`tx`)."""
    if tx.events:
        first, next_id = tx.events[0][0], tx.events[-1][0] + 1
    else:
        first = next_id = 0
    tasks = {
        "timer": [dataclasses.asdict(t) for t in tx.timer_tasks],
        "queue": [dataclasses.asdict(t) for t in tx.queue_tasks],
    }
    return ReplicationTaskRecord(
        shard_id=tx.shard_id,
        task_id=task_id,
        namespace_id=tx.namespace_id,
        workflow_id=tx.workflow_id,
        run_id=tx.run_id,
        first_event_id=first,
        next_event_id=next_id,
        version=version,
        state=tx.state,
        tasks=json.dumps(tasks),
        create_time_ns=now_ns,
    )


def whole_execution_task(
    tx: ExecutionTransaction,
    task_id: int,
    next_event_id: int,
    version: int,
    now_ns: int,
    pending: tuple[list[TimerTask], list[QueueTask]],
) -> ReplicationTaskRecord:
    """The replication task of an execution's back-fill: its whole history (events 1 to
    `next_event_id` - 1), its state and its `pending` timer and queue tasks, as `tx` (which
    changes nothing else) commits."""
    task = replication_task(tx, task_id, version, now_ns)
    task.first_event_id, task.next_event_id = 1, next_event_id
    timers, queued = pending
    task.tasks = json.dumps(
        {
            "timer": [dataclasses.asdict(t) for t in timers],
            "queue": [dataclasses.asdict(t) for t in queued],
        }
    )
    return task


def replicated_tasks(task: ReplicationTaskRecord) -> tuple[list[TimerTask], list[QueueTask]]:
    """The timer and queue tasks a replicated transition created, as the source wrote them."""
    tasks = json.loads(task.tasks)
    return (
        [TimerTask(**t) for t in tasks["timer"]],
        [QueueTask(**t) for t in tasks["queue"]],
    )


def common_ancestor(ours: list[VersionHistoryItem], theirs: list[VersionHistoryItem]) -> int:
    """The last event id up to which two version histories agree (each item: the last event id
    written at a version, in order). After it, the histories have branched (or one ends)."""
    common = 0
    for mine, other in zip(ours, theirs, strict=False):
        if mine.version != other.version:
            break
        common = min(mine.event_id, other.event_id)
        if mine.event_id != other.event_id:
            break
    return common


@dataclass
class Divergence:
    """A replicated transition whose history branched from this cluster's after event
    `common`: `theirs_wins` when its last version is the higher (the events with the highest
    version win, as Temporal resolves conflicts), else it is older and dropped."""

    common: int
    theirs_wins: bool
    branch: str
    """The name this cluster's losing branch is kept under: its last event and version."""


def divergence(
    ours: list[VersionHistoryItem], theirs: list[VersionHistoryItem]
) -> Divergence | None:
    """How the two histories of one run have branched, if they have (neither is a prefix of the
    other). UnresolvableConflict when they share no event."""
    if not ours or not theirs:
        return None
    common = common_ancestor(ours, theirs)
    if common >= ours[-1].event_id or common >= theirs[-1].event_id:
        return None
    if common == 0:
        raise UnresolvableConflict(
            f"the histories share no event (this cluster's starts at version {ours[0].version}, "
            f"the replicated one at version {theirs[0].version}): no common ancestor"
        )
    branch = f"{ours[-1].event_id}@v{ours[-1].version}"
    return Divergence(common, theirs[-1].version > ours[-1].version, branch)


def last_write_version(state: ExecutionState) -> int:
    """The version of a run's last event: which of two competing runs of a workflow id wins
    (the higher; Temporal breaks a tie by the runs' update clocks, here the run replicated
    later wins, as one cluster's transitions replicate in order)."""
    return state.version_history[-1].version if state.version_history else state.failover_version
