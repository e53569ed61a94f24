"""The one storage interface every backend implements.

An execution's transition is one `ExecutionTransaction`: new history events, the mutable state
snapshot, the current-run pointer, durable tasks and the visibility row commit together or not at
all, guarded by the execution's db version and the shard's fencing token (range id).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_TIME_NS = 2**63 - 1  # the latest time a task can be due (ns)


class ConditionFailedError(Exception):
    """An optimistic-concurrency check failed: someone else changed the row first."""


class ShardOwnershipLostError(Exception):
    """The shard's range id moved on: this process no longer owns the shard."""


class StoreUnavailableError(Exception):
    """The database could not be reached, or failed as a whole (restarting, out of disk): the
    same call can succeed later. A write it ends was not applied, unless `outcome_unknown`
    (the connection was lost during the transaction: its commit may have gone through)."""

    def __init__(self, message: str, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class UnstorableValueError(ValueError):
    """A value of the request the database cannot store or look up (PostgreSQL: a NUL character
    in a text column); nothing was written."""


class SchemaTooNewError(Exception):
    """The database was written by a newer Aion."""


class ShardCountMismatchError(Exception):
    """The server was configured with another number of history shards than its database."""


class SchemaTooOldError(Exception):
    """The database needs `aion db migrate` before this Aion can use it."""


def check_schema_version(found: int, supported: int, upgrade: bool = True) -> None:
    """Refuse a database whose schema is newer than this code's migrations, and, unless
    `upgrade`, one that is older (an empty database is always set up)."""
    if found > supported:
        raise SchemaTooNewError(
            f"database schema version {found} is newer than this Aion supports ({supported})"
        )
    if 0 < found < supported and not upgrade:
        raise SchemaTooOldError(
            f"database schema version {found} is older than this Aion needs ({supported}); "
            "stop the servers using it and run `aion db migrate --dsn ...` first"
        )


def check_shard_count(found: int, configured: int) -> None:
    """Refuse to run with another shard count than the database was created with."""
    if found != configured:
        raise ShardCountMismatchError(
            f"this server is configured with {configured} history shards but the database was "
            f"created with {found}; every process sharing a database must use {found}"
        )


@dataclass
class HostRecord:
    """A live server process sharing the database: its id and the address peers reach it at."""

    host_id: str
    address: str


@dataclass
class NamespaceRecord:
    id: str
    name: str
    data: bytes  # a serialized DescribeNamespaceResponse (info, config, replication config)
    notification_version: int = 0
    # Raised by every change of its configuration (not by a failover); a global namespace's
    # change replicates to a cluster only when newer there (`aion.replication`).
    config_version: int = 0


@dataclass
class RemoteClusterRecord:
    """A cluster this one is connected to (AddOrUpdateRemoteCluster): its identity as it
    reported it, and where it is reached."""

    name: str
    cluster_id: str
    address: str
    http_address: str
    initial_failover_version: int
    failover_version_increment: int
    history_shard_count: int
    global_namespace_enabled: bool
    connection_enabled: bool
    replication_enabled: bool


@dataclass
class SearchAttributeRecord:
    """A custom search attribute of a namespace: its name, IndexedValueType and the storage field
    it occupies (Temporal's SQL visibility names them Keyword01, Int01, ...)."""

    namespace_id: str
    name: str
    type: int
    field: str


@dataclass
class CurrentExecution:
    """The run a workflow id currently points at."""

    namespace_id: str
    workflow_id: str
    run_id: str
    running: bool
    status: int
    start_request_id: str
    start_time_ns: int = 0


@dataclass
class ExecutionRecord:
    shard_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    state: bytes
    db_version: int


@dataclass
class TimerTask:
    """A durable timer: fires at `fire_time_ns` and is handed to the history engine."""

    shard_id: int
    task_id: int
    fire_time_ns: int
    namespace_id: str
    workflow_id: str
    run_id: str
    kind: str
    data: str = ""


@dataclass
class QueueTask:
    """A workflow or activity task waiting in a task queue's durable backlog."""

    task_id: int
    namespace_id: str
    task_queue: str
    kind: str  # "workflow" or "activity"
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    shard_id: int = 0
    stamp: int = 0
    create_time_ns: int = 0
    # The worker deployment version (`deployment:build_id`) the task is pinned to; empty: routed
    # by its task queue's current routing.
    version: str = ""


@dataclass
class VisibilityRecord:
    namespace_id: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: int
    start_time_ns: int
    execution_time_ns: int
    close_time_ns: int
    history_length: int
    memo: bytes
    search_attributes: bytes
    parent_workflow_id: str = ""
    parent_run_id: str = ""
    root_workflow_id: str = ""
    root_run_id: str = ""
    history_size_bytes: int = 0
    state_transition_count: int = 0


VisibilityKey = tuple[int, int, str]
"""Where a listing stopped, in the default list order: (close order: the close time, or the
largest int64 for an open run; start time; run id)."""


def visibility_key(v: VisibilityRecord) -> VisibilityKey:
    return (v.close_time_ns or (1 << 63) - 1, v.start_time_ns, v.run_id)


@dataclass(frozen=True)
class VisibilityFilter:
    """A condition on the visibility table's columns with `?` parameters (built by
    `aion.visibility.sql` from columns and markers only, never from literal text).
    `{byte_order}` follows a text column compared by order: the dialect's code-point
    collation."""

    condition: str = ""
    params: tuple[Any, ...] = ()


@dataclass
class ScheduleRecord:
    """A schedule: its scheduler's state (`aion.schedules.Scheduler.to_json`) and version."""

    shard_id: int
    namespace_id: str
    schedule_id: str
    state: str
    version: int


@dataclass
class DeploymentRecord:
    """A worker deployment with its versions and routing (`aion.versioning` state, JSON) and
    version."""

    namespace_id: str
    name: str
    state: str
    version: int


@dataclass
class BatchOperationRecord:
    """A batch operation (StartBatchOperation): its request, state and progress. `targets` is
    the JSON list of the (workflow id, run id) pairs it acts on, "" until they are resolved;
    `position` is how many of them are handled (and counted in `succeeded` / `failed`)."""

    namespace_id: str
    job_id: str
    shard_id: int
    run_id: str
    request: bytes  # a serialized StartBatchOperationRequest
    state: int  # a BatchOperationState
    start_time_ns: int
    close_time_ns: int
    targets: str
    total: int
    position: int
    succeeded: int
    failed: int
    version: int


@dataclass
class ApiKeyRecord:
    """An API key Aion issued: its id (the public part of the key), the SHA-256 of its secret,
    the role it grants in its namespace, and until when (`expires_ns` 0: no expiry)."""

    key_id: str
    secret_hash: str
    namespace: str
    role: str
    description: str
    created_ns: int
    expires_ns: int
    disabled: bool


@dataclass
class NexusEndpointRecord:
    """A Nexus endpoint: its id (a UUID), unique name, version (1 when created, one more at
    each update) and the serialized API `Endpoint` message."""

    id: str
    name: str
    version: int
    data: bytes


@dataclass
class AuditRecord:
    """One audited call: who (`subject`, by which credential), what, and how it ended."""

    time_ns: int
    subject: str
    auth_type: str
    credential_id: str
    method: str
    namespace: str
    workflow_id: str
    result: str


@dataclass
class ReplicationTaskRecord:
    """A committed transition of an execution in a global namespace active here, for the other
    clusters: its events `[first_event_id, next_event_id)` (read from history when served), the
    mutable state after it, and the timer and queue tasks it created (`tasks`, JSON)."""

    shard_id: int
    task_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    first_event_id: int
    next_event_id: int
    version: int
    state: bytes
    tasks: str
    create_time_ns: int


@dataclass(frozen=True)
class ReplicationAck:
    """How far this cluster has applied a shard of another cluster's replication tasks."""

    source_cluster: str
    shard_id: int
    task_id: int


@dataclass(frozen=True)
class ReplicationProgress:
    """How far a cluster has applied a shard's replication tasks, and when that last moved:
    a watermark here (`cluster`: the source) or another cluster's acknowledgement of this
    one's shard (`cluster`: the target)."""

    cluster: str
    shard_id: int
    task_id: int
    update_time_ns: int


@dataclass
class HistoryRewind:
    """A replicated branch wins over this cluster's: the events after `after_event_id` are
    moved to the hidden `branch` before the winner's are written."""

    after_event_id: int
    branch: str


@dataclass
class HiddenBranch:
    """The events of a branch that lost a conflict, kept apart from history."""

    namespace_id: str
    workflow_id: str
    run_id: str
    branch: str
    events: list[bytes]
    reapplied: bool
    set_aside: bool = False  # after repeated failures to re-apply it, until a DLQ merge


@dataclass
class PendingReapply:
    """Events a transition writes that are still to be re-applied on the workflow id's current
    run (a zombie's signals and the like): kept in its commit as the run's hidden `branch`, not
    yet re-applied, so a crash before the re-apply loses nothing."""

    branch: str
    events: list[tuple[int, bytes]]  # (event id, event bytes)


@dataclass
class ReplicationDLQRecord:
    """A replicated task that kept failing here, set aside so its shard goes on: the task as
    received (`task`, Aion's wire encoding with its events) and the last error."""

    source_cluster: str
    shard_id: int
    task_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    task: bytes
    error: str
    create_time_ns: int


@dataclass
class ExecutionTransaction:
    """Everything one state transition writes, committed atomically."""

    shard_id: int
    range_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    state: bytes
    db_version: int
    expected_db_version: int | None  # None: the execution row is new
    events: list[tuple[int, bytes]] = field(default_factory=list)  # (event id, event bytes)
    # Events after the first that begin a new batch (by default the events are one batch).
    batch_starts: list[int] = field(default_factory=list)
    current: CurrentExecution | None = None
    # For a new run: the run the current pointer must still name (None: no pointer may exist).
    # For an existing run (a replicated run winning over the current one): set, the run the
    # pointer must name for this one to take it over.
    expected_current_run_id: str | None = None
    timer_tasks: list[TimerTask] = field(default_factory=list)
    queue_tasks: list[QueueTask] = field(default_factory=list)
    done_timer_task_ids: list[int] = field(default_factory=list)
    done_queue_task_ids: list[int] = field(default_factory=list)
    visibility: VisibilityRecord | None = None
    # The visibility row's search attributes may differ from those last written: their indexed
    # values are written again (False only where the writer knows them unchanged).
    search_attributes_changed: bool = True
    # A run created by this transition (continue-as-new, retry, cron), committed with it.
    new_run: ExecutionTransaction | None = None
    # The transition for the other clusters (a global namespace active here).
    replication_task: ReplicationTaskRecord | None = None
    # A replicated transition: the watermark it moves, durable with it.
    replication_ack: ReplicationAck | None = None
    # A replicated branch that wins: this cluster's events after the common one are hidden.
    rewind: HistoryRewind | None = None
    # A replicated run that lost to the current run: its events to re-apply there.
    reapply: PendingReapply | None = None


class Store(abc.ABC):
    """Async storage interface; every backend implements exactly this."""

    name = ""  # what GetClusterInfo reports as the persistence and visibility store
    shared = False  # True when several server processes may use the database at once

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # Cluster: shards, their count and the processes that share them
    @abc.abstractmethod
    async def check_shard_count(self, num_shards: int) -> None:
        """Record the number of history shards on first use; afterwards raise
        ShardCountMismatchError when `num_shards` differs from it."""

    @abc.abstractmethod
    async def cluster_secret(self) -> str:
        """The secret the processes sharing the database prove to each other that they do
        (made by the first process that asks)."""

    @abc.abstractmethod
    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        """Take the shard's lease: bump and return its range id (the fencing token)."""

    @abc.abstractmethod
    async def shard_range_ids(self) -> dict[int, int]:
        """Every shard's current range id: a process whose lease was taken finds out here."""

    @abc.abstractmethod
    async def heartbeat(self, host: HostRecord, lease_s: float) -> list[HostRecord]:
        """Renew `host`'s membership and return every host renewed within `lease_s` seconds."""

    @abc.abstractmethod
    async def leave(self, host_id: str) -> None:
        """Drop a host's membership at once (a clean shutdown)."""

    # Connected clusters
    @abc.abstractmethod
    async def cluster_id(self, new_id: str) -> str:
        """This cluster's id: `new_id`, recorded on first use; the recorded one afterwards."""

    @abc.abstractmethod
    async def list_remote_clusters(self) -> list[RemoteClusterRecord]: ...

    @abc.abstractmethod
    async def save_remote_cluster(self, record: RemoteClusterRecord) -> None:
        """Insert or replace (by name)."""

    @abc.abstractmethod
    async def delete_remote_cluster(self, name: str) -> None: ...

    # Namespaces
    @abc.abstractmethod
    async def list_namespaces(self) -> list[NamespaceRecord]: ...

    @abc.abstractmethod
    async def create_namespace(self, record: NamespaceRecord) -> None:
        """Insert; raises ConditionFailedError when the name or id exists."""

    @abc.abstractmethod
    async def update_namespace(self, record: NamespaceRecord) -> None:
        """Replace the namespace's name, description and versions (found by its id)."""

    @abc.abstractmethod
    async def delete_namespace(self, namespace_id: str) -> None:
        """Delete the namespace and everything of its: executions, history, tasks, visibility,
        search attributes, schedules, worker deployments."""

    # Custom search attributes
    @abc.abstractmethod
    async def list_search_attributes(self) -> list[SearchAttributeRecord]:
        """Every namespace's custom search attributes."""

    @abc.abstractmethod
    async def update_search_attributes(
        self, namespace_id: str, upserts: list[SearchAttributeRecord], deletions: list[str]
    ) -> None:
        """Add (or replace) `upserts` and drop the names in `deletions`, in one transaction."""

    # Executions
    @abc.abstractmethod
    async def get_current_execution(
        self, namespace_id: str, workflow_id: str
    ) -> CurrentExecution | None: ...

    @abc.abstractmethod
    async def get_execution(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None: ...

    @abc.abstractmethod
    async def read_events(
        self, namespace_id: str, workflow_id: str, run_id: str, first_event_id: int, limit: int
    ) -> list[bytes]:
        """Serialized history events with id >= first_event_id, in order, at most `limit`."""

    # Replication between clusters
    @abc.abstractmethod
    async def read_replication_tasks(
        self, shard_id: int, after_task_id: int, limit: int
    ) -> list[ReplicationTaskRecord]:
        """The shard's replication tasks after `after_task_id`, in task id order."""

    @abc.abstractmethod
    async def delete_replication_tasks(self, shard_id: int, up_to_task_id: int) -> None:
        """Drop the shard's replication tasks every other cluster has applied."""

    @abc.abstractmethod
    async def last_replication_task_ids(self) -> dict[int, int]:
        """Per shard with replication tasks not yet applied everywhere, its last task id."""

    @abc.abstractmethod
    async def replication_watermark(self, source_cluster: str, shard_id: int) -> int:
        """The last task id of `source_cluster`'s shard applied here (0: none)."""

    @abc.abstractmethod
    async def advance_replication_watermark(
        self, source_cluster: str, shard_id: int, task_id: int
    ) -> None:
        """Move the watermark to `task_id` (never back), outside any transition."""

    @abc.abstractmethod
    async def replication_watermarks(self) -> list[ReplicationProgress]:
        """Every watermark here, by source cluster and shard."""

    @abc.abstractmethod
    async def acknowledge_replication(
        self, target_cluster: str, shard_id: int, task_id: int
    ) -> None:
        """Record that `target_cluster` has applied the shard's tasks up to `task_id` (an
        acknowledgement never moves back)."""

    @abc.abstractmethod
    async def replication_acks(self) -> list[ReplicationProgress]:
        """Every other cluster's acknowledgement of this one's shards."""

    @abc.abstractmethod
    async def replication_backlog(
        self, shard_id: int, after_task_id: int, namespace_id: str = ""
    ) -> tuple[int, int]:
        """(count, highest task id; 0 without any) of the shard's replication tasks after
        `after_task_id` (of the namespace `namespace_id` only, when given)."""

    @abc.abstractmethod
    async def add_to_replication_dlq(
        self, record: ReplicationDLQRecord, watermark: ReplicationAck
    ) -> None:
        """Set the task aside and move its shard's watermark to `watermark` (never back), in
        one transaction."""

    @abc.abstractmethod
    async def list_replication_dlq(self) -> list[ReplicationDLQRecord]: ...

    @abc.abstractmethod
    async def hidden_branches(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> list[HiddenBranch]:
        """The branches of a run that lost a conflict, in the order they were named."""

    @abc.abstractmethod
    async def branches_to_reapply(self, shard_id: int) -> list[HiddenBranch]:
        """The shard's hidden branches whose events are not yet re-applied, but those set
        aside."""

    @abc.abstractmethod
    async def mark_reapplied(
        self, namespace_id: str, workflow_id: str, run_id: str, branch: str
    ) -> None: ...

    @abc.abstractmethod
    async def set_aside_branch(
        self, namespace_id: str, workflow_id: str, run_id: str, branch: str, time_ns: int
    ) -> None:
        """Mark the branch set aside (at `time_ns`): no longer among `branches_to_reapply`."""

    @abc.abstractmethod
    async def release_set_aside_branches(self, shard_id: int) -> None:
        """Clear the set-aside mark of the shard's hidden branches."""

    @abc.abstractmethod
    async def set_aside_branch_counts(self) -> dict[str, int]:
        """How many hidden branches are set aside, per namespace id that has any."""

    @abc.abstractmethod
    async def replication_dlq_sizes(self) -> dict[tuple[str, int], int]:
        """The DLQ's task count per (source cluster, shard) that has any."""

    @abc.abstractmethod
    async def delete_replication_dlq(
        self, source_cluster: str, shard_id: int, task_id: int
    ) -> None: ...

    @abc.abstractmethod
    async def commits_landed(self) -> None:
        """Wait until every transition handed to `commit` so far has been written (or
        refused)."""

    @abc.abstractmethod
    async def read_event_batches_reverse(
        self, namespace_id: str, workflow_id: str, run_id: str, last_event_id: int, batches: int
    ) -> list[bytes]:
        """Serialized history events of the last `batches` batches up to `last_event_id` (a
        batch's last event), newest first."""

    @abc.abstractmethod
    async def commit(self, tx: ExecutionTransaction) -> None:
        """Apply a transition atomically; raises ConditionFailedError / ShardOwnershipLostError."""

    # Tasks
    @abc.abstractmethod
    async def load_timer_tasks(
        self, shard_id: int, after_ns: int = -1, until_ns: int = MAX_TIME_NS
    ) -> list[TimerTask]:
        """The shard's timer tasks due after `after_ns` and by `until_ns`, soonest first."""

    @abc.abstractmethod
    async def load_queue_tasks(self, shard_id: int) -> list[QueueTask]: ...

    @abc.abstractmethod
    async def delete_queue_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        """Drop backlog tasks found stale (their execution moved on or is gone)."""

    @abc.abstractmethod
    async def delete_execution(
        self,
        shard_id: int,
        range_id: int,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        timer_task_ids: list[int],
    ) -> None:
        """Delete a run: its events, state, visibility row, the current-run pointer if it is
        the current run, and the given timer tasks, in one transaction fenced by the shard's
        range id (ShardOwnershipLostError)."""

    @abc.abstractmethod
    async def delete_timer_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        """Drop timer tasks whose execution is gone."""

    # Schedules
    @abc.abstractmethod
    async def save_schedule(
        self, record: ScheduleRecord, range_id: int, expected_version: int | None
    ) -> None:
        """Insert (`expected_version` None) or replace the schedule at `expected_version`;
        ConditionFailedError / ShardOwnershipLostError as for `commit`."""

    @abc.abstractmethod
    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str
    ) -> None: ...

    @abc.abstractmethod
    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None: ...

    @abc.abstractmethod
    async def list_schedules(
        self, namespace_id: str | None = None, shard_id: int | None = None
    ) -> list[ScheduleRecord]:
        """A namespace's schedules, or a shard's (by schedule id)."""

    # Batch operations (fenced by the shard of their job id)
    @abc.abstractmethod
    async def save_batch_operation(
        self, record: BatchOperationRecord, range_id: int, expected_version: int | None
    ) -> None:
        """Insert (`expected_version` None; ConditionFailedError when the job id exists in the
        namespace) or replace the job at `expected_version`; ShardOwnershipLostError as for
        `commit`."""

    @abc.abstractmethod
    async def get_batch_operation(
        self, namespace_id: str, job_id: str
    ) -> BatchOperationRecord | None: ...

    @abc.abstractmethod
    async def list_batch_operations(
        self, namespace_id: str | None = None, shard_id: int | None = None, running: bool = False
    ) -> list[BatchOperationRecord]:
        """A namespace's jobs (newest first, `targets` left empty), or a shard's; `running`:
        only those still running (with their targets)."""

    # Worker deployments (namespace-level, like namespaces: not fenced by a shard)
    @abc.abstractmethod
    async def save_deployment(self, record: DeploymentRecord, expected_version: int | None) -> None:
        """Insert (`expected_version` None) or replace the deployment at `expected_version`;
        ConditionFailedError when it exists already (insert) or changed meanwhile (replace)."""

    @abc.abstractmethod
    async def delete_deployment(self, namespace_id: str, name: str) -> None: ...

    @abc.abstractmethod
    async def list_deployments(self, namespace_id: str | None = None) -> list[DeploymentRecord]:
        """All deployments (of a namespace), by namespace id then name."""

    # Visibility
    @abc.abstractmethod
    async def list_visibility(self, namespace_id: str) -> list[VisibilityRecord]: ...

    @abc.abstractmethod
    async def query_visibility(
        self,
        namespace_id: str,
        where: VisibilityFilter,
        after: VisibilityKey | None,
        limit: int,
    ) -> list[VisibilityRecord]:
        """Up to `limit` rows passing `where`, in the default list order (open runs first, then
        close time and start time descending, run id ascending), from just after `after`."""

    @abc.abstractmethod
    async def count_visibility(
        self, namespace_id: str, where: VisibilityFilter, group_by: str | None
    ) -> list[tuple[Any, int]]:
        """How many rows pass `where`: [(None, count)], or a count per value of the column
        `group_by` (`status` or `namespace_division`)."""

    @abc.abstractmethod
    async def upsert_visibility(self, records: Sequence[VisibilityRecord]) -> None:
        """Write visibility rows alone (benches and tools; executions commit theirs)."""

    @abc.abstractmethod
    async def count_open_executions(self) -> dict[str, int]:
        """Running executions per namespace id (namespaces with none are left out)."""

    @abc.abstractmethod
    async def create_api_key(self, record: ApiKeyRecord) -> None: ...

    @abc.abstractmethod
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    @abc.abstractmethod
    async def disable_api_key(self, key_id: str) -> bool:
        """False when there is no such key."""

    @abc.abstractmethod
    async def delete_api_key(self, key_id: str) -> bool:
        """False when there is no such key."""

    @abc.abstractmethod
    async def save_nexus_endpoint(
        self, record: NexusEndpointRecord, expected_version: int | None
    ) -> None:
        """Create the endpoint (`expected_version` None) or update the one at that version;
        ConditionFailedError when its id or name is taken, or its version has moved on."""

    @abc.abstractmethod
    async def get_nexus_endpoint(self, endpoint_id: str) -> NexusEndpointRecord | None: ...

    @abc.abstractmethod
    async def find_nexus_endpoint(self, name: str) -> NexusEndpointRecord | None:
        """The endpoint of that name, if any."""

    @abc.abstractmethod
    async def list_nexus_endpoints(self, after_id: str, limit: int) -> list[NexusEndpointRecord]:
        """Up to `limit` endpoints with ids after `after_id`, in id order."""

    @abc.abstractmethod
    async def delete_nexus_endpoint(self, endpoint_id: str) -> bool:
        """False when there is no such endpoint."""

    @abc.abstractmethod
    async def append_audit(self, records: Sequence[AuditRecord]) -> None: ...

    @abc.abstractmethod
    async def list_audit(
        self, since_ns: int, namespace: str | None, limit: int
    ) -> list[AuditRecord]:
        """The oldest `limit` records at or after `since_ns` (of `namespace`, if given)."""

    @abc.abstractmethod
    async def delete_audit_before(self, time_ns: int) -> int:
        """Delete the records older than `time_ns`; how many there were."""

    def connections(self) -> tuple[int, int]:
        """Database connections: (in use, open)."""
        return 0, 0
