"""The schema, written once: its parts, the schema version that added each part on each
dialect, and the column types as each dialect spells them.

A part's DDL names its types `{bigint}`, `{blob}`, `{boolean}`, `{double}` and the hosts' `{last_seen}`
column. The dialects released the parts in different steps, so their version numbers differ
(SQLite records its version in `PRAGMA user_version`, PostgreSQL in the `schema_version` table).
Never edit a released part: add a new one to `RELEASES` with the next version of each dialect.
"""

from __future__ import annotations

from collections.abc import Sequence

from aion.persistence.store import check_schema_version

EXECUTIONS = """
CREATE TABLE shards (
    shard_id INTEGER PRIMARY KEY,
    range_id {bigint} NOT NULL,
    owner TEXT NOT NULL
);
CREATE TABLE namespaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data {blob} NOT NULL,
    notification_version {bigint} NOT NULL
);
CREATE TABLE current_executions (
    shard_id INTEGER NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    running {boolean} NOT NULL,
    status INTEGER NOT NULL,
    start_request_id TEXT NOT NULL,
    start_time_ns {bigint} NOT NULL,
    PRIMARY KEY (namespace_id, workflow_id)
);
CREATE TABLE executions (
    shard_id INTEGER NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state {blob} NOT NULL,
    db_version {bigint} NOT NULL,
    PRIMARY KEY (namespace_id, workflow_id, run_id)
);
CREATE TABLE history_events (
    shard_id INTEGER NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event_id {bigint} NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (namespace_id, workflow_id, run_id, event_id)
);
CREATE TABLE timer_tasks (
    shard_id INTEGER NOT NULL,
    task_id {bigint} NOT NULL,
    fire_time_ns {bigint} NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (shard_id, task_id)
);
CREATE TABLE queue_tasks (
    shard_id INTEGER NOT NULL,
    task_id {bigint} NOT NULL,
    namespace_id TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    scheduled_event_id {bigint} NOT NULL,
    stamp {bigint} NOT NULL,
    create_time_ns {bigint} NOT NULL,
    PRIMARY KEY (shard_id, task_id)
);
CREATE TABLE visibility (
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status INTEGER NOT NULL,
    start_time_ns {bigint} NOT NULL,
    execution_time_ns {bigint} NOT NULL,
    close_time_ns {bigint} NOT NULL,
    history_length {bigint} NOT NULL,
    memo {blob} NOT NULL,
    search_attributes {blob} NOT NULL,
    parent_workflow_id TEXT NOT NULL,
    parent_run_id TEXT NOT NULL,
    root_workflow_id TEXT NOT NULL,
    root_run_id TEXT NOT NULL,
    PRIMARY KEY (namespace_id, run_id)
);
CREATE INDEX visibility_by_start ON visibility (namespace_id, start_time_ns);
"""

TIMERS_BY_FIRE_TIME = """
CREATE INDEX timer_tasks_by_fire_time ON timer_tasks (shard_id, fire_time_ns);
"""

SEARCH_ATTRIBUTES = """
CREATE TABLE search_attributes (
    namespace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (namespace_id, name)
);
"""

MEMBERSHIP = """
CREATE TABLE cluster_metadata (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE hosts (
    host_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    {last_seen} NOT NULL
);
"""

SCHEDULES = """
CREATE TABLE schedules (
    shard_id INTEGER NOT NULL,
    namespace_id TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    state TEXT NOT NULL,
    version {bigint} NOT NULL,
    PRIMARY KEY (namespace_id, schedule_id)
);
CREATE INDEX schedules_by_shard ON schedules (shard_id);
"""

WORKER_DEPLOYMENTS = """
CREATE TABLE worker_deployments (
    namespace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    version {bigint} NOT NULL,
    PRIMARY KEY (namespace_id, name)
);
ALTER TABLE queue_tasks ADD COLUMN version TEXT NOT NULL DEFAULT '';
"""

BATCH_OPERATIONS = """
CREATE TABLE batch_operations (
    namespace_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    shard_id INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    request {blob} NOT NULL,
    state INTEGER NOT NULL,
    start_time_ns {bigint} NOT NULL,
    close_time_ns {bigint} NOT NULL,
    targets TEXT NOT NULL,
    total {bigint} NOT NULL,
    position {bigint} NOT NULL,
    succeeded {bigint} NOT NULL,
    failed {bigint} NOT NULL,
    version {bigint} NOT NULL,
    PRIMARY KEY (namespace_id, job_id)
);
CREATE INDEX batch_operations_by_shard ON batch_operations (shard_id, state);
CREATE INDEX batch_operations_by_start ON batch_operations (namespace_id, start_time_ns);
"""

# Aion-managed API keys (`aion.auth.apikeys`): only a hash of each secret is kept. The audit
# log (`aion.auth.audit`): who did what, by time.
SECURITY = """
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    namespace TEXT NOT NULL,
    role TEXT NOT NULL,
    description TEXT NOT NULL,
    created_ns {bigint} NOT NULL,
    expires_ns {bigint} NOT NULL,
    disabled {boolean} NOT NULL
);
CREATE TABLE audit_log (
    time_ns {bigint} NOT NULL,
    subject TEXT NOT NULL,
    auth_type TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    method TEXT NOT NULL,
    namespace TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (time_ns);
"""

# Visibility queried in SQL (`aion.visibility.sql`): the system attributes the reference fills
# as columns, the default list order (open runs first, then CloseTime, StartTime descending,
# RunId) as an index that keyset pages walk, and one index per selective system attribute
# (compared with `=` in the database's collation; only run_id, an order key, is by code point).
VISIBILITY_IN_SQL = """
ALTER TABLE visibility ADD COLUMN history_size_bytes {bigint} NOT NULL DEFAULT 0;
ALTER TABLE visibility ADD COLUMN state_transition_count {bigint} NOT NULL DEFAULT 0;
ALTER TABLE visibility ADD COLUMN namespace_division TEXT;
CREATE INDEX visibility_in_order ON visibility (namespace_id, {close_order} DESC,
    start_time_ns DESC, run_id{byte_order});
CREATE INDEX visibility_by_type ON visibility (namespace_id, workflow_type,
    {close_order} DESC, start_time_ns DESC, run_id{byte_order});
CREATE INDEX visibility_by_status ON visibility (namespace_id, status,
    {close_order} DESC, start_time_ns DESC, run_id{byte_order});
CREATE INDEX visibility_by_workflow_id ON visibility (namespace_id, workflow_id,
    {close_order} DESC, start_time_ns DESC, run_id{byte_order});
CREATE INDEX visibility_by_task_queue ON visibility (namespace_id, task_queue,
    {close_order} DESC, start_time_ns DESC, run_id{byte_order});
CREATE INDEX visibility_by_parent ON visibility (namespace_id, parent_workflow_id);
CREATE INDEX visibility_by_root ON visibility (namespace_id, root_workflow_id);
"""

# Custom (and predefined non-system) search attribute values indexed for List and Count
# (`aion.persistence.sql.visibility.search_attribute_rows`): one row per value of a run's
# attribute, by each type the value decodes as (the attribute's type is the namespace's at query
# time). Integers, booleans and datetimes (in microseconds) share `int_value`; Keywords and
# KeywordList items are UTF-8 bytes, so they compare by code point on both databases and a
# prefix is a range. Each value index is partial (a row fills one value column) and covering.
VISIBILITY_SEARCH_ATTRIBUTES = """
CREATE TABLE visibility_search_attributes (
    namespace_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type INTEGER NOT NULL,
    int_value {bigint},
    double_value {double},
    keyword_value {blob}
);
CREATE INDEX visibility_search_attributes_by_run
    ON visibility_search_attributes (namespace_id, run_id);
CREATE INDEX visibility_search_attributes_by_int
    ON visibility_search_attributes (namespace_id, name, type, int_value, run_id)
    WHERE int_value IS NOT NULL;
CREATE INDEX visibility_search_attributes_by_double
    ON visibility_search_attributes (namespace_id, name, type, double_value, run_id)
    WHERE double_value IS NOT NULL;
CREATE INDEX visibility_search_attributes_by_keyword
    ON visibility_search_attributes (namespace_id, name, type, keyword_value, run_id)
    WHERE keyword_value IS NOT NULL;
"""

# Global namespaces (`aion.cluster_metadata`, `aion.replication`): the clusters this one is
# connected to, and each namespace's config version (a replicated change applies when newer).
GLOBAL_NAMESPACES = """
CREATE TABLE remote_clusters (
    name TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    address TEXT NOT NULL,
    http_address TEXT NOT NULL,
    initial_failover_version {bigint} NOT NULL,
    failover_version_increment {bigint} NOT NULL,
    history_shard_count INTEGER NOT NULL,
    global_namespace_enabled {boolean} NOT NULL,
    connection_enabled {boolean} NOT NULL,
    replication_enabled {boolean} NOT NULL
);
ALTER TABLE namespaces ADD COLUMN config_version {bigint} NOT NULL DEFAULT 0;
"""

# The Nexus endpoint registry (OperatorService's *NexusEndpoint): the API's `Endpoint` message
# serialized in `data`, its name unique, listed in id order (by code point, as the reference's
# UUID bytes order), each row versioned for the optimistic check of updates.
NEXUS_ENDPOINTS = """
CREATE TABLE nexus_endpoints (
    id TEXT{byte_order} PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    version {bigint} NOT NULL,
    data {blob} NOT NULL
);
"""

# Each event's batch (the events one transition appended, named by its first event id), which
# GetWorkflowExecutionHistoryReverse pages by, as the reference does. Events written before it
# count as batches of their own.
HISTORY_EVENT_BATCHES = """
ALTER TABLE history_events ADD COLUMN batch_first_event_id {bigint} NOT NULL DEFAULT 0;
UPDATE history_events SET batch_first_event_id = event_id;
"""

# History replication (`aion.replication.history`): the transitions of executions in global
# namespaces active here, kept until the other clusters have applied them, how far this
# cluster has applied each shard of another cluster's, and the replicated tasks that kept
# failing here (the DLQ).
HISTORY_REPLICATION = """
CREATE TABLE replication_tasks (
    shard_id INTEGER NOT NULL,
    task_id {bigint} NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    first_event_id {bigint} NOT NULL,
    next_event_id {bigint} NOT NULL,
    version {bigint} NOT NULL,
    state {blob} NOT NULL,
    tasks TEXT NOT NULL,
    create_time_ns {bigint} NOT NULL,
    PRIMARY KEY (shard_id, task_id)
);
CREATE TABLE replication_watermarks (
    source_cluster TEXT NOT NULL,
    shard_id INTEGER NOT NULL,
    task_id {bigint} NOT NULL,
    PRIMARY KEY (source_cluster, shard_id)
);
CREATE TABLE replication_dlq (
    source_cluster TEXT NOT NULL,
    shard_id INTEGER NOT NULL,
    task_id {bigint} NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task {blob} NOT NULL,
    error TEXT NOT NULL,
    create_time_ns {bigint} NOT NULL,
    PRIMARY KEY (source_cluster, shard_id, task_id)
);
"""

# Conflict resolution (`HistoryEngine.apply_replicated`): the events of a losing branch, hidden
# from history but kept, by the branch they formed (named when they were set aside), and whether
# their signals, cancel requests and terminations were re-applied on the winning branch.
HIDDEN_BRANCHES = """
CREATE TABLE hidden_history_events (
    shard_id INTEGER NOT NULL,
    namespace_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    branch TEXT NOT NULL,
    event_id {bigint} NOT NULL,
    data {blob} NOT NULL,
    reapplied {boolean} NOT NULL,
    PRIMARY KEY (namespace_id, workflow_id, run_id, branch, event_id)
);
CREATE INDEX hidden_history_events_pending ON hidden_history_events (shard_id, reapplied);
"""

# Replication status and durable acknowledgements (`aion replication status`): when each
# watermark last moved, and how far each other cluster has applied this one's shards (as its
# last pull said), which every process serving the pulls shares.
REPLICATION_ACKS = """
ALTER TABLE replication_watermarks ADD COLUMN update_time_ns {bigint} NOT NULL DEFAULT 0;
CREATE TABLE replication_acks (
    target_cluster TEXT NOT NULL,
    shard_id INTEGER NOT NULL,
    task_id {bigint} NOT NULL,
    update_time_ns {bigint} NOT NULL,
    PRIMARY KEY (target_cluster, shard_id)
);
"""

# Re-applies set aside (`aion.replication.history`): when a hidden branch was set aside after
# repeated failures (0: it is not), so that a restart does not try it again and a gauge counts
# it; `aion replication dlq merge` clears the mark.
HIDDEN_BRANCHES_SET_ASIDE = """
ALTER TABLE hidden_history_events ADD COLUMN set_aside_time_ns {bigint} NOT NULL DEFAULT 0;
CREATE INDEX hidden_history_events_set_aside ON hidden_history_events (set_aside_time_ns);
"""

CLOSE_ORDER = "(CASE WHEN close_time_ns = 0 THEN 9223372036854775807 ELSE close_time_ns END)"
"""The first key of the default list order: open runs (no close time) first."""

DIALECTS = ("sqlite", "postgres")  # the columns of RELEASES and TYPES

# Each part with the version that added it on SQLite and on PostgreSQL (None: not there).
RELEASES: list[tuple[str, int | None, int | None]] = [
    (EXECUTIONS, 1, 1),
    (TIMERS_BY_FIRE_TIME, None, 1),
    (SEARCH_ATTRIBUTES, 2, 1),
    (MEMBERSHIP, 3, 2),
    (SCHEDULES, 4, 3),
    (WORKER_DEPLOYMENTS, 5, 4),
    (VISIBILITY_IN_SQL, 6, 5),
    (BATCH_OPERATIONS, 7, 6),
    (VISIBILITY_SEARCH_ATTRIBUTES, 8, 7),
    (SECURITY, 9, 8),
    (GLOBAL_NAMESPACES, 10, 9),
    (NEXUS_ENDPOINTS, 11, 10),
    (HISTORY_EVENT_BATCHES, 11, 10),
    (HISTORY_REPLICATION, 12, 11),
    (REPLICATION_ACKS, 13, 12),
    (HIDDEN_BRANCHES, 14, 13),
    (HIDDEN_BRANCHES_SET_ASIDE, 15, 14),
]

TYPES = {
    "bigint": ("INTEGER", "BIGINT"),
    "blob": ("BLOB", "BYTEA"),
    "double": ("REAL", "DOUBLE PRECISION"),
    "boolean": ("INTEGER", "BOOLEAN"),
    "last_seen": ("last_seen_ns INTEGER", "last_seen TIMESTAMPTZ"),
    "byte_order": ("", ' COLLATE "C"'),
    "close_order": (CLOSE_ORDER, CLOSE_ORDER),
}


def migrations(dialect: str) -> list[str]:
    """A dialect's migrations: entry n (from 0) upgrades its schema from version n to n + 1."""
    column = DIALECTS.index(dialect)
    types = {name: spellings[column] for name, spellings in TYPES.items()}
    steps: dict[int, list[str]] = {}
    for part, *versions in RELEASES:
        version = versions[column]
        if version is not None:
            steps.setdefault(version, []).append(part.format_map(types))
    return ["".join(steps[version]) for version in range(1, len(steps) + 1)]


def added_in(part: str, dialect: str) -> int | None:
    """The version of `dialect`'s schema that added `part`."""
    column = DIALECTS.index(dialect)
    return next(versions[column] for p, *versions in RELEASES if p == part)


def pending_migrations(
    found: int, migrations: Sequence[str], upgrade: bool = True
) -> list[tuple[int, str]]:
    """(version reached, DDL) of each migration a schema at version `found` still needs. A newer
    schema is refused, and unless `upgrade` so is an older one (an empty one is always set up)."""
    check_schema_version(found, len(migrations), upgrade)
    return [(version + 1, migrations[version]) for version in range(found, len(migrations))]
