"""Every statement of the shared logic, rendered once per dialect, and the getters that turn a
record into its row.

The column lists follow the records' fields, so a fetched row builds its record (`Record(*row)`)
and `attrgetter(*columns)` builds a row from a record in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from aion.persistence.sql.dialect import Dialect
from aion.persistence.sql.visibility import (
    DELETE_SEARCH_ATTRIBUTES,
    INSERT_SEARCH_ATTRIBUTE,
    VisibilityQueries,
    namespace_division,
)
from aion.persistence.store import VisibilityRecord

NAMESPACE = ("id", "name", "data", "notification_version", "config_version")
REMOTE_CLUSTER = (
    "name",
    "cluster_id",
    "address",
    "http_address",
    "initial_failover_version",
    "failover_version_increment",
    "history_shard_count",
    "global_namespace_enabled",
    "connection_enabled",
    "replication_enabled",
)
REPLICATION_TASK = (
    "shard_id",
    "task_id",
    "namespace_id",
    "workflow_id",
    "run_id",
    "first_event_id",
    "next_event_id",
    "version",
    "state",
    "tasks",
    "create_time_ns",
)
REPLICATION_DLQ = (
    "source_cluster",
    "shard_id",
    "task_id",
    "namespace_id",
    "workflow_id",
    "run_id",
    "task",
    "error",
    "create_time_ns",
)
SEARCH_ATTRIBUTE = ("namespace_id", "name", "type", "field")
CURRENT_EXECUTION = (
    "namespace_id",
    "workflow_id",
    "run_id",
    "running",
    "status",
    "start_request_id",
    "start_time_ns",
)
EXECUTION = ("shard_id", "namespace_id", "workflow_id", "run_id", "state", "db_version")
HIDDEN_EVENT = (
    "shard_id",
    "namespace_id",
    "workflow_id",
    "run_id",
    "branch",
    "event_id",
    "data",
    "reapplied",
)
EVENT = (
    "shard_id",
    "namespace_id",
    "workflow_id",
    "run_id",
    "event_id",
    "data",
    "batch_first_event_id",
)
TIMER_TASK = (
    "shard_id",
    "task_id",
    "fire_time_ns",
    "namespace_id",
    "workflow_id",
    "run_id",
    "kind",
    "data",
)
QUEUE_TASK = (
    "task_id",
    "namespace_id",
    "task_queue",
    "kind",
    "workflow_id",
    "run_id",
    "scheduled_event_id",
    "shard_id",
    "stamp",
    "create_time_ns",
    "version",
)
VISIBILITY = (
    "namespace_id",
    "workflow_id",
    "run_id",
    "workflow_type",
    "task_queue",
    "status",
    "start_time_ns",
    "execution_time_ns",
    "close_time_ns",
    "history_length",
    "memo",
    "search_attributes",
    "parent_workflow_id",
    "parent_run_id",
    "root_workflow_id",
    "root_run_id",
    "history_size_bytes",
    "state_transition_count",
)
SCHEDULE = ("shard_id", "namespace_id", "schedule_id", "state", "version")
DEPLOYMENT = ("namespace_id", "name", "state", "version")
BATCH_OPERATION = (
    "namespace_id",
    "job_id",
    "shard_id",
    "run_id",
    "request",
    "state",
    "start_time_ns",
    "close_time_ns",
    "targets",
    "total",
    "position",
    "succeeded",
    "failed",
    "version",
)

current_row = attrgetter(*CURRENT_EXECUTION)
timer_task_row = attrgetter(*TIMER_TASK)
queue_task_row = attrgetter(*QUEUE_TASK)
_visibility_columns = attrgetter(*VISIBILITY)


def visibility_row(record: VisibilityRecord) -> tuple[Any, ...]:
    """A visibility row: the record's columns and the namespace division of its attributes."""
    return (*_visibility_columns(record), namespace_division(record.search_attributes))


schedule_row = attrgetter(*SCHEDULE)
API_KEY = (
    "key_id",
    "secret_hash",
    "namespace",
    "role",
    "description",
    "created_ns",
    "expires_ns",
    "disabled",
)
AUDIT = (
    "time_ns",
    "subject",
    "auth_type",
    "credential_id",
    "method",
    "namespace",
    "workflow_id",
    "result",
)
NEXUS_ENDPOINT = ("id", "name", "version", "data")
deployment_row = attrgetter(*DEPLOYMENT)
remote_cluster_row = attrgetter(*REMOTE_CLUSTER)
replication_task_row = attrgetter(*REPLICATION_TASK)
replication_dlq_row = attrgetter(*REPLICATION_DLQ)
namespace_row = attrgetter(*NAMESPACE)
nexus_endpoint_row = attrgetter(*NEXUS_ENDPOINT)
api_key_row = attrgetter(*API_KEY)
audit_row = attrgetter(*AUDIT)
batch_operation_row = attrgetter(*BATCH_OPERATION)


def _select(table: str, columns: Sequence[str], where: str = "") -> str:
    return f"SELECT {', '.join(columns)} FROM {table}" + (f" WHERE {where}" if where else "")


def _insert(table: str, columns: Sequence[str]) -> str:
    markers = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({markers})"


def _insert_new(table: str, columns: Sequence[str]) -> str:
    """An insert that changes no row when the key exists already."""
    return _insert(table, columns) + " ON CONFLICT DO NOTHING"


def _upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    changes = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return _insert(table, columns) + f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {changes}"


class Statements:
    """The statements for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        d, q = dialect, dialect.render
        run = "namespace_id = ? AND workflow_id = ? AND run_id = ?"
        workflow = "namespace_id = ? AND workflow_id = ?"

        # Shards, their count and the hosts sharing them
        self.shard_range_ids = q("SELECT shard_id, range_id FROM shards")
        self.shard_range_id = q("SELECT range_id FROM shards WHERE shard_id = ?")
        self.check_range = q("SELECT range_id FROM shards WHERE shard_id = ?" + d.lock("SHARE"))
        self.take_shard = q(
            "INSERT INTO shards (shard_id, range_id, owner) VALUES (?, 1, ?) "
            "ON CONFLICT (shard_id) DO UPDATE SET range_id = shards.range_id + 1, "
            "owner = excluded.owner"
        )
        self.record_cluster_value = q(
            "INSERT INTO cluster_metadata (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING"
        )
        self.cluster_value = q("SELECT value FROM cluster_metadata WHERE name = ?")
        self.delete_host = q("DELETE FROM hosts WHERE host_id = ?")
        self.list_remote_clusters = q(
            _select("remote_clusters", REMOTE_CLUSTER) + " ORDER BY name" + d.byte_order
        )
        self.upsert_remote_cluster = q(_upsert("remote_clusters", REMOTE_CLUSTER, ("name",)))
        self.delete_remote_cluster = q("DELETE FROM remote_clusters WHERE name = ?")

        # Namespaces and their search attributes
        self.list_namespaces = q(_select("namespaces", NAMESPACE) + " ORDER BY name" + d.byte_order)
        self.insert_namespace = q(_insert_new("namespaces", NAMESPACE))
        self.update_namespace = q(
            "UPDATE namespaces SET name = ?, data = ?, notification_version = ?, "
            "config_version = ? WHERE id = ?"
        )
        self.list_search_attributes = q(
            _select("search_attributes", SEARCH_ATTRIBUTE)
            + f" ORDER BY namespace_id{d.byte_order}, name{d.byte_order}"
        )
        self.delete_search_attributes = q(
            "DELETE FROM search_attributes WHERE namespace_id = ? AND name" + d.one_of
        )
        self.upsert_search_attribute = q(
            _upsert("search_attributes", SEARCH_ATTRIBUTE, ("namespace_id", "name"))
        )

        # Executions: the current-run pointer, the mutable state row, history
        self.get_current_execution = q(_select("current_executions", CURRENT_EXECUTION, workflow))
        self.current_run_id = q(
            _select("current_executions", ("run_id",), workflow) + d.lock("UPDATE")
        )
        self.insert_current_execution = q(
            _insert_new("current_executions", ("shard_id", *CURRENT_EXECUTION))
        )
        self.update_current_execution = q(
            "UPDATE current_executions SET shard_id = ?, run_id = ?, running = ?, status = ?, "
            f"start_request_id = ?, start_time_ns = ? WHERE {workflow}"
        )
        self.get_execution = q(_select("executions", EXECUTION, run))
        self.insert_execution = q(_insert_new("executions", EXECUTION))
        self.update_execution = q(
            f"UPDATE executions SET state = ?, db_version = ? WHERE {run} AND db_version = ?"
        )
        self.read_events = q(
            _select("history_events", ("data",), f"{run} AND event_id >= ?")
            + " ORDER BY event_id LIMIT ?"
        )
        self.insert_event = q(_insert("history_events", EVENT))
        last_batches = (
            "SELECT MIN(b) FROM (SELECT DISTINCT batch_first_event_id AS b FROM history_events "
            f"WHERE {run} AND event_id <= ? ORDER BY b DESC LIMIT ?) AS last_batches"
        )
        self.read_event_batches_reverse = q(
            _select(
                "history_events",
                ("data",),
                f"{run} AND event_id <= ? AND batch_first_event_id >= ({last_batches})",
            )
            + " ORDER BY event_id DESC"
        )

        # Branches that lost a conflict: hidden (moved out of history), read, re-applied
        self.insert_hidden_event = q(_insert("hidden_history_events", HIDDEN_EVENT))
        self.hide_events = q(
            f"INSERT INTO hidden_history_events ({', '.join(HIDDEN_EVENT)}) SELECT shard_id, "
            "namespace_id, workflow_id, run_id, ?, event_id, data, ? FROM history_events "
            f"WHERE {run} AND event_id > ?"
        )
        self.delete_events_after = q(f"DELETE FROM history_events WHERE {run} AND event_id > ?")
        hidden = (
            "namespace_id",
            "workflow_id",
            "run_id",
            "branch",
            "data",
            "reapplied",
            "set_aside_time_ns",
        )
        self.hidden_branches = q(
            _select("hidden_history_events", hidden, run)
            + f" ORDER BY branch{d.byte_order}, event_id"
        )
        self.branches_to_reapply = q(
            _select(
                "hidden_history_events",
                hidden,
                "shard_id = ? AND reapplied = ? AND set_aside_time_ns = 0",
            )
            + f" ORDER BY namespace_id, workflow_id, run_id, branch{d.byte_order}, event_id"
        )
        self.mark_reapplied = q(
            f"UPDATE hidden_history_events SET reapplied = ? WHERE {run} AND branch = ?"
        )
        self.set_aside_branch = q(
            f"UPDATE hidden_history_events SET set_aside_time_ns = ? WHERE {run} AND branch = ?"
        )
        self.release_set_aside_branches = q(
            "UPDATE hidden_history_events SET set_aside_time_ns = 0 "
            "WHERE shard_id = ? AND set_aside_time_ns > 0"
        )
        self.set_aside_branch_counts = q(
            "SELECT namespace_id, COUNT(*) FROM (SELECT DISTINCT namespace_id, workflow_id, "
            "run_id, branch FROM hidden_history_events WHERE set_aside_time_ns > 0) AS b "
            "GROUP BY namespace_id"
        )

        # Deleting a namespace: every row of its, then the namespace itself
        self.delete_namespace_rows = [
            q(f"DELETE FROM {table} WHERE namespace_id = ?")
            for table in (
                "current_executions",
                "executions",
                "history_events",
                "hidden_history_events",
                "timer_tasks",
                "queue_tasks",
                "replication_tasks",
                "replication_dlq",
                "visibility",
                "visibility_search_attributes",
                "search_attributes",
                "schedules",
                "worker_deployments",
                "batch_operations",
            )
        ]
        self.delete_namespace = q("DELETE FROM namespaces WHERE id = ?")

        # Deleting a closed run (its retention is over, or DeleteWorkflowExecution)
        self.delete_run_events = q(f"DELETE FROM history_events WHERE {run}")
        self.delete_run_hidden_events = q(f"DELETE FROM hidden_history_events WHERE {run}")
        self.delete_run_execution = q(f"DELETE FROM executions WHERE {run}")
        self.delete_run_current = q(f"DELETE FROM current_executions WHERE {run}")
        self.delete_run_visibility = q(
            "DELETE FROM visibility WHERE namespace_id = ? AND run_id = ? AND workflow_id = ?"
        )

        # Durable tasks
        self.load_timer_tasks = q(
            _select(
                "timer_tasks", TIMER_TASK, "shard_id = ? AND fire_time_ns > ? AND fire_time_ns <= ?"
            )
            + " ORDER BY fire_time_ns"
        )
        self.insert_timer_task = q(_insert("timer_tasks", TIMER_TASK))
        self.delete_timer_tasks = q(
            "DELETE FROM timer_tasks WHERE shard_id = ? AND task_id" + d.one_of
        )
        self.load_queue_tasks = q(
            _select("queue_tasks", QUEUE_TASK, "shard_id = ?") + " ORDER BY task_id"
        )
        self.insert_queue_task = q(_insert("queue_tasks", QUEUE_TASK))
        self.delete_queue_tasks = q(
            "DELETE FROM queue_tasks WHERE shard_id = ? AND task_id" + d.one_of
        )

        # Replication between clusters
        self.insert_replication_task = q(_insert("replication_tasks", REPLICATION_TASK))
        self.read_replication_tasks = q(
            _select("replication_tasks", REPLICATION_TASK, "shard_id = ? AND task_id > ?")
            + " ORDER BY task_id LIMIT ?"
        )
        self.delete_replication_tasks = q(
            "DELETE FROM replication_tasks WHERE shard_id = ? AND task_id <= ?"
        )
        self.last_replication_task_ids = q(
            "SELECT shard_id, MAX(task_id) FROM replication_tasks GROUP BY shard_id"
        )
        self.replication_watermark = q(
            "SELECT task_id FROM replication_watermarks WHERE source_cluster = ? AND shard_id = ?"
        )
        # Never back: transitions applied concurrently may commit out of task id order.
        self.upsert_replication_watermark = q(
            _upsert(
                "replication_watermarks",
                ("source_cluster", "shard_id", "task_id", "update_time_ns"),
                ("source_cluster", "shard_id"),
            )
            + " WHERE excluded.task_id > replication_watermarks.task_id"
        )
        self.replication_watermarks = q(
            "SELECT source_cluster, shard_id, task_id, update_time_ns FROM replication_watermarks"
            f" ORDER BY source_cluster{d.byte_order}, shard_id"
        )
        self.upsert_replication_ack = q(
            _upsert(
                "replication_acks",
                ("target_cluster", "shard_id", "task_id", "update_time_ns"),
                ("target_cluster", "shard_id"),
            )
            + " WHERE replication_acks.task_id < excluded.task_id"
        )
        self.replication_acks = q(
            "SELECT target_cluster, shard_id, task_id, update_time_ns FROM replication_acks"
            f" ORDER BY target_cluster{d.byte_order}, shard_id"
        )
        self.replication_backlog = q(
            "SELECT COUNT(*), MAX(task_id) FROM replication_tasks WHERE shard_id = ? AND task_id > ?"
        )
        self.replication_backlog_of_namespace = q(
            "SELECT COUNT(*), MAX(task_id) FROM replication_tasks"
            " WHERE shard_id = ? AND task_id > ? AND namespace_id = ?"
        )

        self.insert_replication_dlq = q(_insert_new("replication_dlq", REPLICATION_DLQ))
        self.list_replication_dlq = q(
            _select("replication_dlq", REPLICATION_DLQ)
            + f" ORDER BY source_cluster{d.byte_order}, shard_id, task_id"
        )
        self.replication_dlq_sizes = q(
            "SELECT source_cluster, shard_id, COUNT(*) FROM replication_dlq"
            " GROUP BY source_cluster, shard_id"
        )
        self.delete_replication_dlq = q(
            "DELETE FROM replication_dlq WHERE source_cluster = ? AND shard_id = ? AND task_id = ?"
        )

        # Visibility
        self.upsert_visibility = q(
            _upsert("visibility", (*VISIBILITY, "namespace_division"), ("namespace_id", "run_id"))
        )
        self.insert_search_attribute = q(INSERT_SEARCH_ATTRIBUTE)
        self.delete_search_attributes_of_run = q(DELETE_SEARCH_ATTRIBUTES)
        self.visibility = VisibilityQueries(d, VISIBILITY)
        self.list_visibility = q(
            _select("visibility", VISIBILITY, "namespace_id = ?") + " ORDER BY start_time_ns DESC"
        )
        self.count_open_executions = q(
            "SELECT namespace_id, COUNT(*) FROM visibility WHERE status = 1 GROUP BY namespace_id"
        )

        # Schedules (fenced by their shard) and worker deployments (by version only)
        schedule = "namespace_id = ? AND schedule_id = ?"
        self.get_schedule = q(_select("schedules", SCHEDULE, schedule))
        self.list_schedules = q(
            _select(
                "schedules",
                SCHEDULE,
                "(CAST(? AS TEXT) IS NULL OR namespace_id = ?) "
                "AND (CAST(? AS INTEGER) IS NULL OR shard_id = ?)",
            )
            + " ORDER BY schedule_id"
        )
        self.insert_schedule = q(_insert_new("schedules", SCHEDULE))
        self.update_schedule = q(
            f"UPDATE schedules SET state = ?, version = ? WHERE {schedule} AND version = ?"
        )
        self.delete_schedule = q(f"DELETE FROM schedules WHERE {schedule}")
        deployment = "namespace_id = ? AND name = ?"
        self.list_deployments = q(
            _select("worker_deployments", DEPLOYMENT, "CAST(? AS TEXT) IS NULL OR namespace_id = ?")
            + f" ORDER BY namespace_id{d.byte_order}, name{d.byte_order}"
        )
        self.insert_deployment = q(_insert_new("worker_deployments", DEPLOYMENT))
        self.update_deployment = q(
            f"UPDATE worker_deployments SET state = ?, version = ? WHERE {deployment} "
            "AND version = ?"
        )
        self.delete_deployment = q(f"DELETE FROM worker_deployments WHERE {deployment}")

        # Batch operations (fenced by the shard of their job id)
        job = "namespace_id = ? AND job_id = ?"
        self.get_batch_operation = q(_select("batch_operations", BATCH_OPERATION, job))
        self.insert_batch_operation = q(_insert_new("batch_operations", BATCH_OPERATION))
        changed = ("state", "close_time_ns", "targets", "total", "position", "succeeded", "failed")
        self.update_batch_operation = q(
            f"UPDATE batch_operations SET {', '.join(f'{c} = ?' for c in changed)}, version = ? "
            f"WHERE {job} AND version = ?"
        )
        summary = tuple("'' AS targets" if c == "targets" else c for c in BATCH_OPERATION)
        self.list_batch_operations = q(
            _select("batch_operations", summary, "namespace_id = ?")
            + f" ORDER BY start_time_ns DESC, job_id{d.byte_order}"
        )
        # Nexus endpoints
        self.insert_nexus_endpoint = q(_insert_new("nexus_endpoints", NEXUS_ENDPOINT))
        self.update_nexus_endpoint = q(
            "UPDATE nexus_endpoints SET name = ?, version = ?, data = ? WHERE id = ? "
            "AND version = ? AND NOT EXISTS "
            "(SELECT 1 FROM nexus_endpoints AS other WHERE other.name = ? AND other.id <> ?)"
        )
        self.get_nexus_endpoint = q(_select("nexus_endpoints", NEXUS_ENDPOINT, "id = ?"))
        self.find_nexus_endpoint = q(_select("nexus_endpoints", NEXUS_ENDPOINT, "name = ?"))
        self.list_nexus_endpoints = q(
            _select("nexus_endpoints", NEXUS_ENDPOINT, "id > ?") + " ORDER BY id LIMIT ?"
        )
        self.delete_nexus_endpoint = q("DELETE FROM nexus_endpoints WHERE id = ?")
        # API keys and the audit log
        self.insert_api_key = q(_insert("api_keys", API_KEY))
        self.get_api_key = q(_select("api_keys", API_KEY, "key_id = ?"))
        self.list_api_keys = q(_select("api_keys", API_KEY) + " ORDER BY created_ns, key_id")
        self.disable_api_key = q("UPDATE api_keys SET disabled = ? WHERE key_id = ?")
        self.delete_api_key = q("DELETE FROM api_keys WHERE key_id = ?")
        self.insert_audit = q(_insert("audit_log", AUDIT))
        self.delete_audit_before = q("DELETE FROM audit_log WHERE time_ns < ?")
        self.list_audit = q(
            _select("audit_log", AUDIT, "time_ns >= ?") + " ORDER BY time_ns LIMIT ?"
        )
        self.list_audit_of_namespace = q(
            _select("audit_log", AUDIT, "time_ns >= ? AND namespace = ?")
            + " ORDER BY time_ns LIMIT ?"
        )
        self.running_batch_operations = q(
            _select("batch_operations", BATCH_OPERATION, "shard_id = ? AND state = 1")
            + " ORDER BY start_time_ns"
        )
