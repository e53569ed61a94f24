"""The schema, written once: each part's DDL names its column types `{bigint}`, `{blob}`,
`{boolean}` and the hosts' `{last_seen}` column, which a dialect fills in.

The dialects released the parts in different steps, so each keeps its own list of migrations
(`aion.persistence.sqlite.MIGRATIONS`, `aion.persistence.postgres.MIGRATIONS`) and its version
numbers keep meaning what they meant. Never edit a released part; add a new one and append a
migration to each dialect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def render_migrations(steps: Sequence[Sequence[str]], types: Mapping[str, str]) -> list[str]:
    """One DDL script per migration: the parts of each step with the dialect's types."""
    return ["".join(part.format_map(types) for part in step) for step in steps]


def pending_migrations(
    found: int, migrations: Sequence[str], upgrade: bool = True
) -> list[tuple[int, str]]:
    """(version reached, DDL) of each migration a schema at version `found` still needs. A newer
    schema is refused, and unless `upgrade` so is an older one (an empty one is always set up)."""
    check_schema_version(found, len(migrations), upgrade)
    return [(version + 1, migrations[version]) for version in range(found, len(migrations))]
