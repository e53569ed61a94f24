"""List and Count in SQL, on every backend: the SQL translation answers what the filter
language evaluated in memory answers, pages are keyset pages that neither repeat nor skip rows
written between them, Count groups in SQL, and a database of the previous schema migrates.

Each test runs as [sqlite] and [postgres] (tests/conftest.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.persistence import ExecutionTransaction, Store, VisibilityRecord, postgres, sqlite
from aion.persistence.postgres import PostgresStore
from aion.persistence.sql import schema
from aion.persistence.sql.store import SQLStore
from aion.persistence.sqlite import SQLiteStore
from aion.visibility.listing import _record, count_workflows, list_workflows
from aion.visibility.query import (
    BOOL,
    DATETIME,
    DOUBLE,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    PREDEFINED_SEARCH_ATTRIBUTES,
    TEXT,
    parse_query,
    sort_records,
)
from aion.visibility.search_attributes import SearchAttributeRegistry
from aion.visibility.sql import translate
from tests.helpers import pg_database

NS = "ns"
SECOND = 1_000_000_000
BASE = 1_700_000_000 * SECOND


def _attributes(**values: object) -> bytes:
    attrs = common_pb.SearchAttributes()
    for name, value in values.items():
        payload = attrs.indexed_fields[name]
        payload.metadata["encoding"] = b"json/plain"
        payload.data = json.dumps(value).encode()
    return attrs.SerializeToString()


def _custom(i: int) -> dict[str, object]:
    """Custom attribute values of row `i`: every indexed type, some missing, some of another
    type than the attribute's (a value read as what it decodes as)."""
    values: dict[str, object] = {"Size": i % 5, "Region": ("eu", "us")[i % 2], "Note": f"note {i}"}
    if i % 4:
        values["Score"] = (i % 7) * 0.5 if i % 5 else i % 7  # an int is a Double too
    if i % 5 != 1:
        values["Flag"] = i % 2 == 0
    if i % 6 != 2:
        values["When"] = f"2024-01-{1 + i % 9:02d}T10:00:0{i % 3}.{i:06d}+01:00"
    values["Tags"] = [["Red", "blue"], ["BLUE"], [], ["green", "red", "Red"], "red"][i % 5]
    values["Customer"] = [f"Acme-{i % 4}", f"acme-{i % 4}", "ÄCME", "acmé", "b\udc80", ["x"]][i % 6]
    if i % 7 == 3:
        values["Size"] = "not a number"  # of another type: no value for the Int
    return values


def _row(i: int, **fields: object) -> VisibilityRecord:
    closed = i % 4 != 0
    record = VisibilityRecord(
        namespace_id=NS,
        workflow_id=f"wf-{i % 7}",
        run_id=f"run-{i:04d}",
        workflow_type=("Order", "Payment", "order")[i % 3],
        task_queue="tq",
        status=(1, 2, 3, 5)[i % 4] if closed else 1,
        start_time_ns=BASE + i * SECOND + 1500,  # sub-microsecond parts are ignored
        execution_time_ns=BASE + i * SECOND,
        close_time_ns=BASE + (i + 10 + i % 5) * SECOND + 999 if closed else 0,
        history_length=i % 9,
        memo=b"",
        search_attributes=_attributes(**_custom(i)) if i % 3 else b"",
        parent_workflow_id="parent" if i % 5 == 0 else "",
        parent_run_id="parent-run" if i % 5 == 0 else "",
        root_workflow_id="parent" if i % 5 == 0 else f"wf-{i % 7}",
        root_run_id="parent-run" if i % 5 == 0 else f"run-{i:04d}",
        history_size_bytes=100 * i,
        state_transition_count=i,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    if backend == "sqlite":
        s: Store = SQLiteStore(str(tmp_path / "store.db"))
        await s.open()
        try:
            yield s
        finally:
            await s.close()
        return
    dsn, drop = await pg_database()
    s = PostgresStore(dsn)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        await drop()


async def _registry(store: Store) -> SearchAttributeRegistry:
    registry = SearchAttributeRegistry(store)
    await registry.load()
    await registry.add(
        NS,
        {
            "Size": INT,
            "Region": KEYWORD,
            "Note": TEXT,
            "Score": DOUBLE,
            "Flag": BOOL,
            "When": DATETIME,
            "Tags": KEYWORD_LIST,
            "Customer": KEYWORD,
        },
    )
    return registry


async def _list_all(
    store: Store, registry: SearchAttributeRegistry, query: str, page_size: int
) -> list[str]:
    runs: list[str] = []
    token = b""
    while True:
        req = rr.ListWorkflowExecutionsRequest(
            query=query, page_size=page_size, next_page_token=token
        )
        response = await list_workflows(store, NS, req, registry)
        runs.extend(e.execution.run_id for e in response.executions)
        assert len(response.executions) <= page_size
        token = response.next_page_token
        if not token:
            return runs


QUERIES = [
    "",
    "WorkflowType = 'Order'",
    "WorkflowType != 'Order'",
    "WorkflowType > 'Order'",
    "WorkflowType BETWEEN 'O' AND 'Pz'",
    "WorkflowType STARTS_WITH 'ord'",
    "NOT WorkflowType STARTS_WITH 'ord'",
    "WorkflowId IN ('wf-1', 'wf-3') AND ExecutionStatus = 'Completed'",
    "ExecutionStatus != 'Running'",
    "ExecutionStatus > 'Completed'",
    "ExecutionStatus IN ('Failed', 'Terminated')",
    "CloseTime IS NULL",
    "CloseTime IS NOT NULL AND HistoryLength >= 4",
    f"CloseTime > '{'2023-11-14T22:14:00Z'}'",
    "NOT (CloseTime < '2023-11-14T22:14:00Z')",
    "StartTime = '2023-11-14T22:13:25.000001Z'",
    "StartTime BETWEEN '2023-11-14T22:13:25Z' AND '2023-11-14T22:13:45.000001Z'",
    "StartTime NOT IN ('2023-11-14T22:13:25.000001Z', '2023-11-14T22:13:26.000001Z')",
    "ExecutionDuration > '15s'",
    "NOT ExecutionDuration > '15s'",
    "ParentWorkflowId = 'parent'",
    "ParentWorkflowId != 'parent'",
    "NOT ParentWorkflowId = 'parent'",
    "ParentWorkflowId IS NULL",
    "RootWorkflowId = 'parent' OR RootRunId = 'run-0007'",
    "HistorySizeBytes > 1000 AND StateTransitionCount < 30",
    "HistoryLength = 1.5 OR HistoryLength = 2",
    "Size >= 3",
    "Size >= 3 AND WorkflowType = 'Payment'",
    "NOT Size >= 3",
    "Size >= 3 OR WorkflowType = 'Payment'",
    "Region = 'eu' AND ExecutionStatus = 'Running'",
    "Note = 'note' AND CloseTime IS NULL",
    "Size IS NULL",
    "TemporalNamespaceDivision IS NULL",
    "TemporalNamespaceDivision = 'scheduler'",
    # Custom attributes, on their indexed values
    "Size = 2",
    "Size != 2",
    "NOT Size = 2",
    "NOT Size != 2",
    "Size < 2.5",
    "Size BETWEEN 1 AND 3",
    "Size NOT BETWEEN 1 AND 3",
    "NOT (Size NOT BETWEEN 1 AND 3)",
    "Size IN (0, 4)",
    "Size NOT IN (0, 4)",
    "NOT Size IN (0, 4) OR Region = 'eu'",
    "Size IS NOT NULL",
    "NOT Size IS NULL",
    "Region != 'eu'",
    "Region > 'eu'",
    "NOT (Region = 'eu' AND Size > 1)",
    "Score = 2",
    "Score > 1.2",
    "Score <= 1",
    "Score BETWEEN 0.5 AND 2.5",
    "NOT Score >= 1.5",
    "Score IS NULL",
    "Flag = true",
    "Flag != true",
    "NOT Flag = false",
    "Flag IN (true)",
    "Flag > false",
    "When > '2024-01-05T00:00:00Z'",
    "When = '2024-01-04T09:00:01.000004Z'",
    "When BETWEEN '2024-01-02T00:00:00Z' AND '2024-01-04T09:00:01.000004Z'",
    "When NOT IN ('2024-01-04T09:00:01.000004Z')",
    "NOT When < '2024-01-05T00:00:00+02:00'",
    "When IS NULL",
    "Tags = 'red'",
    "Tags = 'BLUE'",
    "Tags != 'red'",
    "Tags IN ('green', 'Blue')",
    "Tags NOT IN ('green', 'Blue')",
    "NOT Tags = 'red'",
    "NOT (Tags != 'red' AND Size > 1)",
    "Tags IS NULL",
    "Tags IS NOT NULL",
    "Customer STARTS_WITH 'acme'",
    "Customer STARTS_WITH 'ACME-1'",
    "Customer STARTS_WITH 'äc'",
    "Customer STARTS_WITH ''",
    "Customer NOT STARTS_WITH 'acme'",
    "NOT Customer STARTS_WITH 'acme'",
    "NOT Customer NOT STARTS_WITH 'acme'",
    "Customer = 'x'",
    "Customer >= 'acme-'",
    "Customer < 'b'",
    "Customer BETWEEN 'Acme-1' AND 'acme-2'",
    "Customer > 'b'",
    "(Size = 1 OR Score > 2) AND NOT (Tags = 'red' OR Customer STARTS_WITH 'a')",
    "Note = 'note' AND Size > 1",
    "NOT (Note = 'note' OR Size > 1)",
]


async def test_sql_answers_as_the_filter_language(store: Store) -> None:
    registry = await _registry(store)
    rows = [_row(i) for i in range(60)]
    rows.append(_row(60, search_attributes=_attributes(TemporalNamespaceDivision="scheduler")))
    await store.upsert_visibility(rows)
    records = [_record(v, registry) for v in rows]
    for query in QUERIES:
        parsed = parse_query(query, registry.types(NS))
        expected = [r["RunId"] for r in sort_records(records, []) if parsed.matches(r)]
        assert await _list_all(store, registry, query, 7) == expected, query
        assert await _list_all(store, registry, query, 1000) == expected, query
        req = rr.CountWorkflowExecutionsRequest(query=query)
        assert (await count_workflows(store, NS, req, registry)).count == len(expected), query
        # Only Text's full-text match (and STARTS_WITH on a column) is re-checked in memory.
        exact = "Note" in query or "WorkflowType STARTS_WITH" in query
        assert translate(parsed, NS).exact != exact, query


def test_translation_is_exact_but_for_text() -> None:
    types = {"Size": INT, "Note": TEXT, **PREDEFINED_SEARCH_ATTRIBUTES}
    exact = translate(
        parse_query("WorkflowType = 'x' AND CloseTime > '2024-01-01T00:00:00Z'", types), NS
    )
    assert exact.exact
    assert "workflow_type = ?" in exact.where.condition
    for query in ("WorkflowType = 'x' AND Size > 3", "NOT (WorkflowType = 'x' OR Size > 3)"):
        custom = translate(parse_query(query, types), NS)
        assert custom.exact and "visibility_search_attributes" in custom.where.condition
    wider = translate(parse_query("WorkflowType = 'x' AND Note = 'n'", types), NS)
    assert not wider.exact and "workflow_type = ?" in wider.where.condition
    assert not translate(parse_query("WorkflowType = 'x' OR Note = 'n'", types), NS).exact


async def test_pages_neither_repeat_nor_skip_rows_written_between_them(store: Store) -> None:
    registry = await _registry(store)
    await store.upsert_visibility([_row(i) for i in range(50)])
    for query, exact in (("", True), ("Size IS NULL OR Note = 'note'", False)):
        seen: list[str] = []
        token = b""
        new = 1000
        while True:
            req = rr.ListWorkflowExecutionsRequest(query=query, page_size=6, next_page_token=token)
            response = await list_workflows(store, NS, req, registry)
            seen.extend(e.execution.run_id for e in response.executions)
            # Runs started (and closed) after the listing began sort before where it stands.
            new += 1
            await store.upsert_visibility(
                [_row(new, start_time_ns=BASE + 10_000 * SECOND + new)],
            )
            token = response.next_page_token
            if not token:
                break
        assert len(seen) == len(set(seen)), query
        assert {f"run-{i:04d}" for i in range(50)} <= set(seen), query
        assert translate(parse_query(query, registry.types(NS)), NS).exact == exact


async def test_count_groups_by_execution_status(store: Store) -> None:
    registry = await _registry(store)
    rows = [_row(i) for i in range(40)]
    await store.upsert_visibility(rows)
    for query in ("GROUP BY ExecutionStatus", "Size >= 0 GROUP BY ExecutionStatus"):
        response = await count_workflows(
            store, NS, rr.CountWorkflowExecutionsRequest(query=query), registry
        )
        groups = [(json.loads(g.group_values[0].data), g.count) for g in response.groups]
        if query.startswith("Size"):
            assert response.count == sum(1 for i in range(40) if i % 3 and i % 7 != 3)
            continue
        assert response.count == 40
        assert groups == [("Running", 10), ("Completed", 10), ("Failed", 10), ("Terminated", 10)]
    response = await count_workflows(
        store,
        NS,
        rr.CountWorkflowExecutionsRequest(query="GROUP BY TemporalNamespaceDivision"),
        registry,
    )
    assert [(json.loads(g.group_values[0].data), g.count) for g in response.groups] == [("", 40)]


OLD_COLUMNS = (
    "namespace_id, workflow_id, run_id, workflow_type, task_queue, status, start_time_ns, "
    "execution_time_ns, close_time_ns, history_length, memo, search_attributes, "
    "parent_workflow_id, parent_run_id, root_workflow_id, root_run_id"
)


async def test_a_database_of_the_previous_schema_migrates_and_lists_the_same(
    backend: str, tmp_path: Path
) -> None:
    rows = [_row(i) for i in range(20)]
    rows.append(_row(20, search_attributes=_attributes(TemporalNamespaceDivision="scheduler")))
    old = [(*(getattr(v, c.strip()) for c in OLD_COLUMNS.split(",")),) for v in rows]
    version = schema.added_in(schema.VISIBILITY_IN_SQL, backend)
    assert version is not None
    if backend == "sqlite":
        path = str(tmp_path / "old.db")
        conn = sqlite3.connect(path, isolation_level=None)
        for n, ddl in enumerate(sqlite.MIGRATIONS[: version - 1], 1):
            conn.executescript(f"BEGIN;{ddl}PRAGMA user_version={n};COMMIT;")
        conn.executemany(
            f"INSERT INTO visibility ({OLD_COLUMNS}) VALUES ({', '.join('?' * 16)})", old
        )
        conn.close()
        store: Store = SQLiteStore(path)
        drop = None
    else:
        dsn, drop = await pg_database()
        pg = await asyncpg.connect(dsn)
        await pg.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for n, ddl in enumerate(postgres.MIGRATIONS[: version - 1], 1):
            await pg.execute(ddl)
            await pg.execute("INSERT INTO schema_version (version) VALUES ($1)", n)
        markers = ", ".join(f"${n}" for n in range(1, 17))
        await pg.executemany(f"INSERT INTO visibility ({OLD_COLUMNS}) VALUES ({markers})", old)
        await pg.close()
        store = PostgresStore(dsn)
    await store.open()
    try:
        registry = await _registry(store)
        for query in (
            "",
            "WorkflowType = 'Order'",
            "TemporalNamespaceDivision = 'scheduler'",
            "Size >= 3",
            "Tags = 'red' OR Customer STARTS_WITH 'acme'",
        ):
            parsed = parse_query(query, registry.types(NS))
            records = [_record(v, registry) for v in rows]
            records = [{**r, "HistorySizeBytes": 0, "StateTransitionCount": 0} for r in records]
            expected = [r["RunId"] for r in sort_records(records, []) if parsed.matches(r)]
            assert await _list_all(store, registry, query, 4) == expected, query
    finally:
        await store.close()
        if drop is not None:
            await drop()


async def _indexed_rows(store: Store) -> int:
    assert isinstance(store, SQLStore)
    rows = await store._fetch("SELECT COUNT(*) FROM visibility_search_attributes")
    return int(rows[0][0])


async def test_indexed_values_follow_the_row_through_transitions_and_deletions(
    store: Store,
) -> None:
    """Written with the transition that changes them (and only then), deleted with the run and
    with its namespace."""
    registry = await _registry(store)
    range_id = await store.acquire_shard(0, "host")

    async def commit(version: int, changed: bool = True, **values: object) -> None:
        await store.commit(
            ExecutionTransaction(
                shard_id=0,
                range_id=range_id,
                namespace_id=NS,
                workflow_id="wf",
                run_id="run",
                state=b"{}",
                db_version=version,
                expected_db_version=version - 1 if version > 1 else None,
                visibility=_row(
                    1, workflow_id="wf", run_id="run", search_attributes=_attributes(**values)
                ),
                search_attributes_changed=changed,
            )
        )

    async def runs(query: str) -> list[str]:
        return await _list_all(store, registry, query, 10)

    await commit(1, Size=1, Tags=["a", "B"])
    assert await runs("Size = 1 AND Tags = 'b'") == ["run"]
    await commit(2, changed=False, Size=2, Tags=["a", "B"])  # the writer knows them unchanged
    assert await runs("Size = 1") == ["run"]
    await commit(3, Size=2)
    assert await runs("Size = 1") == [] and await runs("Size = 2") == ["run"]
    assert await runs("Tags = 'a'") == [] and await _indexed_rows(store) == 2  # Int and Double
    await store.delete_execution(0, range_id, NS, "wf", "run", [])
    assert await _indexed_rows(store) == 0

    await store.upsert_visibility([_row(i) for i in range(10)])
    assert await _indexed_rows(store) > 0
    await store.delete_namespace(NS)
    assert await _indexed_rows(store) == 0
