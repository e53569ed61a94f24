"""The store on its own, on every backend: keys are scoped by shard, versions and fencing tokens
guard writes, one transition commits as a whole, and the schema migrates forward only.

Each test runs as [sqlite] and [postgres] (tests/conftest.py); the PostgreSQL variants create a
fresh database per test through the admin connection in AION_TEST_PG_DSN.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from aion.persistence import (
    ConditionFailedError,
    CurrentExecution,
    DeploymentRecord,
    ExecutionTransaction,
    HostRecord,
    NamespaceRecord,
    NexusEndpointRecord,
    PendingReapply,
    QueueTask,
    RemoteClusterRecord,
    ReplicationTaskRecord,
    ScheduleRecord,
    SchemaTooNewError,
    ShardCountMismatchError,
    ShardOwnershipLostError,
    Store,
    TimerTask,
    VisibilityRecord,
    postgres,
    sqlite,
)
from aion.persistence.postgres import PostgresStore
from aion.persistence.sqlite import SQLiteStore
from tests.helpers import pg_database

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Backend:
    """How to open (and reopen) one backend's store over one database."""

    name: str
    make: Callable[[], Store]
    location: str  # the SQLite file or the PostgreSQL DSN


@pytest.fixture
async def db(backend: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh database on `backend` (the conftest fixture: each test runs on both)."""
    if backend == "sqlite":
        path = str(tmp_path / "store.db")
        yield Backend("sqlite", lambda: SQLiteStore(path), path)
        return
    dsn, drop = await pg_database()
    try:
        yield Backend("postgres", lambda: PostgresStore(dsn), dsn)
    finally:
        await drop()


# PostgreSQL only: `aion db migrate` exists for PostgreSQL (a SQLite file migrates when it opens).
@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    dsn, drop = await pg_database()
    try:
        yield dsn
    finally:
        await drop()


@pytest.fixture
async def store(db: Backend) -> AsyncIterator[Store]:
    s = db.make()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


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


def _current(workflow_id: str, run_id: str, running: bool = True) -> CurrentExecution:
    return CurrentExecution("ns", workflow_id, run_id, running, 1, "req", 123)


def _visibility(workflow_id: str, run_id: str, status: int) -> VisibilityRecord:
    return VisibilityRecord(
        "ns", workflow_id, run_id, "Type", "tq", status, 10, 10, 0, 3, b"memo", b"sa"
    )


async def test_cluster_id_and_remote_clusters(store: Store) -> None:
    """The cluster id is recorded once; connected clusters are saved (replaced by name), listed
    by name and deleted; a namespace keeps its config version."""
    assert await store.cluster_id("first") == "first"
    assert await store.cluster_id("second") == "first"
    b = RemoteClusterRecord("B", "id-b", "host:2", "", 2, 10, 4, True, True, False)
    a = RemoteClusterRecord("A", "id-a", "host:1", "http", 1, 10, 8, True, False, True)
    await store.save_remote_cluster(b)
    await store.save_remote_cluster(a)
    assert await store.list_remote_clusters() == [a, b]
    b.address, b.replication_enabled = "host:3", True
    await store.save_remote_cluster(b)
    await store.delete_remote_cluster("A")
    assert await store.list_remote_clusters() == [b]
    record = NamespaceRecord("ns", "global", b"info", 1, config_version=3)
    await store.create_namespace(record)
    record.config_version = 4
    await store.update_namespace(record)
    assert await store.list_namespaces() == [record]


async def test_replication_acks_only_move_forward(store: Store) -> None:
    """Another cluster's acknowledgement of a shard is kept per (cluster, shard) and never moves
    back (two processes may record the same cluster's pulls)."""
    await store.acknowledge_replication("B", 0, 7)
    await store.acknowledge_replication("B", 0, 5)
    await store.acknowledge_replication("C", 0, 3)
    await store.acknowledge_replication("B", 1, 2)
    acks = await store.replication_acks()
    assert [(a.cluster, a.shard_id, a.task_id) for a in acks] == [
        ("B", 0, 7),
        ("B", 1, 2),
        ("C", 0, 3),
    ]
    assert all(a.update_time_ns > 0 for a in acks)
    assert await store.replication_backlog(0, 7) == (0, 0)


async def test_replication_backlog_of_one_namespace(store: Store) -> None:
    """A shard's replication tasks after a task id, all of them or one namespace's (what a
    failback checks: the target's tail of that namespace only)."""
    range_id = await store.acquire_shard(0, "host")
    for task_id, namespace_id, workflow_id in ((5, "ns", "a"), (6, "other", "b"), (7, "ns", "c")):
        task = ReplicationTaskRecord(
            0, task_id, namespace_id, workflow_id, "run", 1, 2, 1, b"{}", "[]", 1
        )
        await store.commit(
            _tx(
                0,
                range_id,
                workflow_id,
                namespace_id=namespace_id,
                events=[(1, b"e1")],
                replication_task=task,
            )
        )
    assert await store.replication_backlog(0, 0) == (3, 7)
    assert await store.replication_backlog(0, 0, "ns") == (2, 7)
    assert await store.replication_backlog(0, 5, "ns") == (1, 7)
    assert await store.replication_backlog(0, 0, "other") == (1, 6)
    assert await store.replication_backlog(0, 6, "other") == (0, 0)


async def test_round_trip(store: Store) -> None:
    record = NamespaceRecord("ns", "default", b"info", 1)
    await store.create_namespace(record)
    with pytest.raises(ConditionFailedError):
        await store.create_namespace(NamespaceRecord("ns2", "default", b"other"))
    record.data, record.notification_version = b"info2", 2
    await store.update_namespace(record)
    assert await store.list_namespaces() == [NamespaceRecord("ns", "default", b"info2", 2)]

    range_id = await store.acquire_shard(0, "host")
    timer = TimerTask(0, 11, 5_000, "ns", "wf", "run", "workflow_run_timeout", "x")
    await store.commit(
        _tx(
            0,
            range_id,
            "wf",
            state=b"state-1",
            events=[(1, b"e1"), (2, b"e2"), (3, b"e3")],
            current=_current("wf", "run"),
            timer_tasks=[timer],
            queue_tasks=[_queue_task(0, 12, "wf")],
            visibility=_visibility("wf", "run", 1),
        )
    )

    execution = await store.get_execution("ns", "wf", "run")
    assert execution is not None
    assert (execution.shard_id, execution.state, execution.db_version) == (0, b"state-1", 1)
    assert await store.get_execution("ns", "wf", "other") is None
    assert await store.get_current_execution("ns", "wf") == _current("wf", "run")
    assert await store.get_current_execution("ns", "nope") is None
    assert await store.read_events("ns", "wf", "run", 1, 100) == [b"e1", b"e2", b"e3"]
    assert await store.read_events("ns", "wf", "run", 2, 1) == [b"e2"]
    assert await store.load_timer_tasks(0) == [timer]
    assert await store.load_timer_tasks(1) == []
    # A window of fire times: after `after_ns`, by `until_ns`.
    assert await store.load_timer_tasks(0, -1, timer.fire_time_ns) == [timer]
    assert await store.load_timer_tasks(0, -1, timer.fire_time_ns - 1) == []
    assert await store.load_timer_tasks(0, timer.fire_time_ns) == []
    assert await store.load_queue_tasks(0) == [_queue_task(0, 12, "wf")]
    assert await store.list_visibility("ns") == [_visibility("wf", "run", 1)]

    # The next transition appends, completes the tasks and closes the run.
    await store.commit(
        _tx(
            0,
            range_id,
            "wf",
            state=b"state-2",
            db_version=2,
            expected_db_version=1,
            events=[(4, b"e4")],
            current=_current("wf", "run", running=False),
            done_timer_task_ids=[11],
            done_queue_task_ids=[12],
            visibility=_visibility("wf", "run", 2),
        )
    )
    assert await store.read_events("ns", "wf", "run", 3, 100) == [b"e3", b"e4"]
    assert (await store.get_current_execution("ns", "wf")) == _current("wf", "run", False)
    assert await store.list_visibility("ns") == [_visibility("wf", "run", 2)]
    assert await store.load_timer_tasks(0) == [] and await store.load_queue_tasks(0) == []

    # Tasks dropped outside a transition.
    await store.commit(
        _tx(0, range_id, "wf2", timer_tasks=[timer], queue_tasks=[_queue_task(0, 13, "wf2")])
    )
    await store.delete_timer_tasks(0, [11])
    await store.delete_queue_tasks(0, [13])
    assert await store.load_timer_tasks(0) == [] and await store.load_queue_tasks(0) == []


async def test_a_refused_transition_leaves_no_trace(store: Store) -> None:
    range_id = await store.acquire_shard(0, "host")
    await store.commit(_tx(0, range_id, "wf", current=_current("wf", "run")))
    # A new run that did not see the current one: refused, and none of its rows remain.
    rival = _tx(
        0,
        range_id,
        "wf",
        run_id="run2",
        events=[(1, b"e1")],
        current=_current("wf", "run2"),
        queue_tasks=[_queue_task(0, 1, "wf")],
    )
    with pytest.raises(ConditionFailedError):
        await store.commit(rival)
    assert await store.get_execution("ns", "wf", "run2") is None
    assert await store.read_events("ns", "wf", "run2", 1, 10) == []
    assert await store.load_queue_tasks(0) == []
    assert (await store.get_current_execution("ns", "wf")) == _current("wf", "run")
    # The same run, knowing the current one, takes the pointer over.
    rival.expected_current_run_id = "run"
    await store.commit(rival)
    assert (await store.get_current_execution("ns", "wf")) == _current("wf", "run2")


async def test_queue_task_ids_are_scoped_by_shard(store: Store) -> None:
    ranges = [await store.acquire_shard(shard, "host") for shard in (0, 1)]
    # Each shard numbers its tasks on its own, so the same id can exist in both.
    await store.commit(_tx(0, ranges[0], "a", queue_tasks=[_queue_task(0, 7, "a")]))
    await store.commit(_tx(1, ranges[1], "b", queue_tasks=[_queue_task(1, 7, "b")]))

    await store.delete_queue_tasks(0, [7])
    assert await store.load_queue_tasks(0) == []
    assert [t.workflow_id for t in await store.load_queue_tasks(1)] == ["b"]

    done = _tx(1, ranges[1], "b", db_version=2, expected_db_version=1)
    done.done_queue_task_ids = [7]
    await store.commit(done)
    assert await store.load_queue_tasks(1) == []


async def test_stale_version_is_refused(store: Store) -> None:
    range_id = await store.acquire_shard(0, "host")
    await store.commit(_tx(0, range_id, "a"))
    with pytest.raises(ConditionFailedError):
        await store.commit(_tx(0, range_id, "a"))  # the row exists already
    with pytest.raises(ConditionFailedError):
        await store.commit(_tx(0, range_id, "a", db_version=2, expected_db_version=5))
    await store.commit(_tx(0, range_id, "a", db_version=2, expected_db_version=1))
    with pytest.raises(ConditionFailedError):
        await store.commit(_tx(0, range_id, "a", db_version=3, expected_db_version=1))


async def test_stale_fencing_token_is_refused(store: Store) -> None:
    old_range = await store.acquire_shard(0, "first")
    await store.commit(_tx(0, old_range, "a"))
    new_range = await store.acquire_shard(0, "second")
    assert new_range > old_range
    with pytest.raises(ShardOwnershipLostError):
        await store.commit(_tx(0, old_range, "a", db_version=2, expected_db_version=1))
    with pytest.raises(ShardOwnershipLostError):
        await store.commit(_tx(3, new_range, "never-acquired"))
    await store.commit(_tx(0, new_range, "a", db_version=2, expected_db_version=1))


async def test_group_commit_refuses_only_the_stale_transition(store: Store) -> None:
    range_id = await store.acquire_shard(0, "host")
    await store.commit(_tx(0, range_id, "stale"))
    txs = [_tx(0, range_id, f"wf{i}", events=[(1, b"e1")]) for i in range(10)]
    txs.insert(5, _tx(0, range_id, "stale", db_version=2, expected_db_version=7))
    results = await asyncio.gather(*(store.commit(tx) for tx in txs), return_exceptions=True)
    assert [type(r) for r in results] == [type(None)] * 5 + [ConditionFailedError] + [
        type(None)
    ] * 5
    for i in range(10):
        assert await store.read_events("ns", f"wf{i}", "run", 1, 10) == [b"e1"]


async def test_a_cancelled_wait_for_landed_commits_leaves_them_running(store: Store) -> None:
    """`commits_landed()` given up by its caller (a peer's call ended) does not stop the
    commits in flight: each still lands and answers."""
    range_id = await store.acquire_shard(0, "host")
    txs = [_tx(0, range_id, f"wf{i}", events=[(1, b"e1")]) for i in range(5)]
    commits = [asyncio.create_task(store.commit(tx)) for tx in txs]
    await asyncio.sleep(0)  # the flush is under way
    waiting = asyncio.create_task(store.commits_landed())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.wait_for(asyncio.gather(*commits), 10)
    for i in range(5):
        assert await store.read_events("ns", f"wf{i}", "run", 1, 10) == [b"e1"]


async def test_a_commit_stands_when_its_connection_cannot_be_reset(pg_dsn: str) -> None:
    """The database goes away just after a commit, while the pool resets the connection: the
    commit is reported done (it is), not passed off as never applied, which would leave the
    tasks it made durable unseen until the shard is next loaded."""
    store = PostgresStore(pg_dsn)
    await store.open()
    try:

        async def reset_fails(conn: asyncpg.Connection) -> None:
            raise ConnectionResetError("connection reset by peer")

        store._pool._reset = reset_fails  # type: ignore[union-attr]  # asyncpg's reset hook
        range_id = await store.acquire_shard(0, "host")
        await store.commit(_tx(0, range_id, "wf", events=[(1, b"e1")]))
        assert await store.read_events("ns", "wf", "run", 1, 10) == [b"e1"]
    finally:
        await store.close()


async def test_a_queue_task_keeps_its_deployment_version(store: Store) -> None:
    range_id = await store.acquire_shard(0, "host")
    pinned = _queue_task(0, 1, "a")
    pinned.version = "orders:build-2"
    await store.commit(_tx(0, range_id, "a", queue_tasks=[pinned, _queue_task(0, 2, "a")]))
    loaded = await store.load_queue_tasks(0)
    assert loaded == [pinned, _queue_task(0, 2, "a")]
    assert [t.version for t in loaded] == ["orders:build-2", ""]


async def test_worker_deployments_insert_replace_and_delete(store: Store) -> None:
    orders = DeploymentRecord("ns", "orders", '{"versions": []}', 1)
    await store.save_deployment(orders, None)
    with pytest.raises(ConditionFailedError):  # exists already
        await store.save_deployment(DeploymentRecord("ns", "orders", "{}", 1), None)
    assert await store.list_deployments("ns") == [orders]

    # Replaced only at the version the writer read.
    replaced = DeploymentRecord("ns", "orders", '{"versions": ["b1"]}', 2)
    await store.save_deployment(replaced, 1)
    with pytest.raises(ConditionFailedError):  # changed meanwhile
        await store.save_deployment(DeploymentRecord("ns", "orders", "{}", 3), 1)
    with pytest.raises(ConditionFailedError):  # not there at all
        await store.save_deployment(DeploymentRecord("ns", "missing", "{}", 2), 1)
    assert await store.list_deployments("ns") == [replaced]

    await store.delete_deployment("ns", "orders")
    await store.delete_deployment("ns", "orders")  # deleting what is gone is a no-op
    assert await store.list_deployments() == []
    await store.save_deployment(DeploymentRecord("ns", "orders", "{}", 1), None)  # name reusable
    assert await store.list_deployments() == [DeploymentRecord("ns", "orders", "{}", 1)]


async def test_worker_deployments_list_by_namespace_then_name(store: Store) -> None:
    records = [
        DeploymentRecord(namespace_id, name, "{}", 1)
        for namespace_id, name in [("ns-b", "a"), ("ns-a", "b"), ("ns-a", "B"), ("ns-a", "a")]
    ]
    for record in records:
        await store.save_deployment(record, None)
    # The same name in another namespace is another deployment.
    assert [(r.namespace_id, r.name) for r in await store.list_deployments()] == [
        ("ns-a", "B"),
        ("ns-a", "a"),
        ("ns-a", "b"),
        ("ns-b", "a"),
    ]
    assert [r.name for r in await store.list_deployments("ns-a")] == ["B", "a", "b"]
    assert await store.list_deployments("ns-b") == [records[0]]
    assert await store.list_deployments("other") == []
    await store.delete_deployment("ns-a", "a")
    assert [r.name for r in await store.list_deployments("ns-a")] == ["B", "b"]


async def test_migrating_twice_is_a_no_op_and_a_newer_schema_is_refused(db: Backend) -> None:
    store = db.make()
    await store.open()
    range_id = await store.acquire_shard(0, "host")
    await store.commit(_tx(0, range_id, "a"))
    await store.close()

    store = db.make()  # opening again migrates nothing and keeps the data
    await store.open()
    try:
        assert await store.get_execution("ns", "a", "run") is not None
    finally:
        await store.close()
    assert await _schema_version(db) == _code_schema_version(db)

    await _set_schema_version(db, _code_schema_version(db) + 1)
    with pytest.raises(SchemaTooNewError, match="newer than this Aion supports"):
        await db.make().open()


async def test_a_set_aside_branch_stays_so_until_released(db: Backend) -> None:
    """A branch to re-apply, written with its transition, set aside: reopened, the store still
    leaves it out of the branches to re-apply and counts it, until its shard's are released."""
    store = db.make()
    await store.open()
    range_id = await store.acquire_shard(0, "host")
    for workflow_id in ("wf", "other"):
        pending = PendingReapply("zombie@5", [(5, b"signal"), (7, b"cancel")])
        await store.commit(_tx(0, range_id, workflow_id, reapply=pending))
    assert [b.workflow_id for b in await store.branches_to_reapply(0)] == ["other", "wf"]
    await store.set_aside_branch("ns", "wf", "run", "zombie@5", 123)
    await store.close()

    store = db.make()
    await store.open()
    try:
        [left] = await store.branches_to_reapply(0)
        assert (left.workflow_id, left.events, left.set_aside) == (
            "other",
            [b"signal", b"cancel"],
            False,
        )
        [aside] = await store.hidden_branches("ns", "wf", "run")
        assert (aside.branch, aside.reapplied, aside.set_aside) == ("zombie@5", False, True)
        assert await store.set_aside_branch_counts() == {"ns": 1}
        await store.release_set_aside_branches(1)  # another shard's
        assert await store.set_aside_branch_counts() == {"ns": 1}
        await store.release_set_aside_branches(0)
        assert len(await store.branches_to_reapply(0)) == 2
        assert await store.set_aside_branch_counts() == {}
    finally:
        await store.close()


async def test_db_migrate_command(pg_dsn: str) -> None:
    backend = Backend("postgres", lambda: PostgresStore(pg_dsn), pg_dsn)
    command = [sys.executable, "-m", "aion", "db", "migrate", "--dsn", pg_dsn]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "migrated from version 0" in first.stdout
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "up to date" in again.stdout
    assert await _schema_version(backend) == postgres.SCHEMA_VERSION
    await _set_schema_version(backend, postgres.SCHEMA_VERSION + 1)
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 1 and "newer than this Aion supports" in refused.stderr


def _code_schema_version(backend: Backend) -> int:
    return sqlite.SCHEMA_VERSION if backend.name == "sqlite" else postgres.SCHEMA_VERSION


async def _schema_version(backend: Backend) -> int:
    if backend.name == "sqlite":
        import sqlite3

        with sqlite3.connect(backend.location) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn = await asyncpg.connect(backend.location)
    try:
        return int(await conn.fetchval("SELECT max(version) FROM schema_version"))
    finally:
        await conn.close()


async def _set_schema_version(backend: Backend, version: int) -> None:
    """Pretend a newer Aion migrated the database."""
    if backend.name == "sqlite":
        import sqlite3

        conn = sqlite3.connect(backend.location)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
        return
    conn = await asyncpg.connect(backend.location)
    try:
        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
    finally:
        await conn.close()


async def test_the_shard_count_is_fixed_by_the_first_start(store: Store) -> None:
    await store.check_shard_count(4)
    await store.check_shard_count(4)
    with pytest.raises(ShardCountMismatchError, match="created with 4"):
        await store.check_shard_count(8)


async def test_membership_lists_live_hosts_until_they_leave(store: Store) -> None:
    one, two = HostRecord("one", "127.0.0.1:1"), HostRecord("two", "127.0.0.1:2")
    assert await store.heartbeat(one, 5.0) == [one]
    assert await store.heartbeat(two, 5.0) == [one, two]
    assert await store.heartbeat(two, 0.0) == []  # nobody renewed within no time at all
    await store.leave("one")
    assert await store.heartbeat(two, 5.0) == [two]
    ranges = {s: await store.acquire_shard(s, "two") for s in (0, 1)}
    assert await store.shard_range_ids() == ranges


async def test_schedules_are_fenced_versioned_and_listed(store: Store) -> None:
    range_id = await store.acquire_shard(1, "host")
    first = ScheduleRecord(1, "ns-a", "every-hour", '{"v": 1}', 1)
    await store.save_schedule(first, range_id, None)
    with pytest.raises(ConditionFailedError):  # exists already
        await store.save_schedule(ScheduleRecord(1, "ns-a", "every-hour", "{}", 1), range_id, None)
    replaced = ScheduleRecord(1, "ns-a", "every-hour", '{"v": 2}', 2)
    await store.save_schedule(replaced, range_id, 1)
    with pytest.raises(ConditionFailedError):  # changed meanwhile
        await store.save_schedule(ScheduleRecord(1, "ns-a", "every-hour", "{}", 3), range_id, 1)
    other = ScheduleRecord(1, "ns-b", "daily", "{}", 1)
    await store.save_schedule(other, range_id, None)
    assert await store.get_schedule("ns-a", "every-hour") == replaced
    assert await store.get_schedule("ns-a", "daily") is None

    # By namespace, by shard, both or neither; by schedule id.
    assert await store.list_schedules() == [other, replaced]
    assert await store.list_schedules(namespace_id="ns-b") == [other]
    assert await store.list_schedules(shard_id=1) == [other, replaced]
    assert await store.list_schedules(namespace_id="ns-a", shard_id=2) == []

    # A process whose lease was taken writes nothing.
    new_range = await store.acquire_shard(1, "other")
    with pytest.raises(ShardOwnershipLostError):
        await store.save_schedule(ScheduleRecord(1, "ns-a", "every-hour", "{}", 3), range_id, 2)
    with pytest.raises(ShardOwnershipLostError):
        await store.delete_schedule(1, range_id, "ns-a", "every-hour")
    await store.delete_schedule(1, new_range, "ns-a", "every-hour")
    assert await store.list_schedules() == [other]


async def test_a_namespace_id_or_name_is_taken_once(store: Store) -> None:
    await store.create_namespace(NamespaceRecord("id-1", "one", b""))
    with pytest.raises(ConditionFailedError):
        await store.create_namespace(NamespaceRecord("id-1", "two", b""))
    with pytest.raises(ConditionFailedError):
        await store.create_namespace(NamespaceRecord("id-2", "one", b""))
    assert [r.name for r in await store.list_namespaces()] == ["one"]


async def test_nexus_endpoints_are_versioned_named_once_and_listed_by_id(store: Store) -> None:
    a = NexusEndpointRecord("a-id", "alpha", 1, b"a")
    await store.save_nexus_endpoint(a, None)
    await store.save_nexus_endpoint(NexusEndpointRecord("b-id", "beta", 1, b"b"), None)
    with pytest.raises(ConditionFailedError):  # the name is taken
        await store.save_nexus_endpoint(NexusEndpointRecord("c-id", "alpha", 1, b"c"), None)
    with pytest.raises(ConditionFailedError):  # renamed onto another endpoint's name
        await store.save_nexus_endpoint(NexusEndpointRecord("a-id", "beta", 2, b"a2"), 1)
    await store.save_nexus_endpoint(NexusEndpointRecord("a-id", "gamma", 2, b"a2"), 1)
    with pytest.raises(ConditionFailedError):  # a stale version
        await store.save_nexus_endpoint(NexusEndpointRecord("a-id", "delta", 2, b"a3"), 1)
    assert await store.get_nexus_endpoint("a-id") == NexusEndpointRecord("a-id", "gamma", 2, b"a2")
    assert await store.find_nexus_endpoint("gamma") == await store.get_nexus_endpoint("a-id")
    assert await store.find_nexus_endpoint("alpha") is None
    assert [r.id for r in await store.list_nexus_endpoints("", 1)] == ["a-id"]
    assert [r.id for r in await store.list_nexus_endpoints("a-id", 5)] == ["b-id"]
    assert await store.delete_nexus_endpoint("a-id")
    assert not await store.delete_nexus_endpoint("a-id")
    assert await store.get_nexus_endpoint("a-id") is None


async def test_both_dialects_create_the_same_tables(pg_dsn: str, tmp_path: Path) -> None:
    """The schema is written once; each dialect's migrations must build all of it."""
    import sqlite3

    lite = sqlite3.connect(tmp_path / "schema.db", isolation_level=None)
    try:
        sqlite.migrate(lite)
        tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sqlite_columns = {
            (table, row[1])
            for table in tables
            for row in lite.execute(f"PRAGMA table_info({table})")
        }
    finally:
        lite.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await postgres.migrate(conn)
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_version'"
        )
    finally:
        await conn.close()
    # The hosts' lease time is the one column spelt per dialect (a clock of its own).
    postgres_columns = {(r[0], r[1]) for r in rows} - {("hosts", "last_seen")}
    assert sqlite_columns - {("hosts", "last_seen_ns")} == postgres_columns
