"""The execution commit: a batch of transitions in one transaction, each in its own savepoint, each
checked against the shard's fencing token and the execution's db version.

Where several processes share the database (PostgreSQL), the dialect's row locks make the checks
hold: the shard row is read `FOR SHARE` (so `acquire_shard`, which updates it, waits for commits
under the old range id and every later commit sees the new one) and the current-run pointer
`FOR UPDATE`. A single writer (SQLite) gets the same from its one connection.
"""

from __future__ import annotations

import time

from aion.persistence.sql.dialect import Connection
from aion.persistence.sql.statements import (
    Statements,
    current_row,
    queue_task_row,
    replication_task_row,
    timer_task_row,
    visibility_row,
)
from aion.persistence.sql.visibility import search_attribute_rows
from aion.persistence.store import (
    ConditionFailedError,
    ExecutionTransaction,
    ShardOwnershipLostError,
    UnstorableValueError,
    VisibilityRecord,
)


async def commit_batch(
    conn: Connection, sql: Statements, batch: list[ExecutionTransaction]
) -> list[Exception | None]:
    """Apply each transition of `batch` inside the caller's transaction; one result each (None:
    applied). A refused transition leaves no trace and does not stop the others."""
    if len(batch) == 1:
        # Alone in its transaction: a refusal aborts the transaction itself (the caller's write
        # fails with it), so no savepoint is needed; most batches are of one.
        await _apply_with_new_run(conn, sql, batch[0])
        return [None]
    results: list[Exception | None] = []
    for tx in batch:
        try:
            async with conn.transaction():  # a savepoint
                await _apply_with_new_run(conn, sql, tx)
        except (ConditionFailedError, ShardOwnershipLostError, UnstorableValueError) as e:
            results.append(e)
        else:
            results.append(None)
    return results


async def _apply_with_new_run(conn: Connection, sql: Statements, tx: ExecutionTransaction) -> None:
    await apply(conn, sql, tx)
    if tx.new_run is not None:
        await apply(conn, sql, tx.new_run)


async def check_range(conn: Connection, sql: Statements, shard_id: int, range_id: int) -> None:
    """Raise ShardOwnershipLostError unless the shard is still held under `range_id`."""
    if await conn.fetchval(sql.check_range, (shard_id,)) != range_id:
        raise ShardOwnershipLostError(f"shard {shard_id} is owned under another range id")


async def apply(conn: Connection, sql: Statements, tx: ExecutionTransaction) -> None:
    """Write one transition: the execution row at its expected db version, then the current-run
    pointer, events, tasks and visibility."""
    await check_range(conn, sql, tx.shard_id, tx.range_id)
    key = (tx.namespace_id, tx.workflow_id, tx.run_id)
    if tx.expected_db_version is None:
        row = (tx.shard_id, *key, tx.state, tx.db_version)
        if await conn.execute(sql.insert_execution, row) != 1:
            raise ConditionFailedError("execution already exists")
    else:
        change = (tx.state, tx.db_version, *key, tx.expected_db_version)
        if await conn.execute(sql.update_execution, change) != 1:
            raise ConditionFailedError("execution was changed concurrently")
    if tx.current is not None:
        await _write_current(conn, sql, tx)
    if tx.rewind is not None:
        after = (*key, tx.rewind.after_event_id)
        await conn.execute(sql.hide_events, (tx.rewind.branch, False, *after))
        await conn.execute(sql.delete_events_after, after)
    if tx.events:
        rows = []
        batch = tx.events[0][0]  # a batch is named by its first event
        for event_id, data in tx.events:
            if event_id in tx.batch_starts:
                batch = event_id
            rows.append((tx.shard_id, *key, event_id, data, batch))
        await conn.executemany(sql.insert_event, rows)
    if tx.reapply is not None:
        branch = tx.reapply.branch
        pending = [(tx.shard_id, *key, branch, i, data, False) for i, data in tx.reapply.events]
        await conn.executemany(sql.insert_hidden_event, pending)
    if tx.timer_tasks:
        await conn.executemany(sql.insert_timer_task, list(map(timer_task_row, tx.timer_tasks)))
    if tx.queue_tasks:
        await conn.executemany(sql.insert_queue_task, list(map(queue_task_row, tx.queue_tasks)))
    if tx.done_timer_task_ids:
        await conn.execute_in(sql.delete_timer_tasks, (tx.shard_id,), tx.done_timer_task_ids)
    if tx.done_queue_task_ids:
        await conn.execute_in(sql.delete_queue_tasks, (tx.shard_id,), tx.done_queue_task_ids)
    if tx.replication_task is not None:
        await conn.execute(sql.insert_replication_task, replication_task_row(tx.replication_task))
    if tx.replication_ack is not None:
        ack = tx.replication_ack
        watermark = (ack.source_cluster, ack.shard_id, ack.task_id, time.time_ns())
        await conn.execute(sql.upsert_replication_watermark, watermark)
    if tx.visibility is not None:
        await conn.execute(sql.upsert_visibility, visibility_row(tx.visibility))
        if tx.search_attributes_changed:
            await write_search_attributes(conn, sql, tx.visibility, tx.expected_db_version is None)


async def write_search_attributes(
    conn: Connection, sql: Statements, record: VisibilityRecord, new: bool
) -> None:
    """Replace the indexed values of a visibility row's search attributes (`new`: it has none
    yet)."""
    if not new:
        await conn.execute(
            sql.delete_search_attributes_of_run, (record.namespace_id, record.run_id)
        )
    rows = search_attribute_rows(record.namespace_id, record.run_id, record.search_attributes)
    if rows:
        await conn.executemany(sql.insert_search_attribute, rows)


async def _write_current(conn: Connection, sql: Statements, tx: ExecutionTransaction) -> None:
    c = tx.current
    assert c is not None
    # Locked (where the dialect locks): another process's new run of this id waits for us.
    found = await conn.fetchval(sql.current_run_id, (c.namespace_id, c.workflow_id))
    if tx.expected_db_version is None or tx.expected_current_run_id is not None:
        # A new run (or a replicated run winning over the current one) may only take over the
        # pointer from the run the caller saw.
        if found != tx.expected_current_run_id:
            raise ConditionFailedError("another run of this workflow id started concurrently")
    elif found != c.run_id:
        return  # an older run closing no longer owns the pointer
    if found is None:
        # No row to lock: a concurrent first run inserts too, and only one insert may win.
        if await conn.execute(sql.insert_current_execution, (tx.shard_id, *current_row(c))) != 1:
            raise ConditionFailedError("another run of this workflow id started concurrently")
    else:
        change = (tx.shard_id, c.run_id, c.running, c.status, c.start_request_id)
        await conn.execute(
            sql.update_current_execution,
            (*change, c.start_time_ns, c.namespace_id, c.workflow_id),
        )
