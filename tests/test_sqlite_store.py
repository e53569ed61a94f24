"""The SQLite store on its own: keys are scoped by shard, versions and fencing tokens guard writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aion.persistence import (
    ConditionFailedError,
    ExecutionTransaction,
    QueueTask,
    ShardOwnershipLostError,
)
from aion.persistence.sqlite import SQLiteStore


def _tx(shard_id: int, range_id: int, workflow_id: str, **fields: object) -> ExecutionTransaction:
    tx = ExecutionTransaction(
        shard_id=shard_id,
        range_id=range_id,
        namespace_id="ns",
        workflow_id=workflow_id,
        run_id="run",
        state=b"{}",
        db_version=1,
        expected_db_version=None,
    )
    for name, value in fields.items():
        setattr(tx, name, value)
    return tx


def _queue_task(shard_id: int, task_id: int, workflow_id: str) -> QueueTask:
    return QueueTask(task_id, "ns", "tq", "activity", workflow_id, "run", 5, shard_id=shard_id)


async def test_queue_task_ids_are_scoped_by_shard(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "store.db"))
    await store.open()
    try:
        ranges = [await store.acquire_shard(shard, "host") for shard in (0, 1)]
        # Each shard numbers its tasks on its own, so the same id can exist in both.
        await store.commit(_tx(0, ranges[0], "a", queue_tasks=[_queue_task(0, 7, "a")]))
        await store.commit(_tx(1, ranges[1], "b", queue_tasks=[_queue_task(1, 7, "b")]))

        await store.delete_queue_tasks(0, [7])
        assert [t.workflow_id for t in await store.load_queue_tasks()] == ["b"]

        done = _tx(1, ranges[1], "b", db_version=2, expected_db_version=1)
        done.done_queue_task_ids = [7]
        await store.commit(done)
        assert await store.load_queue_tasks() == []
    finally:
        await store.close()


async def test_stale_version_and_stale_fencing_token_are_refused(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "store.db"))
    await store.open()
    try:
        old_range = await store.acquire_shard(0, "first")
        await store.commit(_tx(0, old_range, "a"))
        with pytest.raises(ConditionFailedError):
            await store.commit(_tx(0, old_range, "a", db_version=2, expected_db_version=5))
        new_range = await store.acquire_shard(0, "second")
        assert new_range > old_range
        with pytest.raises(ShardOwnershipLostError):
            await store.commit(_tx(0, old_range, "a", db_version=2, expected_db_version=1))
        await store.commit(_tx(0, new_range, "a", db_version=2, expected_db_version=1))
    finally:
        await store.close()
