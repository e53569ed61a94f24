"""Visibility bench: List and Count in SQL over N closed workflows, on SQLite and PostgreSQL.

Rows go in through the store (`Store.upsert_visibility`, batched), then each query runs the
listing code the frontend runs (`aion.visibility.listing`) a number of times; the median is
printed with the query plan of its SQL (EXPLAIN QUERY PLAN / EXPLAIN).

    .venv/bin/python bench/visibility.py --backend sqlite --rows 10000 100000
    .venv/bin/python bench/visibility.py --backend postgres --rows 10000 100000 \\
        --admin-dsn postgresql://postgres@127.0.0.1:5432/postgres

Of the N rows, 100 have the workflow type `Rare` whatever N is (the selective filter); the
others spread over ten types and the four closed statuses. Every row has two custom search
attributes: the Keyword `CustomerId` (each value on 100 rows whatever N is) and the Int `Amount`
(0 to 999, so `Amount >= 990` keeps 1 % of the rows).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.persistence import VisibilityRecord
from aion.persistence.postgres import PostgresStore
from aion.persistence.sql.store import SQLStore
from aion.persistence.sqlite import SQLiteStore
from aion.visibility.listing import count_workflows, list_workflows
from aion.visibility.query import parse_query
from aion.visibility.search_attributes import SearchAttributeRegistry
from aion.visibility.sql import GROUP_COLUMNS, translate

NS = "bench-ns"
SECOND = 1_000_000_000
BASE = 1_700_000_000 * SECOND
RARE = 100
BATCH = 10_000
REPEAT = 15

LISTS = [
    ("list, page of 100, WorkflowType = 'Rare'", "WorkflowType = 'Rare'"),
    ("list, page of 100, no filter", ""),
    ("list, page of 100, ExecutionStatus = 'Failed'", "ExecutionStatus = 'Failed'"),
    ("list, page of 100, custom Keyword CustomerId = 'customer-42'", "CustomerId = 'customer-42'"),
    ("list, page of 100, custom Int Amount >= 990", "Amount >= 990"),
    (
        "list, page of 100, StartTime range (1000 rows)",
        "StartTime >= '2023-11-14T22:30:00Z' AND StartTime < '2023-11-14T22:46:40Z'",
    ),
]
COUNTS = [
    (
        "count, WorkflowType = 'Rare' GROUP BY ExecutionStatus",
        "WorkflowType = 'Rare' GROUP BY ExecutionStatus",
    ),
    (
        "count, CustomerId = 'customer-42' GROUP BY ExecutionStatus",
        "CustomerId = 'customer-42' GROUP BY ExecutionStatus",
    ),
    ("count, GROUP BY ExecutionStatus (every row)", "GROUP BY ExecutionStatus"),
]
CUSTOM = {
    "CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Amount": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def _attributes(customer: str, amount: int) -> bytes:
    attrs = common_pb.SearchAttributes()
    for name, data in (("CustomerId", f'"{customer}"'), ("Amount", str(amount))):
        payload = attrs.indexed_fields[name]
        payload.metadata["encoding"] = b"json/plain"
        payload.data = data.encode()
    return attrs.SerializeToString()


def _row(i: int, n: int) -> VisibilityRecord:
    rare = i % (n // RARE) == 0
    start = BASE + i * SECOND
    return VisibilityRecord(
        namespace_id=NS,
        workflow_id=f"wf-{i}",
        run_id=str(uuid.UUID(int=i)),
        workflow_type="Rare" if rare else f"Type{i % 10}",
        task_queue=f"tq-{i % 4}",
        status=(2, 3, 4, 5)[i % 4],
        start_time_ns=start,
        execution_time_ns=start,
        close_time_ns=start + (i % 60) * SECOND,
        history_length=11,
        memo=b"",
        search_attributes=_attributes(f"customer-{i % (n // RARE)}", i % 1000),
        root_workflow_id=f"wf-{i}",
        root_run_id=str(uuid.UUID(int=i)),
        history_size_bytes=2048,
        state_transition_count=9,
    )


async def _fill(store: SQLStore, n: int) -> float:
    began = time.perf_counter()
    for first in range(0, n, BATCH):
        await store.upsert_visibility([_row(i, n) for i in range(first, min(n, first + BATCH))])
    await store._write(lambda conn: conn.execute("ANALYZE"))
    return time.perf_counter() - began


async def _time(call: Any) -> float:
    samples = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


async def _plan(
    store: SQLStore, registry: SearchAttributeRegistry, backend: str, query: str, count: bool
) -> list[str]:
    parsed = parse_query(query, registry.types(NS))
    where = translate(parsed, NS).where
    if count:
        group = GROUP_COLUMNS[parsed.group_by[0]] if parsed.group_by else None
        sql, args = store.sql.visibility.count(NS, where, group)
    else:
        sql, args = store.sql.visibility.select(NS, where, None, 101)
    explain = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
    rows = await store._fetch(explain + sql, args)
    return [str(row[-1]) for row in rows]


async def run(backend: str, n: int, admin_dsn: str) -> None:
    drop = None
    if backend == "sqlite":
        folder = tempfile.mkdtemp()
        store: SQLStore = SQLiteStore(str(Path(folder) / "bench.db"))

        async def drop_file() -> None:
            shutil.rmtree(folder)

        drop = drop_file
    else:
        name = f"aion_vis_bench_{n}"
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        store = PostgresStore(admin_dsn.rsplit("/", 1)[0] + "/" + name)

        async def drop_db() -> None:
            admin = await asyncpg.connect(admin_dsn)
            await admin.execute(f"DROP DATABASE IF EXISTS {name}")
            await admin.close()

        drop = drop_db
    await store.open()
    try:
        filled = await _fill(store, n)
        registry = SearchAttributeRegistry(store)
        await registry.load()
        await registry.add(NS, CUSTOM)
        print(f"\n## {backend}, {n:,} closed workflows (inserted in {filled:.1f} s)\n")
        print("| query | median ms |\n|---|---|")
        plans: list[tuple[str, list[str]]] = []
        for title, query in LISTS:
            req = rr.ListWorkflowExecutionsRequest(query=query, page_size=100)
            first = await list_workflows(store, NS, req, registry)
            ms = await _time(lambda req=req: list_workflows(store, NS, req, registry))
            print(f"| {title} | {ms:.2f} |")
            if first.next_page_token:  # a page deep in the listing costs the same
                deep = first
                for _ in range(4):
                    more = rr.ListWorkflowExecutionsRequest(
                        query=query, page_size=100, next_page_token=deep.next_page_token
                    )
                    deep = await list_workflows(store, NS, more, registry)
                later = rr.ListWorkflowExecutionsRequest(
                    query=query, page_size=100, next_page_token=deep.next_page_token
                )
                if deep.next_page_token:
                    ms = await _time(lambda r=later: list_workflows(store, NS, r, registry))
                    print(f"| {title}, 6th page (keyset token) | {ms:.2f} |")
            plans.append((title, await _plan(store, registry, backend, query, False)))
        for title, query in COUNTS:
            req_count = rr.CountWorkflowExecutionsRequest(query=query)
            ms = await _time(lambda r=req_count: count_workflows(store, NS, r, registry))
            print(f"| {title} | {ms:.2f} |")
            plans.append((title, await _plan(store, registry, backend, query, True)))
        print()
        for title, plan in plans:
            print(f"{title}:\n```\n" + "\n".join(plan) + "\n```")
    finally:
        await store.close()
        if drop is not None:
            await drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    for n in args.rows:
        asyncio.run(run(args.backend, n, args.admin_dsn))


if __name__ == "__main__":
    main()
